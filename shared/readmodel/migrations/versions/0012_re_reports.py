"""The registration service's pending post-decision re-reports (`re_reports`).

A registration or claim is written here before it is appended and deleted once it is
decided and re-reported (services/registration/rereports.py), so a re-report survives a
restart of the registration process and waits for a decision however late it comes. The
edge's own bookkeeping, like `idempotency_keys` (0003): not a projection model, never
rebuilt.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = "0003"

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "re_reports",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account_key", sa.String(300), nullable=False),
        sa.Column("identity", Json, nullable=False),
        sa.Column("reported", Json, nullable=False),
        sa.Column("via", sa.String(100), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_re_reports_owner", "re_reports", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_re_reports_owner", table_name="re_reports")
    op.drop_table("re_reports")
