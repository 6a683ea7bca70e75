"""`account_crm_ids.crm_spelling` filled again under session 29's `any_spelling`: a GUID in
braces ("{FB634A91-...}") is the GUID and a full-width Salesforce id is that id (s29
machines2). Rows filed before kept the old form ("{fb634a91...}", a squeezed
"001hfgai3f5dig9"), and both SQL look-ups that ask the column -- the edge's fall-back and
`GET /v1/ownership?crm_account_id=` -- missed such a holder asked in another spelling,
while the adjudicator and a warmed edge (comparing in memory) found it. Only rows whose
form changed are written.

Streamed as 0014: keyset-paginated batches of `_BATCH` ids (by primary key), a
`migration_step_done` line with its counts when it read any row.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

from shared.accounts.salesforce import any_spelling
from shared.logging import get_logger

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    table = sa.table("account_crm_ids", sa.column("crm_account_id", sa.String),
                     sa.column("crm_spelling", sa.String))
    update = (sa.update(table).where(table.c.crm_account_id == sa.bindparam("id"))
              .values(crm_spelling=sa.bindparam("spelling")))
    conn = op.get_bind()
    rows = batches = changed = 0
    after: str | None = None
    while True:
        query = (sa.select(table.c.crm_account_id, table.c.crm_spelling)
                 .order_by(table.c.crm_account_id).limit(_BATCH))
        if after is not None:
            query = query.where(table.c.crm_account_id > after)
        found = [(str(r[0]), r[1]) for r in conn.execute(query)]
        if not found:
            break
        stale = [{"id": crm, "spelling": any_spelling(crm)} for crm, spelling in found
                 if spelling != any_spelling(crm)]
        if stale:
            conn.execute(update, stale)
        rows, batches, changed = rows + len(found), batches + 1, changed + len(stale)
        after = found[-1][0]
    if rows:
        get_logger("shared.readmodel.migrations").info(
            "migration_step_done", revision=revision, step="crm_spelling_refill", rows=rows,
            batches=batches, changed=changed)


def downgrade() -> None:
    """Nothing to undo: the old forms are not kept, and the new ones are what the
    projection files."""
