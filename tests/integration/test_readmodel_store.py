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
