"""SQLite write contention in the embedded deployment (`dealreg dev`): another process (an
admin command, a rebuild, an operator's `sqlite3` shell) holds the read model's or the
event log's write lock while the workers run.

Every test drives the real code against real SQLite files, with a second *process*
holding the lock longer than the busy timeout. A worker meeting "database is locked"
must wait and retry its batch (nothing lost, nothing applied twice, no crash); a write
transaction must read and write one snapshot (no update lost to a writer that committed
in between)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from services.projections.adapters.repository import upsert
from services.projections.notifications import NotificationSender
from services.projections.worker import ProjectionWorker
from shared.busy import sqlite_busy
from shared.eventlog import OutgoingRecord, TopicPartition
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.topics import Topics
from shared.events import (
    Account,
    Opportunity,
    PartnerSnapshot,
    RegistrationSubmitted,
    encode,
    new_envelope,
)
from shared.readmodel.schema import (
    account_domains,
    notification_outbox,
    projection_positions,
    registrations,
)
from shared.readmodel.store import create_engine, migrate
from shared.settings import Settings

BUSY_MS = 100
"""The busy timeout of the code under test: far shorter than the lock is held."""
HOLD_SECONDS = 1.0
START = datetime(2026, 11, 1, tzinfo=UTC)

_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


@contextlib.contextmanager
def write_lock_held(path: Path, seconds: float = HOLD_SECONDS) -> Iterator[None]:
    """Another process holds `path`'s SQLite write lock for `seconds` from entry."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield
    finally:
        proc.wait(timeout=30)


def _submitted(topics: Topics, i: int) -> OutgoingRecord:
    key = f"dom:locked-{i}.example"
    event = RegistrationSubmitted(
        registration_id=f"reg_{i:03d}", partner_id=f"p-{i}",
        partner=PartnerSnapshot(partner_id=f"p-{i}"), account_key=key,
        account=Account(name=f"Locked {i}", domain=f"locked-{i}.example"),
        opportunity=Opportunity(title="deal", products=("analytics",)),
        motion="resell", submitted_at=START + timedelta(seconds=i), policy_version=1)
    envelope = new_envelope(event, id=f"evt_{i:03d}", source="urn:test", subject=key,
                            time=START + timedelta(seconds=i))
    return OutgoingRecord(topics.intake, key, encode(envelope))


async def _until(predicate: Callable[[], object], task: asyncio.Task[None],
                 timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if task.done():
            task.result()  # a crashed worker raises its error here
            raise AssertionError("the worker returned while it should run")
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s")
        await asyncio.sleep(0.05)


async def test_a_write_transaction_reads_and_writes_one_snapshot(tmp_path: Path) -> None:
    """A read-modify-write in `engine.begin()` holds the write lock from its first read:
    another process's write waits for it instead of slipping in between (which the
    read-modify-write would silently overwrite, a lost update)."""
    path = tmp_path / "readmodel.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=BUSY_MS)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE counter (k INTEGER PRIMARY KEY, n INTEGER)"))
            await conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
        other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        async with engine.begin() as conn:
            n = (await conn.execute(text("SELECT n FROM counter WHERE k = 1"))).scalar_one()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("UPDATE counter SET n = n + 100 WHERE k = 1")
            await conn.execute(text("UPDATE counter SET n = :n WHERE k = 1"), {"n": n + 1})
        other.execute("UPDATE counter SET n = n + 100 WHERE k = 1")  # free again
        assert other.execute("SELECT n FROM counter").fetchone() == (101,)
        other.close()
    finally:
        await engine.dispose()


async def test_reads_outside_a_write_transaction_do_not_take_the_write_lock(
    tmp_path: Path,
) -> None:
    """Queries (`engine.connect()`) never wait for a writer: WAL readers run beside it."""
    path = tmp_path / "readmodel.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=BUSY_MS)
    try:
        await migrate(engine)
        with write_lock_held(path, seconds=2 * BUSY_MS / 1000 + 0.5):
            async with engine.connect() as conn:
                count = (await conn.execute(select(func.count()).select_from(
                    registrations))).scalar_one()
        assert count == 0
    finally:
        await engine.dispose()


