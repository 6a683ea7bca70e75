"""Partner webhooks and secret rotation: partners get a webhook URL and secret (they hear
about `dispute.resolved`), and owners and partners keep the secret a rotation replaced
(active for signing until its grace period ends).

The reference tables are a fold of the reference topic; older events simply have no
values for the new columns. They are created on the registration branch (0003), so this
revision, which follows 0005 on the projections branch, also depends on 0003.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = ("0003",)

When = sa.DateTime(timezone=True)


def _rotation_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column("webhook_previous_secret", sa.String(200), nullable=True),
            sa.Column("webhook_previous_secret_until", When, nullable=True)]


def upgrade() -> None:
    op.add_column("ref_partners", sa.Column("webhook_url", sa.String(2000), nullable=True))
    op.add_column("ref_partners", sa.Column("webhook_secret", sa.String(200), nullable=True))
    for table in ("ref_partners", "ref_owners"):
        for column in _rotation_columns():
            op.add_column(table, column)


def downgrade() -> None:
    with op.batch_alter_table("ref_owners") as batch:
        for column in reversed(_rotation_columns()):
            batch.drop_column(column.name)
    with op.batch_alter_table("ref_partners") as batch:
        for name in ("webhook_previous_secret_until", "webhook_previous_secret",
                     "webhook_secret", "webhook_url"):
            batch.drop_column(name)
