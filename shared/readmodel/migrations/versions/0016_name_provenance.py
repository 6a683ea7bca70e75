"""Which filing first filed each directory name (`account_names.filed_by`, session 29).

A filing rejected at its decision adds no names that join customers (policy
`match.rejected_names: unfiled`): the adjudicator and the edge took its new name forms
back, but the directory read model kept them, so a restarted edge (warmed from these rows),
a distributed edge's rewarm or fall-back query and `GET /v1/ownership?name=` still found a
rival's rejected "B dba A" under B. The projection now records the registration or claim
that first filed a row and removes it when that filing's decision says it was unfiled
(`RegistrationDecided.unfiled_names`).

Existing rows keep an unknown provenance (NULL): they are never removed here. The
directory's model version goes to 4 (`repository.MODEL_VERSIONS`), so the embedded
runtime replays the directory at start and `dealreg db upgrade` names the rebuild to run
on the distributed one: the replay files every row with its filer and applies the
rejections.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("account_names", sa.Column("filed_by", sa.String(64), nullable=True))
    # A rejection removes its rows by filing (its decision names no country, the primary
    # key's first column): one filing's few rows, found by this index.
    op.create_index("ix_account_names_filed_by", "account_names", ["filed_by"])


def downgrade() -> None:
    op.drop_index("ix_account_names_filed_by", table_name="account_names")
    with op.batch_alter_table("account_names") as batch:
        batch.drop_column("filed_by")
