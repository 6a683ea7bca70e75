"""The read-model store on SQLite and real PostgreSQL: migrations create exactly the schema
the code queries, and migrating twice changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import services.registration.adapters.tables  # noqa: F401  (registers its tables)
from shared.readmodel.schema import metadata
from shared.readmodel.store import create_engine, migrate
from tests.support.servers import ServerHandle, create_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}"
    server: ServerHandle = request.getfixturevalue("postgres_server")
    return await create_database(server.url, f"rm_{unique}")


async def test_migrations_create_exactly_the_declared_schema(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        await migrate(engine)
        await migrate(engine)  # idempotent
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    assert diff == []
    assert {"registrations", "projection_positions", "account_domains"} <= tables


async def test_migration_0014_files_every_existing_crm_id_s_spelling_free_form(
    store_url: str,
) -> None:
    """Migration 0014 adds `account_crm_ids.crm_spelling` and fills it for the ids filed
    before it (the same `any_spelling` the projection uses), so `GET /v1/ownership` finds
    an old holder's id in any spelling after the upgrade, not only new filings."""
    from alembic import command
    from sqlalchemy import text

    from shared.readmodel.store import alembic_config

    engine = create_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0013"))
            await conn.execute(text(
                "INSERT INTO account_crm_ids (crm_account_id, account_key) VALUES "
                "('ACC-2024-00777', 'crm:ACC-2024-00777'), "
                "('001A000000Jqkx1', 'crm:001A000000Jqkx1')"))
        await migrate(engine)
        async with engine.connect() as conn:
            rows = {r[0]: r[1] for r in (await conn.execute(text(
                "SELECT crm_account_id, crm_spelling FROM account_crm_ids"))).all()}
    finally:
        await engine.dispose()
    assert rows == {"ACC-2024-00777": "acc202400777",
                    "001A000000Jqkx1": "001A000000Jqkx1IAB"}


async def test_migration_0014_refiles_names_under_the_session_28_reading(
    store_url: str,
) -> None:
    """Session 28 changed how names normalise (a home place qualifier goes, "X dba Y" is
    two names) without re-filing the directory: a holder filed as "Acme Industrial (USA)"
    kept its row "acme industrial usa", so after the upgrade `GET /v1/ownership?name=`
    (which normalises the question the new way) and a restarted edge (warmed from these
    rows) no longer found it under its own name, while a rebuilt read model and the
    adjudicator (replaying raw names) did. Migration 0014 re-files each registration's
    and claim's names as the projection now files them."""
    from alembic import command
    from sqlalchemy import insert, select, text

    from shared.readmodel.schema import account_names, registrations
    from shared.readmodel.store import alembic_config

    engine = create_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0013"))
            await conn.execute(insert(registrations), [
                {"id": "reg-a", "partner_id": "p-1", "account_key": "name:US:acme-a",
                 "account": {"name": "Acme Industrial (USA)", "country": "US"},
                 "status": "approved"},
                {"id": "reg-b", "partner_id": "p-2", "account_key": "dom:northwind.com",
                 "account": {"name": "Northwind dba Contoso Analytics", "country": "US",
                             "domain": "northwind.com"}, "status": "approved"}])
            await conn.execute(text(
                "INSERT INTO account_names (country, name, account_key) VALUES "
                "('US', 'acme industrial usa', 'name:US:acme-a'), "
                "('US', 'northwind dba contoso analytics', 'dom:northwind.com'), "
                "('US', 'globex', 'dom:globex.com')"))
        await migrate(engine)
        async with engine.connect() as conn:
            names = {(r[0], r[1]) for r in (await conn.execute(select(
                account_names.c.name, account_names.c.account_key))).all()}
    finally:
        await engine.dispose()
    assert names == {("acme industrial", "name:US:acme-a"),
                     ("northwind", "dom:northwind.com"),
                     ("contoso analytics", "dom:northwind.com"),
                     ("globex", "dom:globex.com")}  # a key with nothing to re-read stays


@pytest.fixture(params=["sqlite", "postgresql"])
async def two_store_urls(request: pytest.FixtureRequest, tmp_path: Path,
                         unique: str) -> tuple[str, str]:
    if request.param == "sqlite":
        return (f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite3'}",
                f"sqlite+aiosqlite:///{tmp_path / 'b.sqlite3'}")
    server: ServerHandle = request.getfixturevalue("postgres_server")
    return (await create_database(server.url, f"rm_{unique}_a"),
            await create_database(server.url, f"rm_{unique}_b"))


