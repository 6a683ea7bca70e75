"""Schema upgrades take turns under a PostgreSQL advisory lock (real PostgreSQL): replicas
and the migration Job may start together; the schema is migrated once and every one of
them succeeds."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from shared.readmodel.store import MIGRATION_LOCK, create_engine, migrate

REPO = Path(__file__).resolve().parents[2]


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _waiting_on_lock(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"))


async def test_two_concurrent_db_upgrades_one_waits_both_succeed_schema_migrated_once(
        fresh_database: str) -> None:
    holder = await asyncpg.connect(_dsn(fresh_database))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env.update(DEALREG_BACKEND="distributed", DEALREG_DATABASE_URL=fresh_database,
               PYTHONPATH=str(REPO), COLUMNS="250")
    try:
        # Hold the lock so both upgrades are certainly concurrent: both must queue on it.
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dealreg", "db", "upgrade", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            for _ in range(2)]
        deadline = asyncio.get_running_loop().time() + 60
        while await _waiting_on_lock(holder) < 2:
            assert asyncio.get_running_loop().time() < deadline, "upgrades never queued"
            assert all(p.returncode is None for p in procs)
            await asyncio.sleep(0.1)
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        results = [await p.communicate() for p in procs]
        assert [p.returncode for p in procs] == [0, 0], results
        outputs = [" ".join(err.decode().split()) for _, err in results]
        assert all("waiting for its lock" in o for o in outputs), outputs
        assert sorted("upgraded from (empty)" in o for o in outputs) == [False, True], outputs
        assert sum("is current" in o for o in outputs) == 1, outputs
        heads = await holder.fetch("SELECT version_num FROM alembic_version")
        assert len(heads) >= 1
    finally:
        await holder.close()


async def test_concurrent_migrations_in_processes_of_one_release_apply_each_revision_once(
        fresh_database: str) -> None:
    engines = [create_engine(fresh_database) for _ in range(4)]
    try:
        # Without the lock they block each other on PostgreSQL's DDL locks (seen: hung for
        # over ten minutes) or fail on duplicate tables.
        results = await asyncio.wait_for(asyncio.gather(*(migrate(e) for e in engines)), 120)
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(r.changed for r in results) == 1
    assert len({r.after for r in results}) == 1
    assert all(r.before == () for r in results if r.changed)
