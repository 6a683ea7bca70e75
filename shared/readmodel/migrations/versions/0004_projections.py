"""Projections: registration lifecycle and metrics inputs, claims, pipeline aggregates,
ownership history, fuzzy-name keys and account links, disputes, timelines.

Read models are disposable (invariant 2): this revision also empties the tables it
reshapes and forgets every projection position, so the worker replays the log from the
beginning on its next start and fills the new columns and tables.

Revision ID: 0004
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
When = sa.DateTime(timezone=True)

_NEW_REGISTRATION_COLUMNS = (
    sa.Column("scope_products", Json, nullable=True),
    sa.Column("amount_e4", sa.BigInteger, nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("ended_at", When, nullable=True),
    sa.Column("end_reason", sa.String(20), nullable=True),
    sa.Column("closed_amount_e4", sa.BigInteger, nullable=True),
    sa.Column("closed_currency", sa.String(3), nullable=True),
    sa.Column("incumbent_until", When, nullable=True),
    sa.Column("first_decided_at", When, nullable=True),
    sa.Column("first_rule", sa.String(40), nullable=True),
    sa.Column("collided", sa.Boolean, nullable=True),
    sa.Column("decision_latency_ms", sa.BigInteger, nullable=True),
)

_REPLAYED = ("registrations", "account_domains", "account_crm_ids", "account_names")


def upgrade() -> None:
    for table in _REPLAYED:
        op.execute(sa.text(f"DELETE FROM {table}"))
    op.execute(sa.text("DELETE FROM projection_positions"))

    for column in _NEW_REGISTRATION_COLUMNS:
        op.add_column("registrations", column)
    op.drop_index("ix_registrations_partner_id", table_name="registrations")
    op.create_index("ix_registrations_partner_id_id", "registrations", ["partner_id", "id"])
    op.create_index("ix_registrations_status_id", "registrations", ["status", "id"])
    op.create_index("ix_registrations_submitted_at", "registrations", ["submitted_at"])
    op.create_index("ix_registrations_decision_latency_ms", "registrations",
                    ["decision_latency_ms"])

    op.create_table(
        "claims",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("rep_id", sa.String(100), nullable=True),
        sa.Column("account_key", sa.String(300), nullable=True),
        sa.Column("account", Json, nullable=True),
        sa.Column("products", Json, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("filed_at", When, nullable=True),
        sa.Column("decided_at", When, nullable=True),
        sa.Column("protected_until", When, nullable=True),
        sa.Column("extensions", sa.Integer, nullable=False, server_default="0"),
        sa.Column("dispute_id", sa.String(64), nullable=True),
        sa.Column("credit_percent", sa.Numeric(5, 2), nullable=True),
        sa.Column("decision", Json, nullable=True),
        sa.Column("policy_version", sa.Integer, nullable=True),
        sa.Column("scope_products", Json, nullable=True),
        sa.Column("ended_at", When, nullable=True),
        sa.Column("end_reason", sa.String(20), nullable=True),
    )
    op.create_index("ix_claims_rep_id_id", "claims", ["rep_id", "id"])
    op.create_index("ix_claims_account_key", "claims", ["account_key"])

    op.create_table(
        "pipeline_totals",
        sa.Column("partner_id", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(20), primary_key=True),
        sa.Column("motion", sa.String(20), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("amount_e4", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pipeline_product_totals",
        sa.Column("product", sa.String(100), primary_key=True),
        sa.Column("partner_id", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(20), primary_key=True),
        sa.Column("motion", sa.String(20), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("amount_e4", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "ownership_intervals",
        sa.Column("holder_id", sa.String(64), primary_key=True),
        sa.Column("opened_by", sa.String(250), primary_key=True),
        sa.Column("account_key", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("party_type", sa.String(10), nullable=False),
        sa.Column("party_id", sa.String(100), nullable=False),
        sa.Column("products", Json, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("credit_percent", sa.Numeric(5, 2), nullable=True),
        sa.Column("valid_from", When, nullable=False),
        sa.Column("valid_to", When, nullable=True),
        sa.Column("protected_until", When, nullable=True),
    )
    op.create_index("ix_ownership_intervals_account_key_valid_from", "ownership_intervals",
                    ["account_key", "valid_from"])

    op.create_table(
        "account_name_keys",
        sa.Column("country", sa.String(2), primary_key=True),
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("name", sa.String(300), primary_key=True),
    )
    op.create_table(
        "account_links",
        sa.Column("account_key", sa.String(300), primary_key=True),
        sa.Column("canonical_key", sa.String(300), nullable=False),
        sa.Column("matched_by", sa.String(20), nullable=False),
        sa.Column("score", sa.Numeric(6, 4), nullable=False),
        sa.Column("linked_at", When, nullable=False),
    )
    op.create_index("ix_account_links_canonical_key", "account_links", ["canonical_key"])

    op.create_table(
        "disputes",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("account_key", sa.String(300), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(30), nullable=True),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("owner_id", sa.String(100), nullable=True),
        sa.Column("owners", Json, nullable=False),
        sa.Column("opened_at", When, nullable=True),
        sa.Column("due_at", When, nullable=True),
        sa.Column("reminder_at", When, nullable=True),
        sa.Column("acknowledged_at", When, nullable=True),
        sa.Column("acknowledged_by", sa.String(100), nullable=True),
        sa.Column("registration_ids", Json, nullable=False),
        sa.Column("breached", sa.Boolean, nullable=False),
        sa.Column("resolution", Json, nullable=True),
        sa.Column("outcome", sa.String(30), nullable=True),
        sa.Column("resolved_at", When, nullable=True),
        sa.Column("resolve_ms", sa.BigInteger, nullable=True),
        sa.Column("rule", sa.String(40), nullable=True),
        sa.Column("explanation", sa.String(4000), nullable=True),
        sa.Column("policy_version", sa.Integer, nullable=True),
    )
    op.create_index("ix_disputes_owner_id_status_id", "disputes", ["owner_id", "status", "id"])
    op.create_index("ix_disputes_status_id", "disputes", ["status", "id"])
    op.create_index("ix_disputes_account_key", "disputes", ["account_key"])
    op.create_index("ix_disputes_opened_at", "disputes", ["opened_at"])
    op.create_index("ix_disputes_resolve_ms", "disputes", ["resolve_ms"])
    op.create_table(
        "dispute_members",
        sa.Column("dispute_id", sa.String(100), primary_key=True),
        sa.Column("member_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_dispute_members_member_id", "dispute_members", ["member_id"])
    op.create_table(
        "dispute_breaches",
        sa.Column("dispute_id", sa.String(100), primary_key=True),
        sa.Column("level", sa.Integer, primary_key=True),
        sa.Column("deadline", When, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
    )

    op.create_table(
        "timeline_entries",
        sa.Column("subject_id", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(250), primary_key=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("timeline_entries", "dispute_breaches", "dispute_members", "disputes",
                  "account_links", "account_name_keys", "ownership_intervals",
                  "pipeline_product_totals", "pipeline_totals", "claims"):
        op.drop_table(table)
    for name in ("ix_registrations_decision_latency_ms", "ix_registrations_submitted_at",
                 "ix_registrations_status_id", "ix_registrations_partner_id_id"):
        op.drop_index(name, table_name="registrations")
    op.create_index("ix_registrations_partner_id", "registrations", ["partner_id"])
    with op.batch_alter_table("registrations") as batch:
        for column in reversed(_NEW_REGISTRATION_COLUMNS):
            batch.drop_column(column.name)
    op.execute(sa.text("DELETE FROM projection_positions"))
