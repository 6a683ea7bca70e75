"""Initial read models: positions, registrations, account directory.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "projection_positions",
        sa.Column("projection", sa.String(100), primary_key=True),
        sa.Column("topic", sa.String(200), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "registrations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("partner_id", sa.String(100), nullable=True),
        sa.Column("account_key", sa.String(300), nullable=True),
        sa.Column("account", Json, nullable=True),
        sa.Column("opportunity", Json, nullable=True),
        sa.Column("motion", sa.String(20), nullable=True),
        sa.Column("external_ref", sa.String(200), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("protected_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extensions", sa.Integer, nullable=False, server_default="0"),
        sa.Column("dispute_id", sa.String(64), nullable=True),
        sa.Column("credit_percent", sa.Numeric(5, 2), nullable=True),
        sa.Column("decision", Json, nullable=True),
        sa.Column("policy_version", sa.Integer, nullable=True),
    )
    op.create_index("ix_registrations_partner_id", "registrations", ["partner_id"])
    op.create_index("ix_registrations_account_key", "registrations", ["account_key"])
    op.create_table(
        "account_domains",
        sa.Column("domain", sa.String(253), primary_key=True),
        sa.Column("account_key", sa.String(300), nullable=False),
    )
    op.create_index("ix_account_domains_account_key", "account_domains", ["account_key"])
    op.create_table(
        "account_crm_ids",
        sa.Column("crm_account_id", sa.String(200), primary_key=True),
        sa.Column("account_key", sa.String(300), nullable=False),
    )
    op.create_index("ix_account_crm_ids_account_key", "account_crm_ids", ["account_key"])


def downgrade() -> None:
    for table in ("account_crm_ids", "account_domains", "registrations", "projection_positions"):
        op.drop_table(table)
