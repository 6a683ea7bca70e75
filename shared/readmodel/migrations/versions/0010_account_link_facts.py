"""`account_link_facts`: the account links every partition decided, merged order-free.

The edge's link report is copied to every intake partition, so one alias is linked (and
later unlinked) by several partitions, each with its own `linked_at`. `account_links` held
one row per alias, written by whichever partition was folded last: a rebuild could differ
from the live model. The facts table keeps, per (alias, canonical), how many partitions
hold the link and the earliest decision's facts; `account_links` is derived from it.

Existing links become facts held by one partition.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_link_facts",
        sa.Column("account_key", sa.String(300), primary_key=True),
        sa.Column("canonical_key", sa.String(300), primary_key=True),
        sa.Column("holders", sa.Integer, nullable=False),
        sa.Column("matched_by", sa.String(20), nullable=False),
        sa.Column("score", sa.Numeric(6, 4), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("INSERT INTO account_link_facts (account_key, canonical_key, holders, "
               "matched_by, score, linked_at) SELECT account_key, canonical_key, 1, "
               "matched_by, score, linked_at FROM account_links")


def downgrade() -> None:
    op.drop_table("account_link_facts")