async def test_the_projection_worker_waits_out_a_locked_read_model_and_applies_once(
    tmp_path: Path,
) -> None:
    topics = Topics.named("locked")
    log = EmbeddedEventLog(tmp_path / "eventlog.sqlite3", busy_timeout_ms=BUSY_MS)
    path = tmp_path / "readmodel.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=BUSY_MS)
    await log.start()
    stop = False
    try:
        await log.create_topics(topics.specs(2))
        await migrate(engine)
        await log.append([_submitted(topics, i) for i in range(5)])
        worker = ProjectionWorker(log, engine, topics, group_id="projections")

        async def projected() -> int:
            async with engine.connect() as conn:
                return int((await conn.execute(select(func.count()).select_from(
                    registrations))).scalar_one())

        with write_lock_held(path):
            task = asyncio.create_task(worker.run(lambda: stop))
            await asyncio.sleep(HOLD_SECONDS / 2)
            assert await projected() == 0  # still locked: nothing applied yet
        await _until(lambda: projected(), task)
        assert await projected() == 5
        async with engine.connect() as conn:
            stored = {(r.topic, r.partition): r.position for r in (await conn.execute(
                select(projection_positions).where(
                    projection_positions.c.projection == "registrations"))).all()}
        ends = await log.end_positions(topics.intake)
        assert {(tp.topic, tp.partition): end for tp, end in ends.items() if end} == {
            k: v for k, v in stored.items() if k[0] == topics.intake}
        # More records after the lock: the same worker (never restarted) goes on.
        await log.append([_submitted(topics, i) for i in range(5, 8)])
        await _until(lambda: _equals(projected(), 8), task)
        stop = True
        await asyncio.wait_for(task, 30)
    finally:
        stop = True
        await log.close()
        await engine.dispose()


async def _equals(value: object, expected: int) -> bool:
    assert asyncio.iscoroutine(value)
    return bool(await value == expected)


def _outbox_row(i: int) -> dict[str, object]:
    now = datetime.now(UTC)
    return {"id": f"msg_{i}", "event_id": f"evt_{i}", "dispute_id": "dsp_1",
            "type": "dispute.opened", "recipient_kind": "owner", "recipient_id": "own-1",
            "channel": "webhook", "payload": {"type": "dispute.opened"}, "status": "pending",
            "attempts": 0, "retry_from": 0, "next_attempt_at": now - timedelta(seconds=1),
            "lease_until": None, "last_error": None, "created_at": now,
            "delivered_at": None, "traceparent": None, "tracestate": None}


async def test_the_notification_sender_claims_after_a_lock_instead_of_crashing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "readmodel.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=BUSY_MS)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(notification_outbox.insert(), [_outbox_row(i) for i in range(3)])
        sender = NotificationSender(engine, Settings(backend="embedded", data_dir=tmp_path))
        with write_lock_held(path):
            claimed = await sender.claim(10)
        assert sorted(r["id"] for r in claimed) == ["msg_0", "msg_1", "msg_2"]
        async with engine.connect() as conn:
            leased = (await conn.execute(select(func.count()).select_from(
                notification_outbox).where(
                    notification_outbox.c.lease_until.is_not(None)))).scalar_one()
        assert leased == 3
    finally:
        await engine.dispose()


async def test_the_embedded_log_commits_a_batch_after_a_lock_instead_of_failing_it(
    tmp_path: Path,
) -> None:
    topics = Topics.named("locked")
    path = tmp_path / "eventlog.sqlite3"
    log = EmbeddedEventLog(path, busy_timeout_ms=BUSY_MS)
    await log.start()
    try:
        await log.create_topics(topics.specs(1))
        with write_lock_held(path):
            landed = await log.append([_submitted(topics, i) for i in range(3)])
        assert [a.offset for a in landed] == [0, 1, 2]
        more = await log.append([_submitted(topics, 3)])
        assert [a.offset for a in more] == [3]  # no gap, nothing reported twice
        tp = TopicPartition(topics.intake, 0)
        records = [r async for batch in log.read(tp, 0, 4) for r in batch]
        assert [r.offset for r in records] == [0, 1, 2, 3]
    finally:
        await log.close()


