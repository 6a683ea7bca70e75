"""Engine creation and schema migration for the read-model store."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

if TYPE_CHECKING:  # Alembic is imported when migrating: a rebuild's worker processes
    from alembic.config import Config  # never migrate and start faster without it

MIGRATIONS = Path(__file__).parent / "migrations"
T = TypeVar("T")


SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite statement waits for another connection's write lock before it fails
with "database is locked"."""


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10,
                  pool_timeout: float = 30.0, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
                  **kwargs: Any) -> AsyncEngine:
    """The read-model engine; pool sizes are `Settings.db_pool_*` in a running process.

    On SQLite, `engine.begin()` is a write transaction that takes the write lock when it
    begins (`_SQLiteEngine`); `engine.connect()` reads without it."""
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        in_memory = url.rstrip("/").endswith(":memory:") or url.endswith("///")
        engine = create_async_engine(url, **({} if in_memory else pool), **kwargs)
        _sqlite_transactions(engine.sync_engine, busy_timeout_ms)
        _skip_idle_rollbacks(engine)
        thread = (None if in_memory or kwargs
                  else _ThreadWriter(engine.sync_engine.url.set(drivername="sqlite"),
                                     busy_timeout_ms))
        return _SQLiteEngine(engine.sync_engine, thread=thread)
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


_WRITE = "dealreg_sqlite_write"
"""`Connection.info` flag: the transaction about to begin is a write transaction."""
_BEGUN = "dealreg_sqlite_begun"
"""`Connection.info` flag: this connection's database transaction has begun."""
_LEAD = r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*"
"""Whitespace and comments before a statement's first keyword."""
_WRITES = re.compile(_LEAD + r"(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|SAVEPOINT)\b",
                     re.IGNORECASE | re.DOTALL)
_WITH_WRITE = re.compile(_LEAD + r"WITH\b.*\b(INSERT|UPDATE|DELETE|REPLACE)\b",
                         re.IGNORECASE | re.DOTALL)
"""A statement under a CTE that writes (at worst a read naming such a word takes the lock)."""


def _writes(statement: str, context: Any) -> bool:
    """Whether `statement` may write: what SQLAlchemy compiled as one, else its text. A
    write the driver ran outside a transaction would commit on its own (isolation_level
    None), out of reach of the block's rollback."""
    if context is not None and (context.isinsert or context.isupdate or context.isdelete
                                or context.isddl):
        return True
    return bool(_WRITES.match(statement) or _WITH_WRITE.match(statement))


