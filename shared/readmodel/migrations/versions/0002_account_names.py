"""Account directory: normalized names by country (fuzzy look-ups block on country).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_names",
        sa.Column("country", sa.String(2), primary_key=True),
        sa.Column("name", sa.String(300), primary_key=True),
        sa.Column("account_key", sa.String(300), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("account_names")
