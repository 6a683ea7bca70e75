"""Topic names up to Kafka's 249 characters in the position tables.

`projection_positions.topic` and `reference_positions.topic` were VARCHAR(200) while a
Kafka topic name may have 249 characters (a long `DEALREG_TOPIC_PREFIX` makes one): on
PostgreSQL storing such a topic's position failed (`value too long`), so a projection
could not commit. Widened in place (PostgreSQL: a metadata-only change for VARCHAR; SQLite
does not enforce lengths, its batch mode rewrites the table).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = "0003"  # reference_positions is the edge branch's table

KAFKA_TOPIC_MAX = 249


def upgrade() -> None:
    for table in ("projection_positions", "reference_positions"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("topic", existing_type=sa.String(200),
                               type_=sa.String(KAFKA_TOPIC_MAX), existing_nullable=False)


def downgrade() -> None:
    for table in ("projection_positions", "reference_positions"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("topic", existing_type=sa.String(KAFKA_TOPIC_MAX),
                               type_=sa.String(200), existing_nullable=False)