class _SQLiteEngine(AsyncEngine):
    """SQLite's transactions made explicit (SQLAlchemy's pysqlite "serializable isolation"
    recipe, with IMMEDIATE for writes).

    By default the driver begins a transaction only before the first INSERT/UPDATE/DELETE:
    the reads of a read-modify-write ran outside it, so another process's commit could slip
    in between and be overwritten (a lost update), and a deferred transaction that read
    first and writes later cannot wait for the lock (SQLITE_BUSY_SNAPSHOT fails at once,
    ignoring the busy timeout). Here the driver never begins anything itself:
    `engine.begin()` sends `BEGIN IMMEDIATE`, which waits out the busy timeout for the write
    lock before anything is read, so reads and writes are one serializable unit; a
    `connect()` block reads in autocommit (WAL readers never wait for the writer) and
    begins IMMEDIATE only before its first write.

    The write transactions of one process take turns on an asyncio lock before they take a
    pooled connection: SQLite runs one writer at a time anyway, and writers waiting inside
    SQLite (its busy handler polls, sleeping up to 100 ms, in no order) each held a pooled
    connection, so a burst of them (64 notification outcomes) starved the projection
    worker and emptied the pool. Across processes the busy timeout still applies."""

    def __init__(self, sync_engine: Engine, writers: _Turns | None = None, *,
                 thread: _ThreadWriter | None = None) -> None:
        super().__init__(sync_engine)
        self._writers = writers or _Turns()
        self._thread = thread

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self._writers.turn(), self.connect() as conn:
            # Read (and cleared) by the "begin" hook below; no greenlet round trip.
            conn.sync_connection.info[_WRITE] = True  # type: ignore[union-attr]
            async with conn.begin():
                yield conn

    def execution_options(self, **opt: Any) -> AsyncEngine:
        return _SQLiteEngine(self.sync_engine.execution_options(**opt), self._writers,
                             thread=self._thread)

    @property
    def writes_in_thread(self) -> bool:
        """Whether `write_in_thread` is available (a file database, not `:memory:`)."""
        return self._thread is not None

    async def write_in_thread(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """One write transaction (`BEGIN IMMEDIATE` .. `COMMIT`, `ROLLBACK` if it raised)
        run **whole on a thread of its own**, in one hop, under the process's write turn:
        `work(conn)` is the same coroutine a `begin()` block would run, given a
        connection whose statements run synchronously on that thread (its own SQLite
        connection, the same dialect and types, the same hooks), so it never suspends
        and is driven there to its end. Through `begin()` each statement is a hop to
        aiosqlite's thread and back (a thread wake-up, an event-loop wake-up, the
        greenlet and await layers around it): a projection batch made ~20 of them
        (session 27). A `work` that awaits something real (it cannot finish on the
        thread) raises `NotWhole` after its transaction rolled back; nothing was written,
        so the caller runs it through `begin()` instead. Needs `writes_in_thread`."""
        assert self._thread is not None, "a file database's engine"
        async with self._writers.turn():
            return await self._thread.run(work)

    async def dispose(self, close: bool = True) -> None:
        await super().dispose(close)
        if self._thread is not None and close:
            await self._thread.close()

    async def write_whole(self, prepare: Callable[[], Callable[[sqlite3.Connection], T]]
                          ) -> T:
        """One write transaction run whole on the driver's thread: under the process's
        write turn, `prepare()` (on the event loop, once the turn is held) gives the
        work, which runs between `BEGIN IMMEDIATE` and `COMMIT` (`ROLLBACK` if it raised)
        in **one** hop to aiosqlite's thread. Through `begin()` each statement, the BEGIN
        and the COMMIT are a hop each, and a hop lasts an event-loop cycle and two GIL
        hand-overs (up to the 5 ms switch interval each while the loop is busy): the
        turn, which every writer of the process waits for, was held that long per
        statement. A lock held past the busy timeout raises `sqlite3.OperationalError`
        at BEGIN; nothing is then written."""
        async with self._writers.turn(), self.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            work = prepare()

            def whole() -> T:
                raw: sqlite3.Connection = driver._conn  # on its own thread
                raw.execute("BEGIN IMMEDIATE")
                try:
                    out = work(raw)
                except BaseException:
                    raw.execute("ROLLBACK")
                    raise
                raw.execute("COMMIT")
                return out

            result: T = await driver._execute(whole)
            return result


class NotWhole(RuntimeError):
    """`write_in_thread`: the work awaited something that does not complete on the
    writer's thread (an event-log append, a sleep); its transaction was rolled back."""


def _drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, synchronously."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise NotWhole("the work awaited something outside the writer's thread")


class _ThreadDriver:
    """The driver-level calls the repositories make (`executemany`, `execute`,
    `in_transaction`), on a plain sqlite3 connection: aiosqlite's, without the hop."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    @property
    def in_transaction(self) -> bool:
        return self._raw.in_transaction

    async def executemany(self, sql: str, params: Any) -> sqlite3.Cursor:
        return self._raw.executemany(sql, params)

    async def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self._raw.execute(sql, params)


@dataclass(frozen=True)
class _ThreadRaw:
    dbapi_connection: Any
    driver_connection: _ThreadDriver


class _ThreadConnection:
    """What a write transaction's code uses of an `AsyncConnection` (`execute`,
    `exec_driver_sql`, `get_raw_connection`, `dialect`), answered at once by a sync
    connection on the writer's thread: the results are the buffered `CursorResult`s an
    `AsyncConnection` returns."""

    def __init__(self, conn: Connection) -> None:
        self.sync_connection = conn
        self.dialect = conn.dialect

    async def execute(self, statement: Any, parameters: Any = None, **kw: Any) -> Any:
        return self.sync_connection.execute(statement, parameters, **kw)

    async def exec_driver_sql(self, statement: str, parameters: Any = None, **kw: Any) -> Any:
        return self.sync_connection.exec_driver_sql(statement, parameters, **kw)

    async def get_raw_connection(self) -> _ThreadRaw:
        raw = self.sync_connection.connection.dbapi_connection
        return _ThreadRaw(raw, _ThreadDriver(cast(sqlite3.Connection, raw)))


class _ThreadWriter:
    """`_SQLiteEngine.write_in_thread`'s thread and its SQLite connection (opened on first
    use: an idle process has neither)."""

    def __init__(self, url: Any, busy_timeout_ms: int) -> None:
        self.url = url
        self.busy_timeout_ms = busy_timeout_ms
        self._engine: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None

    def _whole(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        if self._engine is None:
            engine = create_sync_engine(self.url, pool_size=1, max_overflow=0,
                                        connect_args={"check_same_thread": False})
            _sqlite_transactions(engine, self.busy_timeout_ms)
            self._engine = engine
        with self._engine.connect() as conn:
            conn.info[_WRITE] = True
            with conn.begin():
                return _drive(cast(Coroutine[Any, Any, T],
                                   work(cast(AsyncConnection, _ThreadConnection(conn)))))

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="readmodel-writer")
        done = asyncio.get_running_loop().run_in_executor(self._executor, self._whole, work)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # The transaction runs to its end on the thread: the write turn stays held
            # until it did, so no other writer of this process meets its lock.
            await asyncio.wait({done})
            raise

    async def close(self) -> None:
        executor, engine = self._executor, self._engine
        self._executor = self._engine = None
        if executor is None:
            return
        if engine is not None:
            await asyncio.get_running_loop().run_in_executor(executor, engine.dispose)
        executor.shutdown(wait=False)


class _Turns:
    """A FIFO lock for one process's SQLite write transactions, re-entrant for the task
    holding it and the tasks it started meanwhile (asyncio.gather, create_task: they
    inherit its context): a write transaction opened inside another, or by a task the
    holder awaits, does not wait for a turn its own holder keeps -- forever -- but meets
    SQLite's lock and the busy timeout, as it did without this. A task started during a
    turn that writes after the turn ended takes a turn of its own."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._token: object | None = None
        self._held: contextvars.ContextVar[object | None] = contextvars.ContextVar(
            f"dealreg_sqlite_turn_{id(self)}", default=None)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        mine = self._held.get()
        if mine is not None and mine is self._token:
            yield
            return
        async with self._lock:
            token = self._token = object()
            reset = self._held.set(token)
            try:
                yield
            finally:
                self._token = None
                self._held.reset(reset)


