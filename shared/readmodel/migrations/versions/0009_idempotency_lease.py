"""`idempotency_keys.leased_at`: when the request now running under a key last proved it is
alive. Until this revision `created_at` was both the key's first use and its lease; a
takeover of a stranded reservation (its process died between the append and storing the
answer) moved `created_at`, and with it the command's identity. Now `created_at` stays the
key's first use (the command's event id derives from it, so a retry finds the event the
dead process appended) and `leased_at` is the lease, renewed while the request runs.

Rows written before this revision have no lease: `created_at` stands in for it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("idempotency_keys",
                  sa.Column("leased_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("leased_at")