async def test_write_transactions_of_one_process_take_turns_instead_of_timing_out(
    tmp_path: Path,
) -> None:
    """In one process, a write transaction that waits for another (a delivery outcome behind
    a projection batch) queues before it takes a connection; waiting inside SQLite would
    fail after the busy timeout (and hold a pooled connection meanwhile)."""
    path = tmp_path / "readmodel.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=BUSY_MS,
                           pool_size=2, max_overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, n INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1, 0)"))

        async def add(hold: float) -> None:
            async with engine.begin() as conn:
                n = (await conn.execute(text("SELECT n FROM t WHERE k = 1"))).scalar_one()
                await asyncio.sleep(hold)  # longer than the busy timeout
                await conn.execute(text("UPDATE t SET n = :n WHERE k = 1"), {"n": n + 1})

        await asyncio.gather(*(add(3 * BUSY_MS / 1000) for _ in range(5)))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT n FROM t"))).scalar_one() == 5
    finally:
        await engine.dispose()


async def test_outcomes_recorded_at_once_are_each_stored_with_their_attempt(
    tmp_path: Path,
) -> None:
    """Delivery outcomes that end together are written in one transaction (group commit):
    each delivery still gets its own state and attempt row, and the same delivery twice
    counts two attempts."""
    from services.projections.notifications import Outcome
    from shared.readmodel.schema import notification_attempts

    path = tmp_path / "readmodel.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=BUSY_MS)
    try:
        await migrate(engine)
        rows = [_outbox_row(i) for i in range(30)]
        async with engine.begin() as conn:
            await conn.execute(notification_outbox.insert(), rows)
        sender = NotificationSender(engine, Settings(backend="embedded", data_dir=tmp_path))
        outcomes = [Outcome("delivered", 200) if i % 3 == 0 else
                    Outcome("disabled", 410, "gone") if i % 3 == 1 else
                    Outcome("retry", 503, "HTTP 503") for i in range(30)]
        await asyncio.gather(*(sender._record(row, outcome, 7)
                               for row, outcome in zip(rows, outcomes, strict=True)),
                             sender._record(rows[2], Outcome("retry", 500, "HTTP 500"), 9))
        async with engine.connect() as conn:
            stored = {r.id: r for r in (await conn.execute(select(notification_outbox))).all()}
            attempts = (await conn.execute(select(notification_attempts))).all()
        for i, row in enumerate(rows):
            got = stored[row["id"]]
            want = ("delivered", "disabled", "pending")[i % 3]
            assert got.status == want and got.lease_until is None
            assert got.attempts == (2 if i == 2 else 1)
            assert (got.next_attempt_at is None) == (want != "pending")
        assert len(attempts) == 31
        assert sorted(a.attempt for a in attempts if a.delivery_id == rows[2]["id"]) == [1, 2]
    finally:
        await engine.dispose()


