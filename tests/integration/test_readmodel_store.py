"""The read-model store on SQLite and real PostgreSQL: migrations create exactly the schema
the code queries, and migrating twice changes nothing."""

from __future__ import annotations

from pathlib import Path

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


async def test_migration_0016_keeps_old_names_and_a_rejection_takes_back_only_its_own(
    store_url: str,
) -> None:
    """Migration 0016 records which filing first filed each directory name
    (`account_names.filed_by`): a filing rejected at its decision takes back the name
    forms its decision says were unfiled (`unfiled_names`, session 29), so a restarted
    edge and `GET /v1/ownership?name=` no longer find a rival's rejected "B dba A" under
    B. Rows filed before the migration have no provenance and are never removed; a row
    another filing filed first stays; a later filing of the name files it again."""
    from alembic import command
    from sqlalchemy import select, text

    from services.projections.adapters import repository
    from services.projections.domain.batch import Batch, Loaded
    from shared.readmodel.schema import account_names
    from shared.readmodel.store import alembic_config
    from tests.unit.projections.builders import decided, item, submitted

    engine = create_engine(store_url)
    key = "dom:beta.com"

    async def rows() -> set[tuple[str, str | None]]:
        async with engine.connect() as conn:
            return {(r[0], r[1]) for r in (await conn.execute(select(
                account_names.c.name, account_names.c.filed_by).where(
                account_names.c.account_key == key))).all()}

    async def fold(*events: object) -> None:
        batch = Batch(Loaded()).fold_all([
            item(e, f"evt_{i}_{id(e)}", models=("directory",))  # type: ignore[arg-type]
            for i, e in enumerate(events)])
        async with engine.begin() as conn:
            await repository.write(conn, batch)

    def rejected(rid: str, *forms: str) -> object:
        return decided(rid, "p-2", status="rejected", rule="duplicate", key=key,
                       until_minutes=None).model_copy(update={"unfiled_names": forms})

    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0014"))
            await conn.execute(text(
                "INSERT INTO account_names (country, name, account_key) VALUES "
                "('US', 'alpha robotics', 'dom:beta.com')"))
        await migrate(engine)
        assert await rows() == {("alpha robotics", None)}  # existing: unknown provenance
        await fold(submitted("reg_b", "p-2", key=key, name="Beta Systems", domain="beta.com"))
        (own,) = {n for n, _ in await rows()} - {"alpha robotics"}
        # "B dba Gamma dba"-style filing: rejected, its decision unfiles its new forms; the
        # old row (no provenance) and B's own name (reg_b's) stay though named too.
        await fold(submitted("reg_x", "p-2", key=key, name="Beta Systems dba Gamma Labs",
                             domain="beta.com"))
        assert ("gamma labs", "reg_x") in await rows()
        await fold(rejected("reg_x", "gamma labs", "alpha robotics", own))
        assert await rows() == {("alpha robotics", None), (own, "reg_b")}
        # Submitted and rejected in one batch, then filed again by another filing.
        await fold(submitted("reg_y", "p-3", key=key, name="Beta Systems dba Delta Works",
                             domain="beta.com"),
                   rejected("reg_y", "delta works"),
                   submitted("reg_z", "p-4", key=key, name="Beta Systems dba Delta Works",
                             domain="beta.com"))
        assert await rows() == {("alpha robotics", None), (own, "reg_b"),
                                ("delta works", "reg_z")}
    finally:
        await engine.dispose()
