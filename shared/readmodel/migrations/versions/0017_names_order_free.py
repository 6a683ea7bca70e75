"""The directory's names folded order-free (session 30): `account_names.filed_at` and
`account_names_unfiled`.

Intake and decisions are consumed independently, so the projections may fold a filing's
rejection before its submission (the row stayed filed), or a second filing of the same name
under the same key between the first one's submission and its rejection (the row, whose
first filer was the rejected one, went, though the adjudicator keeps the name). Each name
row now keeps its latest filer in intake order (`filed_by`, `filed_at`: the submission's
offset), and a rejection's unfiled names are rows of their own (`account_names_unfiled`);
a name is filed unless its latest filer took it back (`shared.readmodel.schema.name_filed`).

Existing rows: those without a filer (filed before 0016) get `filed_at` 2^62 (kept: no
rejection takes them back, no later filing replaces them: the column's default); those
with one get -1 (any later filing replaces it), a batch of `_BATCH` filers at a time by
`ix_account_names_filed_by` (keyset on the filer), which then goes (the look-ups probe
`account_names_unfiled` by its primary key; nothing reads rows by filer). No unfiled rows
are derived: the directory's model version goes to 5, so the embedded runtime replays the
directory at start and `dealreg db upgrade` names the rebuild for the distributed one.

Revision ID: 0017
Revises: 0016
"""

import time

import sqlalchemy as sa
from alembic import op

from shared.logging import get_logger

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_BATCH = 1000
"""Filers per batch: what the migration holds at once."""
_PROGRESS_SECONDS = 5.0
_KEPT = 2**62
"""`shared.readmodel.schema.NAME_KEPT`."""


def upgrade() -> None:
    op.add_column("account_names", sa.Column(
        "filed_at", sa.BigInteger(), nullable=False, server_default=sa.text(str(_KEPT))))
    op.create_table(
        "account_names_unfiled",
        sa.Column("account_key", sa.String(300), primary_key=True),
        sa.Column("name", sa.String(300), primary_key=True),
        sa.Column("filed_by", sa.String(64), primary_key=True),
    )
    _replaceable(op.get_bind())
    op.drop_index("ix_account_names_filed_by", table_name="account_names")


def _replaceable(conn: sa.Connection) -> None:
    """`filed_at` -1 on every row with a filer, `_BATCH` filers at a time."""
    names = sa.table("account_names", sa.column("filed_by", sa.String),
                     sa.column("filed_at", sa.BigInteger))
    log = get_logger("shared.readmodel.migrations")
    rows = batches = 0
    after: str | None = None
    next_log = time.monotonic() + _PROGRESS_SECONDS
    while True:
        query = (sa.select(names.c.filed_by).where(names.c.filed_by.is_not(None)).distinct()
                 .order_by(names.c.filed_by).limit(_BATCH))
        if after is not None:
            query = query.where(names.c.filed_by > after)
        filers = [str(r[0]) for r in conn.execute(query)]
        if not filers:
            break
        rows += conn.execute(sa.update(names).where(names.c.filed_by.in_(filers))
                             .values(filed_at=-1)).rowcount
        batches += 1
        after = filers[-1]
        if time.monotonic() >= next_log:
            next_log = time.monotonic() + _PROGRESS_SECONDS
            log.info("migration_progress", revision=revision, step="account_names.filed_at",
                     done=rows)
    if rows:
        log.info("migration_step_done", revision=revision, step="account_names.filed_at",
                 rows=rows, batches=batches)


def downgrade() -> None:
    op.create_index("ix_account_names_filed_by", "account_names", ["filed_by"])
    op.drop_table("account_names_unfiled")
    with op.batch_alter_table("account_names") as batch:
        batch.drop_column("filed_at")
