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

Revision ID: 0014
Revises: 0013
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

from shared.accounts.filing import name_rows
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
    _refile_names(conn)


def _refile_names(conn: sa.Connection) -> None:
    names_table = sa.table("account_names", sa.column("country", sa.String),
                           sa.column("name", sa.String), sa.column("account_key", sa.String))
    keys_table = sa.table("account_name_keys", sa.column("country", sa.String),
                          sa.column("key", sa.String), sa.column("name", sa.String))
    names: dict[tuple[str, str, str], dict[str, Any]] = {}
    keys: dict[tuple[str, str, str], dict[str, Any]] = {}
    refiled: set[str] = set()
    for source in ("registrations", "claims"):
        table = sa.table(source, sa.column("account_key", sa.String),
                         sa.column("account", sa.JSON))
        for key, account in conn.execute(sa.select(table.c.account_key, table.c.account)
                                         .where(table.c.account_key.is_not(None))):
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
    ordered = sorted(refiled)
    for start in range(0, len(ordered), _BATCH):
        conn.execute(sa.delete(names_table).where(
            names_table.c.account_key.in_(ordered[start:start + _BATCH])))
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for table, rows in ((names_table, list(names.values())), (keys_table, list(keys.values()))):
        for start in range(0, len(rows), _BATCH):
            conn.execute(insert(table).on_conflict_do_nothing(), rows[start:start + _BATCH])


def downgrade() -> None:
    op.drop_index("ix_account_crm_ids_crm_spelling", table_name="account_crm_ids")
    op.drop_column("account_crm_ids", "crm_spelling")
