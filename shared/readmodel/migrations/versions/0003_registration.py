"""Registration service: API keys, idempotency keys, ingested CloudEvents, reference data.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def _at(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        _at("created_at"),
        _at("revoked_at", nullable=True),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("headers", Json, nullable=True),
        _at("created_at"),
        _at("expires_at"),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    op.create_table(
        "ingested_events",
        sa.Column("source", sa.String(500), primary_key=True),
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("result", Json, nullable=True),
        _at("received_at"),
    )
    op.create_table(
        "ref_partners",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("tier", sa.String(20), nullable=False),
        sa.Column("region", sa.String(100), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        _at("updated_at"),
    )
    op.create_table(
        "ref_owners",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("webhook_url", sa.String(2000), nullable=True),
        sa.Column("webhook_secret", sa.String(200), nullable=False),
        _at("updated_at"),
    )
    op.create_table(
        "ref_policies",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("document", Json, nullable=False),
        _at("published_at"),
        sa.Column("published_by", sa.String(100), nullable=True),
    )
    op.create_table(
        "reference_positions",
        sa.Column("topic", sa.String(200), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("reference_positions", "ref_policies", "ref_owners", "ref_partners",
                  "ingested_events", "idempotency_keys", "api_keys"):
        op.drop_table(table)
