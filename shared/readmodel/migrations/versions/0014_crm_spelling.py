"""Each filed CRM id's spelling-free form (`account_crm_ids.crm_spelling`,
`shared.accounts.salesforce.any_spelling`): under policy `match.crm_ids: any_spelling`
`GET /v1/ownership?crm_account_id=` asked only a few spellings of the id, so the holder's
"ACC-2024-00777" asked as "Acc_2024.00777" answered that nobody owned it (session 28
rival review). Existing rows are filled here (the same function the projection uses).

And the directory's names re-filed under the session 28 reading: a place qualifier naming
the account's own country or region goes, "X dba Y" is filed as both names, a chain of
more is one name. Rows filed before kept the old reading ("acme industrial usa"), so after
the upgrade the ownership look-up by name and a restarted edge (warmed from these rows)
no longer found such a holder by its own name, while the adjudicator (replaying the raw
names) and a rebuilt read model did. For every account key a registration or claim row
names, its names are deleted and filed again from the raw account (`shared.accounts.
filing.name_rows`, what the projection files); keys with nothing to re-read stay.

Streamed (session 29): both steps read their tables in keyset-paginated batches of
`_BATCH` (CRM ids by primary key; registrations and claims by account key, every row of a
key in the batch that holds the key), so memory is bounded by a batch, not the directory,
on SQLite and PostgreSQL alike; each step logs `migration_progress` at most every
`_PROGRESS_SECONDS` and a `migration_step_done` line with its row and batch counts (none
on an empty table). The
edit of this shipped revision is allowed because its output is identical to the one-shot
version it replaces (every row's `crm_spelling`; a key's names deleted and filed again
from all its registrations and claims, which a batch holds together; `account_name_keys`
inserted with ON CONFLICT DO NOTHING, a union whatever the order):
`tests/integration/test_readmodel_store.py::test_migration_0014_streams_in_batches_and_files_what_the_one_shot_version_filed`.

Revision ID: 0014
Revises: 0013
"""

import json
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

from shared.accounts.filing import name_rows
from shared.accounts.salesforce import any_spelling
from shared.logging import get_logger

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_BATCH = 1000
"""Rows (CRM ids) or account keys (names) per batch: what the migration holds at once."""
_PROGRESS_SECONDS = 5.0


class _Progress:
    """A `migration_progress` line at most every `_PROGRESS_SECONDS`, one at the end."""

    def __init__(self, step: str, total: int) -> None:
        self.step, self.total = step, total
        self.rows = self.batches = 0
        self._next = time.monotonic() + _PROGRESS_SECONDS
        self._log = get_logger("shared.readmodel.migrations")

    def batch(self, rows: int) -> None:
        self.batches += 1
        self.rows += rows
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + _PROGRESS_SECONDS
            self._log.info("migration_progress", revision=revision, step=self.step,
                           done=self.rows, total=self.total)

    def done(self) -> None:
        if not self.rows:
            return  # a fresh store: nothing to say
        self._log.info("migration_step_done", revision=revision, step=self.step,
                       rows=self.rows, batches=self.batches)


def upgrade() -> None:
    op.add_column("account_crm_ids", sa.Column("crm_spelling", sa.String(200), nullable=True))
    conn = op.get_bind()
    _fill_spellings(conn)
    op.create_index("ix_account_crm_ids_crm_spelling", "account_crm_ids", ["crm_spelling"])
    _refile_names(conn)


def _fill_spellings(conn: sa.Connection) -> None:
    """Every CRM id's `any_spelling` form, a batch of ids at a time (keyset on the key)."""
    table = sa.table("account_crm_ids", sa.column("crm_account_id", sa.String),
                     sa.column("crm_spelling", sa.String))
    update = (sa.update(table).where(table.c.crm_account_id == sa.bindparam("id"))
              .values(crm_spelling=sa.bindparam("spelling")))
    progress = _Progress("crm_spelling", _count(conn, table))
    after: str | None = None
    while True:
        query = sa.select(table.c.crm_account_id).order_by(table.c.crm_account_id).limit(_BATCH)
        if after is not None:
            query = query.where(table.c.crm_account_id > after)
        ids = [str(r[0]) for r in conn.execute(query)]
        if not ids:
            break
        conn.execute(update, [{"id": crm, "spelling": any_spelling(crm)} for crm in ids])
        progress.batch(len(ids))
        after = ids[-1]
    progress.done()


