"""Notifications remember the W3C trace context of the decision that caused them, so the
delivery worker sends it as the webhook's `traceparent` header. Deliveries queued before
this revision have none (the header is then omitted).

This revision was first numbered 0007 beside `0007_settled` (two branches merged), so a
database upgraded then has only one of the two applied, whichever Alembic picked: the
upgrade adds whatever of both is missing.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    outbox = _columns("notification_outbox")
    if "traceparent" not in outbox:
        op.add_column("notification_outbox",
                      sa.Column("traceparent", sa.String(200), nullable=True))
    if "tracestate" not in outbox:
        op.add_column("notification_outbox",
                      sa.Column("tracestate", sa.String(600), nullable=True))
    registrations = _columns("registrations")
    if "settled_at" not in registrations:
        op.add_column("registrations",
                      sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True))
    if "settle_ms" not in registrations:
        op.add_column("registrations", sa.Column("settle_ms", sa.BigInteger, nullable=True))
        op.create_index("ix_registrations_settle_ms", "registrations", ["settle_ms"])


def downgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.drop_column("tracestate")
        batch.drop_column("traceparent")
