"""An index on the registrations' `external_ref`: a CRM close by reference
(`crm.opportunity.closed.v1` naming only its `external_ref`) reads every registration
carrying the reference, earliest filed first (`ReadModel.by_external_ref`), and scanned the
whole registrations table to do it (session 28).

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_registrations_external_ref", "registrations",
                    ["external_ref", "submitted_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_registrations_external_ref", table_name="registrations")
