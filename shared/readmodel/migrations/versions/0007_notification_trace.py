"""Notifications remember the W3C trace context of the decision that caused them, so the
delivery worker sends it as the webhook's `traceparent` header. Deliveries queued before
this revision have none (the header is then omitted).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notification_outbox",
                  sa.Column("traceparent", sa.String(200), nullable=True))
    op.add_column("notification_outbox",
                  sa.Column("tracestate", sa.String(600), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.drop_column("tracestate")
        batch.drop_column("traceparent")
