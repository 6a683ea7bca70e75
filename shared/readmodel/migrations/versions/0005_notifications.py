"""Notifications: the outbox of dispute notifications, its delivery log, and webhook
endpoints disabled by a 410.

The notifications model starts where the disputes model is, so that upgrading a running
deployment does not notify about every dispute in its history.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(250), nullable=False),
        sa.Column("dispute_id", sa.String(100), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("recipient_kind", sa.String(10), nullable=False),
        sa.Column("recipient_id", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("retry_from", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", When, nullable=True),
        sa.Column("lease_until", When, nullable=True),
        sa.Column("last_error", sa.String(2000), nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("delivered_at", When, nullable=True),
    )
    op.create_index("ix_notification_outbox_status_next_attempt_at", "notification_outbox",
                    ["status", "next_attempt_at"])
    op.create_index("ix_notification_outbox_recipient", "notification_outbox",
                    ["recipient_kind", "recipient_id", "created_at"])
    op.create_table(
        "notification_attempts",
        sa.Column("delivery_id", sa.String(64), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", When, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_table(
        "notification_disabled_endpoints",
        sa.Column("url", sa.String(2000), primary_key=True),
        sa.Column("disabled_at", When, nullable=False),
    )
    op.execute(sa.text(
        "INSERT INTO projection_positions (projection, topic, partition, position) "
        "SELECT 'notifications', topic, partition, position FROM projection_positions "
        "WHERE projection = 'disputes'"))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM projection_positions WHERE projection = 'notifications'"))
    for table in ("notification_disabled_endpoints", "notification_attempts",
                  "notification_outbox"):
        op.drop_table(table)
