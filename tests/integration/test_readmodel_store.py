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