def _one_shot_0014(conn: Any) -> None:
    """Migration 0014's data steps as shipped in session 28 (everything in memory at
    once): the reference the streamed version must match row for row."""
    import json

    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql, sqlite

    from shared.accounts.filing import name_rows
    from shared.accounts.salesforce import any_spelling

    conn.execute(sa.text("ALTER TABLE account_crm_ids ADD COLUMN crm_spelling VARCHAR(200)"))
    table = sa.table("account_crm_ids", sa.column("crm_account_id", sa.String),
                     sa.column("crm_spelling", sa.String))
    ids = [str(r[0]) for r in conn.execute(sa.select(table.c.crm_account_id))]
    update = (sa.update(table).where(table.c.crm_account_id == sa.bindparam("id"))
              .values(crm_spelling=sa.bindparam("spelling")))
    if ids:
        conn.execute(update, [{"id": crm, "spelling": any_spelling(crm)} for crm in ids])
    names_table = sa.table("account_names", sa.column("country", sa.String),
                           sa.column("name", sa.String), sa.column("account_key", sa.String))
    keys_table = sa.table("account_name_keys", sa.column("country", sa.String),
                          sa.column("key", sa.String), sa.column("name", sa.String))
    names: dict[tuple[str, str, str], dict[str, Any]] = {}
    keys: dict[tuple[str, str, str], dict[str, Any]] = {}
    refiled: set[str] = set()
    for source in ("registrations", "claims"):
        src = sa.table(source, sa.column("account_key", sa.String), sa.column("account", sa.JSON))
        for key, account in conn.execute(sa.select(src.c.account_key, src.c.account)
                                         .where(src.c.account_key.is_not(None))):
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
    for start in range(0, len(ordered), 1000):
        conn.execute(sa.delete(names_table).where(
            names_table.c.account_key.in_(ordered[start:start + 1000])))
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for target, rows in ((names_table, list(names.values())), (keys_table, list(keys.values()))):
        for start in range(0, len(rows), 1000):
            conn.execute(insert(target).on_conflict_do_nothing(), rows[start:start + 1000])


def _seed_0013(conn: Any) -> None:
    """A directory of 2,500 CRM ids and 3,900 registration and claim rows over 2,400
    account keys (more than two batches of 1,000 in each step, both tables more than one),
    in old-reading names."""
    from sqlalchemy import insert, text

    from shared.readmodel.schema import claims, registrations

    spellings = ("ACC-{n:05d}", "acc_{n}.x", "CRM {n}", "{n:015d}", "\uff23rm\uff0d{n}", "G/{n}/h")
    conn.execute(text("INSERT INTO account_crm_ids (crm_account_id, account_key) "
                      "VALUES (:crm, :key)"),
                 [{"crm": spellings[n % len(spellings)].format(n=n), "key": f"crm:{n}"}
                  for n in range(2500)])
    forms = ("Acme Industrial (USA) {n}", "Northwind {n} dba Contoso Analytics",
             "A {n} dba B dba C", "Globex {n} GmbH", "", "Initech {n}")
    countries = ("US", "DE", None, "NA", "US", "FR")

    def account(n: int) -> Any:
        if n % 97 == 0:
            return None  # no account: nothing to re-read
        found: dict[str, Any] = {"name": forms[n % len(forms)].format(n=n),
                                 "country": countries[n % len(countries)]}
        if n % 3 == 0:
            found["domain"] = f"d{n}.com"
        return found

    conn.execute(insert(registrations), [
        {"id": f"reg-{n}", "partner_id": "p-1", "account_key": f"k:{n % 2100:05d}",
         "account": account(n), "status": "approved"} for n in range(2400)])
    conn.execute(insert(claims), [
        {"id": f"clm-{n}", "rep_id": "r-1", "account_key": f"k:{(n * 7) % 2400:05d}"
         if n % 50 else None, "account": account(n + 5), "status": "approved"}
        for n in range(1500)])
    conn.execute(text("INSERT INTO account_names (country, name, account_key) "
                      "VALUES (:country, :name, :key)"),
                 [{"country": "US", "name": f"acme industrial usa {n}", "key": f"k:{n:05d}"}
                  for n in range(0, 2600, 3)])