def _sqlite_transactions(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy, not the driver, begins
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        info = conn.info
        if info.pop(_WRITE, False):
            _begin_immediate(conn.connection.dbapi_connection)
            info[_BEGUN] = True
        else:
            info[_BEGUN] = False

    @event.listens_for(engine, "before_cursor_execute")
    def _before_write(conn: Connection, cursor: Any, statement: str, _params: Any,
                      context: Any, _many: bool) -> None:
        info = conn.info
        if not info.get(_BEGUN) and conn.in_transaction() and _writes(statement, context):
            cursor.execute("BEGIN IMMEDIATE")
            info[_BEGUN] = True

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _ended(conn: Connection) -> None:
        # An invalidated connection (a statement interrupted: a cancelled task) has no
        # `info` to reach (it raises PendingRollbackError, which aborted the rollback and
        # left the file write-locked); its driver connection is discarded, flag and all.
        if not conn.invalidated:
            conn.info[_BEGUN] = False


def _begin_immediate(dbapi_conn: Any) -> None:
    """`BEGIN IMMEDIATE` straight on the driver (SQLAlchemy's statement machinery for it
    cost as much as the statement)."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")
    finally:
        cursor.close()


def writes_in_thread(engine: AsyncEngine) -> bool:
    """Whether `write_in_thread` can run a write transaction for `engine` (SQLite, a file)."""
    return isinstance(engine, _SQLiteEngine) and engine.writes_in_thread


async def write_in_thread(engine: AsyncEngine,
                          work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """SQLite: `_SQLiteEngine.write_in_thread` (one write transaction in one thread hop)."""
    assert isinstance(engine, _SQLiteEngine), "a SQLite read model's engine"
    return await engine.write_in_thread(work)


async def write_whole(engine: AsyncEngine,
                      prepare: Callable[[], Callable[[sqlite3.Connection], T]]) -> T:
    """SQLite: `_SQLiteEngine.write_whole` (one write transaction in one driver hop)."""
    assert isinstance(engine, _SQLiteEngine), "a SQLite read model's engine"
    return await engine.write_whole(prepare)


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
    from alembic.config import Config

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

    from alembic import command

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
