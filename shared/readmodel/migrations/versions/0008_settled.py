"""Time to a settling decision: `registrations.settled_at` (the first decision that was not
`in_review`) and `settle_ms` (it minus the submission), indexed for exact percentiles,
behind the program dashboards' time to decision (`GET /v1/program/metrics`).

Rows projected before this revision have no value until the registrations model is
rebuilt (`dealreg projections rebuild --model registrations`): the read model alone does
not remember when an `in_review` registration was first settled.

Revision ID: 0008
Revises: 0007 (0007 is the notifications' trace context, written at the same time)
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("registrations",
                  sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("registrations", sa.Column("settle_ms", sa.BigInteger, nullable=True))
    op.create_index("ix_registrations_settle_ms", "registrations", ["settle_ms"])


def downgrade() -> None:
    op.drop_index("ix_registrations_settle_ms", table_name="registrations")
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("settle_ms")
        batch.drop_column("settled_at")