async def _directory_rows(engine: Any) -> dict[str, set[tuple[Any, ...]]]:
    from sqlalchemy import text

    async with engine.connect() as conn:
        return {table: {tuple(r) for r in (await conn.execute(text(
                    f"SELECT {columns} FROM {table}"))).all()}
                for table, columns in (
                    ("account_crm_ids", "crm_account_id, account_key, crm_spelling"),
                    ("account_names", "country, name, account_key"),
                    ("account_name_keys", "country, key, name"))}


async def test_migration_0014_streams_in_batches_and_files_what_the_one_shot_version_filed(
    two_store_urls: tuple[str, str],
) -> None:
    """Migration 0014 read every CRM id, and every registration's and claim's account, into
    memory at once (session 28): on a large directory `db upgrade` held it all. It now reads
    keyset-paginated batches of 1,000 (CRM ids by id, rows by account key) with progress
    lines, and files exactly what the one-shot version filed, on SQLite and PostgreSQL."""
    from alembic import command
    from structlog.testing import capture_logs

    from shared.readmodel.store import alembic_config

    streamed_url, one_shot_url = two_store_urls
    streamed, one_shot = create_engine(streamed_url), create_engine(one_shot_url)
    try:
        for engine in (streamed, one_shot):
            async with engine.begin() as conn:
                await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0013"))
                await conn.run_sync(_seed_0013)
        with capture_logs() as logs:
            await migrate(streamed)
        async with one_shot.begin() as conn:
            await conn.run_sync(_one_shot_0014)
        got, expected = await _directory_rows(streamed), await _directory_rows(one_shot)
    finally:
        await streamed.dispose()
        await one_shot.dispose()
    steps = {line["step"]: line for line in logs if line["event"] == "migration_step_done"}
    assert steps["crm_spelling"]["rows"] == 2500
    assert steps["crm_spelling"]["batches"] == 3
    assert steps["account_names"]["rows"] == 2400 + 1500 - 30  # 30 claims name no key
    # 2,100 registration keys and 1,470 claim keys, 1,000 of either per batch at most.
    assert steps["account_names"]["batches"] >= 3
    assert len(expected["account_crm_ids"]) == 2500
    assert len(expected["account_names"]) > 2000
    assert all(spelling is not None for _, _, spelling in got["account_crm_ids"])
    for table, rows in expected.items():
        assert got[table] == rows, (table, sorted(got[table] ^ rows)[:5])


async def test_migration_0015_files_again_the_crm_spellings_session_29_reads_otherwise(
    store_url: str,
) -> None:
    """Session 29 reads a GUID in braces as the GUID and a full-width Salesforce id as that
    id (`any_spelling`); rows 0014 filled kept the old forms, so the SQL look-ups asking
    `crm_spelling` (the edge's fall-back, `GET /v1/ownership`) missed such a holder asked
    in another spelling. Migration 0015 files them again; other rows are left as they are."""
    from alembic import command
    from sqlalchemy import text

    from shared.accounts.salesforce import any_spelling
    from shared.readmodel.store import alembic_config

    braced = "{FB634A91-1C2D-4E5F-8A9B-0C1D2E3F4A5B}"
    wide = "\uff10\uff10\uff11hFGAi3f5dig9"  # "001hFGAi3f5dig9" typed in full width
    old = {braced: "{fb634a911c2d4e5f8a9b0c1d2e3f4a5b}", wide: "001hfgai3f5dig9",
           "ACC-2024-00777": "acc202400777"}
    engine = create_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0014"))
            await conn.execute(text(
                "INSERT INTO account_crm_ids (crm_account_id, account_key, crm_spelling) "
                "VALUES (:crm, :key, :spelling)"),
                [{"crm": crm, "key": f"crm:{n}", "spelling": spelling}
                 for n, (crm, spelling) in enumerate(old.items())])
        await migrate(engine)
        async with engine.connect() as conn:
            rows = {r[0]: r[1] for r in (await conn.execute(text(
                "SELECT crm_account_id, crm_spelling FROM account_crm_ids"))).all()}
    finally:
        await engine.dispose()
    assert rows == {braced: "fb634a911c2d4e5f8a9b0c1d2e3f4a5b", wide: "001hFGAi3f5dig9QDA",
                    "ACC-2024-00777": "acc202400777"}
    assert all(spelling == any_spelling(crm) for crm, spelling in rows.items())