async def test_a_write_cancelled_while_waiting_for_the_lock_leaves_the_file_unlocked(
    tmp_path: Path,
) -> None:
    """A task cancelled mid-write (a client that disconnects, a shutdown) ends with
    CancelledError and its transaction is rolled back: the store is not left holding
    SQLite's write lock, which would lock out every other writer, in this process and in
    every other one, for as long as the process lives."""
    path = tmp_path / "readmodel.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=5000)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))

        async def write() -> None:
            async with engine.connect() as conn:  # BEGIN IMMEDIATE before the INSERT
                await conn.execute(text("INSERT INTO t VALUES (1)"))
                await conn.commit()

        with write_lock_held(path, seconds=1.0):
            task = asyncio.create_task(write())
            await asyncio.sleep(0.3)  # waiting inside SQLite's busy handler
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        deadline = asyncio.get_running_loop().time() + 15
        while True:  # the interrupted BEGIN finishes in the driver's thread, then rolls back
            try:
                other.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.1)
        other.execute("ROLLBACK")
        other.close()
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (2)"))
            assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [2]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("statement", [
    "INSERT INTO t VALUES (1)",
    "insert or replace into t values (1)",
    "WITH src(x) AS (SELECT 1) INSERT INTO t SELECT x FROM src",
    "/* a reason */ INSERT INTO t VALUES (1)",
    "-- a reason\nUPDATE t SET x = x + 1",
    "with src(x) as (select 7) delete from t where x in (select x from src)",
    "core-insert-with-cte",
])
async def test_a_read_block_that_writes_and_fails_leaves_nothing_written(
    tmp_path: Path, statement: str,
) -> None:
    """A write in an `engine.connect()` block begins a transaction (IMMEDIATE) before it
    runs, whatever the statement starts with (a CTE, a comment), so a block that fails
    before its commit applies nothing: no write slips out in autocommit, half-applied."""
    from sqlalchemy import column, insert, literal, table

    path = tmp_path / "readmodel.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=BUSY_MS)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (7)"))
        t = table("t", column("x"))
        src = select(literal(1).label("x")).cte("src")
        stmt: Any = (insert(t).from_select(["x"], select(src.c.x)).add_cte(src)
                     if statement == "core-insert-with-cte" else text(statement))
        with pytest.raises(RuntimeError, match="before the commit"):
            async with engine.connect() as conn:
                await conn.execute(stmt)
                raise RuntimeError("failed before the commit")
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [7]
    finally:
        await engine.dispose()


async def test_a_write_in_a_task_started_by_a_writer_fails_busy_instead_of_hanging(
    tmp_path: Path,
) -> None:
    """A write transaction that awaits a task of its own (asyncio.gather, create_task) which
    writes too: the child cannot have the lock while its parent holds it, and waits SQLite's
    busy timeout then fails "database is locked" (as before the in-process turns), instead
    of waiting forever for a turn its own parent holds (a silent deadlock of every writer
    of the process). A child that runs after its parent's turn takes its own turn."""
    path = tmp_path / "readmodel.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=BUSY_MS)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))

        async def child(x: int) -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": x})

        later: asyncio.Task[None] | None = None
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            with pytest.raises(Exception) as failed:
                await asyncio.wait_for(asyncio.gather(child(2)), timeout=20)
            assert sqlite_busy(failed.value), failed.value
            later = asyncio.create_task(child(3))  # runs once this turn has ended
            await asyncio.sleep(0)
        await asyncio.wait_for(later, timeout=20)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT x FROM t ORDER BY x"))).scalars().all() \
                == [1, 3]
    finally:
        await engine.dispose()


async def test_indented_and_commented_reads_do_not_take_the_write_lock(tmp_path: Path) -> None:
    """Hand-written queries (indented, commented, under a CTE that names columns such as
    `updated_at`) are reads: they run beside another process's writer, no lock taken."""
    path = tmp_path / "readmodel.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=BUSY_MS)
    try:
        await migrate(engine)
        indent = "\n" + " " * 40
        reads = [indent + "-- how many" + indent + "SELECT count(*) FROM registrations",
                 "/* count */ WITH r AS (SELECT 1 AS updated_at FROM registrations)\n"
                 "    SELECT count(*) FROM r"]
        with write_lock_held(path, seconds=2 * BUSY_MS / 1000 + 0.5):
            async with engine.connect() as conn:
                counts = [(await conn.execute(text(q))).scalar_one() for q in reads]
        assert counts == [0, 0]
    finally:
        await engine.dispose()


async def test_a_bulk_write_outside_a_write_transaction_is_refused_not_autocommitted(
    tmp_path: Path,
) -> None:
    """The bulk path sends rows straight to the driver; in a read block (`connect()`),
    where SQLite holds no transaction, it would commit row by row. It is refused, and
    nothing is written; inside `begin()` the same rows land."""
    path = tmp_path / "readmodel.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=BUSY_MS)
    row = {"domain": "example.com", "account_key": "dom:example.com"}
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            with pytest.raises(RuntimeError, match="write transaction"):
                await upsert(conn, account_domains, [row], ["domain"])
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(
                account_domains))).scalar_one() == 0
        async with engine.begin() as conn:
            await upsert(conn, account_domains, [row], ["domain"])
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(
                account_domains))).scalar_one() == 1
    finally:
        await engine.dispose()
