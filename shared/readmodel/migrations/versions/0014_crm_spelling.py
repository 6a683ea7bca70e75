"""Each filed CRM id's spelling-free form (`account_crm_ids.crm_spelling`,
`shared.accounts.salesforce.any_spelling`): under policy `match.crm_ids: any_spelling`
`GET /v1/ownership?crm_account_id=` asked only a few spellings of the id, so the holder's
"ACC-2024-00777" asked as "Acc_2024.00777" answered that nobody owned it (session 28
rival review). Existing rows are filled here (the same function the projection uses).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

from shared.accounts.salesforce import any_spelling

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    op.add_column("account_crm_ids", sa.Column("crm_spelling", sa.String(200), nullable=True))
    table = sa.table("account_crm_ids", sa.column("crm_account_id", sa.String),
                     sa.column("crm_spelling", sa.String))
    conn = op.get_bind()
    ids = [str(r[0]) for r in conn.execute(sa.select(table.c.crm_account_id))]
    update = (sa.update(table).where(table.c.crm_account_id == sa.bindparam("id"))
              .values(crm_spelling=sa.bindparam("spelling")))
    for start in range(0, len(ids), _BATCH):
        conn.execute(update, [{"id": crm, "spelling": any_spelling(crm)}
                              for crm in ids[start:start + _BATCH]])
    op.create_index("ix_account_crm_ids_crm_spelling", "account_crm_ids", ["crm_spelling"])


def downgrade() -> None:
    op.drop_index("ix_account_crm_ids_crm_spelling", table_name="account_crm_ids")
    op.drop_column("account_crm_ids", "crm_spelling")