def _count(conn: sa.Connection, table: Any) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _refile_names(conn: sa.Connection) -> None:
    """For every account key a registration or claim row names: its names deleted and filed
    again from those rows' raw accounts. Keys are taken in order, `_BATCH` at a time, and a
    batch reads every row of its keys, so a key is deleted and re-filed once, whole."""
    names_table = sa.table("account_names", sa.column("country", sa.String),
                           sa.column("name", sa.String), sa.column("account_key", sa.String))
    keys_table = sa.table("account_name_keys", sa.column("country", sa.String),
                          sa.column("key", sa.String), sa.column("name", sa.String))
    sources = [sa.table(source, sa.column("account_key", sa.String),
                        sa.column("account", sa.JSON)) for source in ("registrations", "claims")]
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    progress = _Progress("account_names", sum(_count(conn, t) for t in sources))
    for low, high in _key_ranges(conn, sources):
        names: dict[tuple[str, str, str], dict[str, Any]] = {}
        keys: dict[tuple[str, str, str], dict[str, Any]] = {}
        refiled: set[str] = set()
        rows = 0
        for table in sources:
            column = table.c.account_key
            query = sa.select(column, table.c.account).where(column.is_not(None))
            if low is not None:
                query = query.where(column > low)
            if high is not None:
                query = query.where(column <= high)
            for key, account in conn.execute(query):
                rows += 1
                if isinstance(account, str):
                    account = json.loads(account)
                if not isinstance(account, dict):
                    continue
                refiled.add(key)
                found_names, found_keys = name_rows(
                    key, account.get("name"), account.get("country"),
                    bool(account.get("domain") or account.get("crm_account_id")))
                for row in found_names:
                    names.setdefault((row["country"], row["name"], row["account_key"]), row)
                for row in found_keys:
                    keys.setdefault((row["country"], row["key"], row["name"]), row)
        if refiled:
            conn.execute(sa.delete(names_table).where(
                names_table.c.account_key.in_(sorted(refiled))))
        for target, filed in ((names_table, list(names.values())),
                              (keys_table, list(keys.values()))):
            for start in range(0, len(filed), _BATCH):
                conn.execute(insert(target).on_conflict_do_nothing(),
                             filed[start:start + _BATCH])
        progress.batch(rows)
    progress.done()


def _key_ranges(conn: sa.Connection, sources: list[Any]
                ) -> Iterator[tuple[str | None, str | None]]:
    """`(low, high]` ranges of account keys holding at most `_BATCH` distinct keys of each
    source table, in order, covering every key (None: unbounded). Each bound is read by an
    index scan that stops after `_BATCH` keys (`ix_registrations_account_key`,
    `ix_claims_account_key`)."""
    low: str | None = None
    while True:
        bounds: list[str] = []
        for table in sources:
            column = table.c.account_key
            query = (sa.select(column).where(column.is_not(None)).distinct()
                     .order_by(column).limit(_BATCH))
            if low is not None:
                query = query.where(column > low)
            found = [str(r[0]) for r in conn.execute(query)]
            if len(found) == _BATCH:
                bounds.append(found[-1])
        if not bounds:
            yield low, None
            return
        # The smaller bound in the database's own order (its collation, not Python's).
        values = sa.union_all(*(sa.select(sa.literal(b, sa.String).label("k")) for b in bounds)
                              ).subquery() if len(bounds) > 1 else None
        high = bounds[0] if values is None else str(
            conn.execute(sa.select(sa.func.min(values.c.k))).scalar_one())
        yield low, high
        low = high


def downgrade() -> None:
    op.drop_index("ix_account_crm_ids_crm_spelling", table_name="account_crm_ids")
    op.drop_column("account_crm_ids", "crm_spelling")
