"""Engine creation and schema migration for the read-model store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10,
                  pool_timeout: float = 30.0, **kwargs: Any) -> AsyncEngine:
    """The read-model engine; pool sizes are `Settings.db_pool_*` in a running process."""
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        in_memory = url.rstrip("/").endswith(":memory:") or url.endswith("///")
        engine = create_async_engine(url, **({} if in_memory else pool), **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        _skip_idle_rollbacks(engine)
        return engine
    return create_async_engine(url, **pool, **kwargs)


def _skip_idle_rollbacks(engine: AsyncEngine) -> None:
    """No ROLLBACK on a SQLite connection that holds no transaction (one that only read):
    SQLite has nothing to undo, and through aiosqlite every statement is a hop to the
    connection's thread and back -- one per read-only `engine.connect()` block, the
    commonest in a loaded `dealreg dev`."""
    dialect = engine.sync_engine.dialect
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None and getattr(driver, "in_transaction", True) is False:
            return
        rollback(dbapi_connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


def reader(engine: AsyncEngine) -> AsyncEngine:
    """`engine` for reads only, without a transaction of their own on PostgreSQL.

    The asyncpg dialect opens a transaction for every checked-out connection (`BEGIN`) and
    the pool rolls it back on return (`ROLLBACK`): two extra round trips around every read,
    about half of a registration's statements before the append (measured with
    `log_statement = all`). In PostgreSQL's READ COMMITTED each statement takes its own
    snapshot anyway, so a read in autocommit sees exactly what it saw inside the
    transaction. Same pool, same connections; SQLite is left as it is (its transactions
    are what orders its readers and writers). Never use it for a write."""
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


MIGRATION_LOCK = 0x6465616C72656701
"""PostgreSQL advisory lock key ("dealreg" + 1) held by every schema upgrade."""


@dataclass(frozen=True)
class Migration:
    """What one `migrate` call did: revisions before and after, and whether it waited for
    another process's upgrade."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    waited: bool = False

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _heads(connection: Connection) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


async def migrate(engine: AsyncEngine,
                  on_wait: Callable[[], None] | None = None) -> Migration:
    """Bring the schema to the newest revision of every branch (idempotent).

    Each service owns a branch of revisions for its own tables; `heads` applies them all.
    On PostgreSQL the upgrade runs under a transaction-scoped advisory lock: processes that
    start together (several replicas, a migration Job) take turns, the first upgrades and
    the others find the schema current once the lock is theirs. `on_wait` is called when
    another process holds the lock."""
    waited = False

    def upgrade(connection: Connection) -> tuple[tuple[str, ...], tuple[str, ...]]:
        before = _heads(connection)
        command.upgrade(alembic_config(connection), "heads")
        return before, _heads(connection)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            got = (await conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                      {"key": MIGRATION_LOCK})).scalar_one()
            if not got:
                waited = True
                if on_wait is not None:
                    on_wait()
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": MIGRATION_LOCK})
        before, after = await conn.run_sync(upgrade)
    return Migration(before, after, waited)