async def test_migration_0017_keeps_old_names_and_names_fold_in_any_order(
    store_url: str,
) -> None:
    """Migration 0017 (session 30): each directory name row keeps its latest filer in
    intake order (`filed_at`) and a rejection's unfiled names are rows of their own
    (`account_names_unfiled`), asked at look-up (`schema.name_filed`). Rows filed before
    0016 (no filer) are kept for good; rows 0016 filed with a filer are replaced by any
    later filing. Then, through the store: (a) a rejection written a batch before its own
    submission takes the name back; (b) a second filing of the name under the key written
    before the first one's rejection keeps it (session 29's directory lost it); an undone
    rejection files its names again. `GET /v1/ownership`'s name look-up agrees."""
    from alembic import command
    from sqlalchemy import select, text

    from services.projections.adapters import repository
    from services.projections.adapters.ownership_reader import account_for_name
    from services.projections.domain.batch import Batch, Loaded
    from shared.readmodel.schema import NAME_KEPT, account_names, name_filed
    from shared.readmodel.store import alembic_config
    from tests.unit.projections.builders import decided, item, submitted

    engine = create_engine(store_url)
    key = "dom:beta.com"

    async def filed() -> set[str]:
        async with engine.connect() as conn:
            return {str(r[0]) for r in (await conn.execute(select(account_names.c.name).where(
                account_names.c.account_key == key, name_filed()))).all()}

    async def fold(*events: tuple[int, object]) -> None:
        batch = Batch(Loaded()).fold_all([
            item(e, f"evt_{n}_{id(e)}", models=("directory",))._replace(  # type: ignore[arg-type]
                offset=n) for n, e in events])
        async with engine.begin() as conn:
            await repository.write(conn, batch)

    def filing(rid: str, name: str) -> object:
        return submitted(rid, "p-2", key=key, name=name, domain="beta.com")

    def rejected(rid: str, *forms: str) -> object:
        return decided(rid, "p-2", status="rejected", rule="duplicate", key=key,
                       until_minutes=None).model_copy(update={"unfiled_names": forms})

    async def owner(name: str) -> str | None:
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda sync: account_for_name(sync, name, "US", 0.99))
        return found[0] if found else None

    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0016"))
            await conn.execute(text(
                "INSERT INTO account_names (country, name, account_key, filed_by) VALUES "
                "('US', 'alpha robotics', 'dom:beta.com', NULL), "
                "('US', 'omega labs', 'dom:beta.com', 'reg_o')"))
        await migrate(engine)
        async with engine.connect() as conn:
            stored = {(r[0], r[1]) for r in (await conn.execute(select(
                account_names.c.name, account_names.c.filed_at))).all()}
        assert stored == {("alpha robotics", NAME_KEPT), ("omega labs", -1)}
        assert await filed() == {"alpha robotics", "omega labs"}
        # A rejection never takes back a row without a filer; a later filing replaces
        # the migrated filer of another row.
        await fold((1, filing("reg_b", "Beta Systems dba Omega Labs")),
                   (1_000, rejected("reg_b", "alpha robotics")))
        assert await filed() == {"alpha robotics", "omega labs", "beta systems"}
        # (a) The rejection of "B dba Gamma" is written a batch before its submission.
        await fold((1_001, rejected("reg_x", "gamma labs")))
        await fold((2, filing("reg_x", "Beta Systems dba Gamma Labs")))
        assert "gamma labs" not in await filed()
        assert await owner("Gamma Labs") is None
        # (b) reg_y brings "Delta Works" and is rejected; reg_z files it again after that
        # decision. Both submissions are written before the rejection.
        await fold((3, filing("reg_y", "Beta Systems dba Delta Works")))
        await fold((4, filing("reg_z", "Beta Systems dba Delta Works")))
        await fold((1_002, rejected("reg_y", "delta works")))
        assert "delta works" in await filed()
        assert await owner("Delta Works") == key
        # reg_x's rejection undone: "Gamma Labs" filed again, kept.
        await fold((1_003, decided("reg_x", "p-2", key=key).model_copy(
            update={"refiled_names": ("gamma labs",), "refiled_country": "US"})))
        assert await filed() == {"alpha robotics", "omega labs", "beta systems",
                                 "gamma labs", "delta works"}
        assert await owner("Gamma Labs") == key
    finally:
        await engine.dispose()
