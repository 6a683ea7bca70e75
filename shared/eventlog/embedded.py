"""The embedded event log: Kafka's model (topics, partitions, offsets, consumer groups,
transactions) on one SQLite file, for `dealreg dev`, demos, small programs and fast tests.

Design:
- One writer task owns the only write connection. Concurrent appends and transactions that
  arrive while a commit is in flight are committed together in the next SQLite transaction
  (group commit), so the fsync that makes a record durable is shared, not paid per record.
- Offsets are assigned by that writer in memory and restored if a commit fails, so a
  partition never has a gap or a record that was reported but not written.
- Committed end positions are kept in memory; an idle consumer waits on an asyncio event
  and never queries the file. Readers see only committed ends (`_visible`): an offset the
  writer assigned is not readable before its commit (a consumer polling meanwhile found
  nothing and polled again at once, a dozen reads per record while a commit was in flight).
- A transaction (outputs + a consumer group's new positions) is one SQLite transaction:
  the embedded equivalent of Kafka's consume-process-produce transaction.
- One process owns the file (an exclusive lock says so loudly); a consumer group has one
  member, which is assigned every partition of its topics.
- Writes begin IMMEDIATE (the write lock is taken, waiting up to the busy timeout, before
  anything is written); a commit that still finds the file locked by another connection is
  retried with back-off (shared/busy.py), never failed half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import os
import sqlite3
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from shared.busy import retry_when_busy
from shared.eventlog.base import (
    Appended,
    EventLog,
    OutgoingRecord,
    Processor,
    ReadIterator,
    Record,
    StartPositions,
    Subscription,
    TopicPartition,
    TopicSpec,
)
from shared.eventlog.partitioner import partition_for

T = TypeVar("T")

TAIL_BYTES = 4 * 2**20
"""The records committed last, kept in memory up to about this many bytes: a consumer
close behind the writer (the adjudicator, the projections in `dealreg dev`) is served
from them without a read on the reader thread. Older positions are read from the file."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY, partitions INTEGER NOT NULL,
    retention_ms INTEGER NOT NULL, compacted INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    key TEXT NOT NULL, value BLOB NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_positions (
    group_id TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
"""


class EventLogClosed(RuntimeError):
    """An append that the embedded log, closing, will not write."""


class EventLogOutcomeUnknown(EventLogClosed):
    """An append whose commit was under way on a disk that did not finish it before close
    gave up: it was never acknowledged, and it may or may not be in the file."""


CLOSE_GRACE_SECONDS = 5.0
"""What close() adds to its flush timeout by default: to stop the writer once the flush is
abandoned (up to 40 % of it waiting for a commit under way), and to close the files. Past
it close returns even if the disk never answers."""


class EventLogLocked(RuntimeError):
    """Another process has this embedded log open."""


class EventLogUnavailable(RuntimeError):
    """The embedded log's file cannot be opened (a read-only directory, a damaged file)."""

    def __init__(self, path: Path, exc: BaseException) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        hint = ("it is damaged, or not a dealreg event log: restore the data directory "
                "from an export (`dealreg import`)" if "not a database" in reason else
                "is the data directory writable? SQLite writes its -wal and -shm files "
                "beside the log")
        super().__init__(f"cannot open the embedded event log {path.resolve()}: {reason} "
                         f"({hint})")


@dataclass
class _Write:
    records: Sequence[OutgoingRecord]
    positions: Sequence[tuple[str, TopicPartition, int]]
    future: asyncio.Future[list[Appended]]


@dataclass
class _Member:
    group_id: str
    topics: tuple[str, ...]
    positions: dict[TopicPartition, int] = field(default_factory=dict)


class EmbeddedEventLog(EventLog):
    def __init__(
        self, path: Path | str, *, synchronous: str = "FULL", max_batch_records: int = 20_000,
        linger_seconds: float = 0.0, busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self.linger_seconds = linger_seconds
        """How long `poll` waits for more once records are readable, unless a full batch is
        (fetch.max.wait): batches of several records under load instead of one each."""
        self._synchronous = synchronous
        self._max_batch_records = max_batch_records
        self._writer_pool: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._topics: dict[str, int] = {}
        self._ends: dict[TopicPartition, int] = defaultdict(int)
        """The next offset the writer assigns, per partition (ahead of `_visible` while a
        commit is in flight)."""
        self._visible: dict[TopicPartition, int] = {}
        """The committed end of each partition: what readers may read up to."""
        self._queue: asyncio.Queue[_Write | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._closing = False
        self._abandoned = False
        """close() gave up flushing: no write commits from then on (`_commit_lock`)."""
        self._commit_lock = threading.Lock()
        self._close_lock = asyncio.Lock()
        self._outstanding: dict[asyncio.Future[list[Appended]], int] = {}
        """Appends not answered yet, with their record counts (what a close may not flush)."""
        self._in_flight: list[_Write] = []
        """The batch the writer thread is committing."""
        self.unflushed: str | None = None
        """After a close that could not flush everything: what was not made durable (None:
        every append was answered with its offsets, which are in the file)."""
        self.stuck = False
        """After close: the writer thread never came back (a wedged disk). Its thread and
        the file's lock live on until the process exits (which must not wait for them)."""
        self._appended = asyncio.Event()
        self._members: dict[str, EmbeddedSubscription] = {}
        self._tail: dict[TopicPartition, deque[Record]] = {}
        """Per partition, the last records committed, with contiguous offsets."""
        self._tail_order: deque[TopicPartition] = deque()
        self._tail_bytes = 0

    # lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(f"{self.path}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise EventLogUnavailable(self.path, exc) from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise EventLogLocked(
                f"{self.path} is in use by another dealreg process; stop it or use another "
                "--data-dir"
            ) from exc
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="eventlog-writer")
        self._reader_pool = ThreadPoolExecutor(1, thread_name_prefix="eventlog-reader")
        self._queue = asyncio.Queue()
        self._closing = False
        self._abandoned = False
        try:
            self._writer = await self._on_writer(self._open, True)
            self._reader = await self._on_reader(self._open, False)
            topics, ends = await self._on_reader(self._load_state)
        except sqlite3.Error as exc:
            for conn in (self._writer, self._reader):
                if conn is not None:
                    conn.close()
            self._writer = self._reader = None
            for pool in (self._writer_pool, self._reader_pool):
                pool.shutdown(wait=True)
            self._writer_pool = self._reader_pool = None
            lock_fd, self._lock_fd = self._lock_fd, None
            _unlock(lock_fd)
            raise EventLogUnavailable(self.path, exc) from exc
        self._topics = topics
        # All from the file: what an earlier start kept (ends, the tail) may not be its
        # records any more (the file replaced or wiped in between).
        self._ends.clear()
        self._ends.update(ends)
        self._visible = dict(ends)
        self._tail.clear()
        self._tail_order.clear()
        self._tail_bytes = 0
        self._writer_task = asyncio.create_task(self._write_loop(), name="eventlog-writer")

    async def close(self, flush_timeout: float = 10.0,
                    grace: float = CLOSE_GRACE_SECONDS) -> None:
        """Closing flushes: appends already queued are written and answered with their
        offsets, as if the log stayed open; appends submitted once closing began raise
        `EventLogClosed`. Only a flush that cannot finish within `flush_timeout` (another
        process holding the file's write lock, a disk that stalls) is abandoned: its
        appends, and any still queued behind it, are answered with `EventLogClosed`, never
        left unanswered, and none of them is written afterwards (an error means not in the
        file) - except a commit the disk is in the middle of (its fsync never returns):
        that one is answered with `EventLogOutcomeUnknown` (never acknowledged; it may be
        in the file). close returns within `flush_timeout + grace` whatever the disk does;
        `unflushed` then says what was not made durable and `stuck` whether a thread of
        the log never came back. A close while one is under way waits for it;
        closing a closed log does nothing."""
        async with self._close_lock:
            await self._close(flush_timeout, grace)

    async def _close(self, flush_timeout: float, grace: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + flush_timeout + grace
        for member in list(self._members.values()):
            await member.close()
        writer_done = True
        if self._writer_task is not None:
            self.unflushed, self.stuck = None, False
            self._closing = True
            self._queue.put_nowait(None)  # the writer stops here, after what came before
            done, _ = await asyncio.wait({self._writer_task}, timeout=flush_timeout)
            if not done:
                at_risk = dict(self._outstanding)
                uncertain: set[asyncio.Future[list[Appended]]] = set()
                # Abandoned, not cancelled: a cancelled write kept running on the writer
                # thread and could commit once the lock was free, after its append was
                # answered with an error. From here on no write commits; one committing
                # right now finishes first and is answered with its offsets, unless the
                # disk never finishes it (then its outcome is unknown).
                settled = await loop.run_in_executor(None, self._abandon, 0.4 * grace)
                done, _ = await asyncio.wait(
                    {self._writer_task}, timeout=max(0.0, deadline - loop.time() - 0.2 * grace))
                if not done:  # the writer thread is wedged: answer for it, stop waiting
                    writer_done = False
                    if not settled:
                        uncertain = {item.future for item in self._in_flight}
                    for item in self._in_flight:
                        if not item.future.done():
                            item.future.set_exception(
                                EventLogClosed("the embedded event log closed before this "
                                               "append") if settled else
                                EventLogOutcomeUnknown(
                                    "the disk did not finish this append's commit before "
                                    "the embedded event log closed: it may or may not be "
                                    "written"))
                    self._writer_task.cancel()
                self._refuse_queued()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer_task
                self.unflushed = _unflushed(at_risk, uncertain)
                self.stuck = not writer_done
            else:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer_task
            self._writer_task = None
            self._refuse_queued()
        closings = []
        for conn, pool in ((self._writer, self._writer_pool), (self._reader, self._reader_pool)):
            if conn is not None and pool is not None:
                closings.append(loop.run_in_executor(pool, conn.close))  # after its work
                pool.shutdown(wait=False)
        self._writer = self._reader = None
        self._writer_pool = self._reader_pool = None
        lock_fd, self._lock_fd = self._lock_fd, None
        closed = asyncio.gather(*closings, return_exceptions=True)
        if writer_done:
            await asyncio.wait({closed}, timeout=max(0.0, deadline - loop.time()))
        if closed.done():
            _unlock(lock_fd)
        else:
            # A thread the disk never answers may still write the file: the lock is held
            # until that thread is done (or the process exits, which must not wait for it).
            self.stuck = True
            closed.add_done_callback(lambda _: _unlock(lock_fd))

    def _refuse_queued(self) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                self._outstanding.pop(item.future, None)
                if not item.future.done():
                    item.future.set_exception(
                        EventLogClosed("the embedded event log closed before this append"))

    def _open(self, writer: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        if writer:
            conn.executescript(_SCHEMA)
        return conn

    def _load_state(self) -> tuple[dict[str, int], dict[TopicPartition, int]]:
        assert self._reader is not None
        topics = dict(self._reader.execute("SELECT name, partitions FROM topics").fetchall())
        ends = {
            TopicPartition(t, p): end + 1
            for t, p, end in self._reader.execute(
                'SELECT topic, partition, MAX("offset") FROM records GROUP BY topic, partition'
            )
        }
        return topics, ends

    async def _on_writer(self, fn: Callable[..., T], *args: Any) -> T:
        if self._writer_pool is None:
            raise RuntimeError("the embedded event log is not started")
        return await asyncio.get_running_loop().run_in_executor(self._writer_pool, fn, *args)

    async def _on_reader(self, fn: Callable[..., T], *args: Any) -> T:
        if self._reader_pool is None:
            raise RuntimeError("the embedded event log is not started")
        return await asyncio.get_running_loop().run_in_executor(self._reader_pool, fn, *args)

    # topics ------------------------------------------------------------------------------

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        new = [s for s in specs if s.name not in self._topics]
        if not new:
            return

        def write() -> None:
            assert self._writer is not None
            self._writer.executemany(
                "INSERT OR IGNORE INTO topics VALUES (?, ?, ?, ?)",
                [(s.name, s.partitions, s.retention_ms, int(s.compacted)) for s in new],
            )

        await self._on_writer(write)
        for spec in new:
            self._topics[spec.name] = spec.partitions

    async def partitions(self, topic: str) -> int:
        try:
            return self._topics[topic]
        except KeyError:
            raise KeyError(f"unknown topic {topic!r}; run `dealreg topics create`") from None

    # writing -----------------------------------------------------------------------------

    async def append(self, records: Sequence[OutgoingRecord]) -> list[Appended]:
        return await self._submit(records, ())

    async def _submit(
        self,
        records: Sequence[OutgoingRecord],
        positions: Sequence[tuple[str, TopicPartition, int]],
    ) -> list[Appended]:
        if self._closing:
            raise EventLogClosed("the embedded event log is closing")
        if self._writer_task is None:
            raise RuntimeError("the embedded event log is not started")
        for record in records:
            if record.topic not in self._topics:
                raise KeyError(f"unknown topic {record.topic!r}")
            if record.partition is not None and not 0 <= record.partition < self._topics[
                record.topic
            ]:
                raise ValueError(f"{record.topic} has no partition {record.partition}")
        future: asyncio.Future[list[Appended]] = asyncio.get_running_loop().create_future()
        self._outstanding[future] = len(records)
        future.add_done_callback(self._answered)
        self._queue.put_nowait(_Write(records, positions, future))
        return await future

    def _answered(self, future: asyncio.Future[list[Appended]]) -> None:
        if not future.cancelled():  # a caller that gave up: its write may still be under way
            self._outstanding.pop(future, None)

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:  # close(): everything queued before it is written
                return
            batch = [first]
            count = len(first.records)
            stop = False
            while not self._queue.empty() and count < self._max_batch_records:
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
                count += len(item.records)
            self._in_flight = batch
            try:
                await self._commit_batch(batch)
            finally:
                self._in_flight = []
                for item in batch:
                    self._outstanding.pop(item.future, None)
            if stop:
                return

    async def _commit_batch(self, batch: list[_Write]) -> None:
        before = dict(self._ends)
        now_ms = int(time.time() * 1000)
        rows: list[tuple[str, int, int, str, bytes, int]] = []
        results: list[list[Appended]] = []
        positions: list[tuple[str, str, int, int]] = []
        for item in batch:
            landed = []
            for rec in item.records:
                partition = (rec.partition if rec.partition is not None
                             else partition_for(rec.key, self._topics[rec.topic]))
                tp = TopicPartition(rec.topic, partition)
                offset = self._ends[tp]
                self._ends[tp] = offset + 1
                rows.append((rec.topic, tp.partition, offset, rec.key, rec.value, now_ms))
                landed.append(Appended(rec.topic, tp.partition, offset))
            results.append(landed)
            positions.extend((g, tp.topic, tp.partition, pos) for g, tp, pos in item.positions)
        try:
            # Another process holding the file's write lock past the busy timeout (an
            # operator's shell, a backup tool): the transaction rolled back whole, so the
            # same rows (same offsets) are written again after a back-off.
            await retry_when_busy(lambda: self._on_writer(self._write_rows, rows, positions),
                                  what="eventlog.commit")
        except BaseException as exc:
            # Nothing of this batch is in the file: give the offsets back.
            self._ends.clear()
            self._ends.update(before)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(
                        exc if isinstance(exc, Exception) else RuntimeError("write cancelled")
                    )
            if not isinstance(exc, Exception):
                raise
            return
        for row in rows:
            tp = TopicPartition(row[0], row[1])
            self._visible[tp] = max(self._visible.get(tp, 0), row[2] + 1)
            self._remember(tp, Record(row[0], row[1], row[2], row[3], row[4], row[5]))
        for item, landed in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(landed)
        self._appended.set()
        self._appended = asyncio.Event()

    def _remember(self, tp: TopicPartition, record: Record) -> None:
        """Keep a committed record in the tail, evicting the oldest beyond `TAIL_BYTES`."""
        tail = self._tail.get(tp)
        if tail is None:
            tail = self._tail[tp] = deque()
        elif tail and tail[-1].offset + 1 != record.offset:  # never expected: start over
            self._tail_bytes -= sum(_size(r) for r in tail)
            tail.clear()
        tail.append(record)
        self._tail_order.append(tp)
        self._tail_bytes += _size(record)
        while self._tail_bytes > TAIL_BYTES and self._tail_order:
            oldest = self._tail[self._tail_order.popleft()]
            if oldest:
                self._tail_bytes -= _size(oldest.popleft())

    def _cached(self, tp: TopicPartition, start: int, end: int, limit: int
                ) -> list[Record] | None:
        """Records [start, min(end, start + limit)) from the tail, or None if it does not
        hold them all."""
        tail = self._tail.get(tp)
        stop = min(end, start + limit)
        if not tail or tail[0].offset > start or tail[-1].offset < stop - 1:
            return None
        first = start - tail[0].offset
        return list(itertools.islice(tail, first, first + (stop - start)))

    def _abandon(self, timeout: float) -> bool:
        """Let no write commit from now on. True: none is committing; False: a commit
        that began was not finished within `timeout` (the disk stalls in its fsync)."""
        if self._commit_lock.acquire(timeout=timeout):
            try:
                self._abandoned = True
            finally:
                self._commit_lock.release()
            return True
        self._abandoned = True  # every write checks it under the lock the stalled one holds
        return False

    def _commit(self, conn: sqlite3.Connection) -> None:
        """COMMIT: with synchronous=FULL the fsync that makes the batch durable."""
        conn.execute("COMMIT")

    def _write_rows(
        self,
        rows: list[tuple[str, int, int, str, bytes, int]],
        positions: list[tuple[str, str, int, int]],
    ) -> None:
        assert self._writer is not None
        conn = self._writer
        if self._abandoned:
            raise EventLogClosed("the embedded event log closed before this append")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)", rows)
            if positions:
                conn.executemany(
                    "INSERT INTO group_positions VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (group_id, topic, partition) "
                    "DO UPDATE SET position = excluded.position",
                    positions,
                )
            with self._commit_lock:  # committed, or abandoned by close(): never both
                if self._abandoned:
                    raise EventLogClosed("the embedded event log closed before this append")
                self._commit(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # reading -----------------------------------------------------------------------------

    async def end_positions(self, topic: str) -> dict[TopicPartition, int]:
        n = await self.partitions(topic)
        return {TopicPartition(topic, p): self._visible.get(TopicPartition(topic, p), 0)
                for p in range(n)}

    async def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[TopicPartition, int]:
        ends = await self.end_positions(topic)

        def query() -> dict[TopicPartition, int]:
            assert self._reader is not None
            found = dict(self._reader.execute(
                'SELECT partition, MIN("offset") FROM records WHERE topic = ? AND ts >= ? '
                "GROUP BY partition", (topic, timestamp_ms)).fetchall())
            return {tp: min(found.get(tp.partition, end), end) for tp, end in ends.items()}

        return await self._on_reader(query)

    async def committed(self, group_id: str, topic: str) -> dict[TopicPartition, int]:
        n = await self.partitions(topic)

        def query() -> dict[TopicPartition, int]:
            assert self._reader is not None
            found = dict(
                self._reader.execute(
                    "SELECT partition, position FROM group_positions "
                    "WHERE group_id = ? AND topic = ?",
                    (group_id, topic),
                ).fetchall()
            )
            return {TopicPartition(topic, p): found.get(p, 0) for p in range(n)}

        return await self._on_reader(query)

    def _fetch(self, tp: TopicPartition, start: int, end: int, limit: int) -> list[Record]:
        assert self._reader is not None
        rows = self._reader.execute(
            'SELECT "offset", key, value, ts FROM records WHERE topic = ? AND partition = ? '
            'AND "offset" >= ? AND "offset" < ? ORDER BY "offset" LIMIT ?',
            (tp.topic, tp.partition, start, end, limit),
        ).fetchall()
        return [Record(tp.topic, tp.partition, o, k, v, ts) for o, k, v, ts in rows]

    def read(self, tp: TopicPartition, start: int, end: int, batch: int = 5000) -> ReadIterator:
        return _RangeReader(self, tp, start, end, batch)

    async def wait_for_append(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._appended.wait(), timeout)

    # consumer groups ---------------------------------------------------------------------

    async def subscribe(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        start_positions: StartPositions | None = None,
    ) -> EmbeddedSubscription:
        if group_id in self._members:
            raise RuntimeError(
                f"consumer group {group_id!r} already has a member: the embedded log runs one "
                "member per group"
            )
        assignment = [
            TopicPartition(t, p) for t in topics for p in range(await self.partitions(t))
        ]
        if start_positions is not None:
            positions = dict(await start_positions(assignment))
        else:
            # Fencing: a previous member cancelled mid-transaction may still have its batch
            # queued; it commits before this barrier, so the positions read next include it
            # (else its records would be processed again: duplicate outputs).
            await self._submit((), ())
            positions = {}
            for t in topics:
                positions.update(await self.committed(group_id, t))
        member = EmbeddedSubscription(self, group_id, {tp: positions.get(tp, 0)
                                                       for tp in assignment})
        self._members[group_id] = member
        return member

    async def run_transactional(
        self,
        group_id: str,
        topics: Sequence[str],
        processor: Processor,
        *,
        max_records: int = 5000,
        tick_interval: float = 0.25,
        stopping: Callable[[], bool],
    ) -> None:
        member = await self.subscribe(group_id, topics)
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + tick_interval
        # The previous batch's commit, in flight while the next batch is read and decided
        # (the writer thread commits while this one decides: on two cores the two overlap).
        # A batch is queued only once the one before it committed, so a failed commit is
        # never followed by a later batch's positions; it raises here, and the processor
        # (whose state may then be one batch ahead of the log) is revoked and rebuilt by
        # whoever restarts the loop, as after any failed batch.
        in_flight: asyncio.Future[list[Appended]] | None = None
        try:
            await processor.assigned(dict(member.fetch_positions))
            while not stopping():
                records = await member.poll(max_records, timeout=min(0.2, tick_interval))
                by_tp: dict[TopicPartition, list[Record]] = defaultdict(list)
                for rec in records:
                    by_tp[rec.tp].append(rec)
                outputs: list[OutgoingRecord] = []
                for tp, recs in by_tp.items():
                    await processor.prepare(tp, recs)
                    outputs.extend(processor.process(tp, recs))
                if loop.time() >= next_tick:
                    next_tick = loop.time() + tick_interval
                    for tp in member.fetch_positions:
                        if tp not in by_tp:
                            outputs.extend(processor.tick(tp))
                if in_flight is not None:
                    committing, in_flight = in_flight, None
                    await committing
                if by_tp or outputs:
                    in_flight = asyncio.ensure_future(self._submit(
                        outputs,
                        [(group_id, tp, recs[-1].offset + 1) for tp, recs in by_tp.items()],
                    ))
                    if not records:  # idle: nothing to decide meanwhile
                        committing, in_flight = in_flight, None
                        await committing
        finally:
            try:
                if in_flight is not None:
                    await in_flight  # the last batch commits before the loop returns
            finally:
                await processor.revoked(sorted(member.fetch_positions))
                await member.close()


class EmbeddedSubscription(Subscription):
    def __init__(
        self, log: EmbeddedEventLog, group_id: str, positions: dict[TopicPartition, int]
    ) -> None:
        self._log = log
        self.group_id = group_id
        self.fetch_positions = positions
        self._closed = False

    def assignment(self) -> set[TopicPartition]:
        return set(self.fetch_positions)

    async def positions(self) -> dict[TopicPartition, int]:
        return dict(self.fetch_positions)

    async def poll(self, max_records: int = 1000, timeout: float = 0.5) -> list[Record]:
        deadline = asyncio.get_running_loop().time() + timeout
        lingered = self._log.linger_seconds <= 0
        while not self._closed:
            ready = [
                (tp, pos, self._log._visible.get(tp, 0))
                for tp, pos in self.fetch_positions.items()
                if pos < self._log._visible.get(tp, 0)
            ]
            if ready and not lingered and sum(e - p for _, p, e in ready) < max_records:
                lingered = True
                # Never past the poll's own deadline (Kafka's fetch.max.wait is bounded by
                # the poll timeout too): a 1 s linger made a 0.2 s poll take 1 s.
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining > 0:
                    await asyncio.sleep(min(self._log.linger_seconds, remaining))
                continue
            if ready:
                share = max(1, max_records // len(ready))
                parts = [self._log._cached(tp, pos, end, share) for tp, pos, end in ready]
                missing = [r for r, part in zip(ready, parts, strict=True) if part is None]
                read = iter(await self._log._on_reader(self._fetch_all, missing, share)
                            if missing else [])
                records: list[Record] = []
                for part in parts:  # in `ready` order, as one read returns them
                    records.extend(part if part is not None else next(read))
                for tp, recs in _group(records).items():
                    self.fetch_positions[tp] = recs[-1].offset + 1
                return records
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return []
            await self._log.wait_for_append(remaining)
        return []

    def _fetch_all(
        self, ready: list[tuple[TopicPartition, int, int]], share: int
    ) -> list[list[Record]]:
        return [self._log._fetch(tp, pos, end, share) for tp, pos, end in ready]

    async def commit(self, positions: Mapping[TopicPartition, int]) -> None:
        await self._log._submit((), [(self.group_id, tp, p) for tp, p in positions.items()])

    async def close(self) -> None:
        self._closed = True
        if self._log._members.get(self.group_id) is self:
            del self._log._members[self.group_id]


class _RangeReader:
    def __init__(
        self, log: EmbeddedEventLog, tp: TopicPartition, start: int, end: int, batch: int
    ) -> None:
        self._log, self._tp, self._next, self._end, self._batch = log, tp, start, end, batch

    def __aiter__(self) -> _RangeReader:
        return self

    async def __anext__(self) -> list[Record]:
        if self._next >= self._end:
            raise StopAsyncIteration
        records = await self._log._on_reader(
            self._log._fetch, self._tp, self._next, self._end, self._batch
        )
        if not records:
            raise StopAsyncIteration
        self._next = records[-1].offset + 1
        return records


def _unlock(fd: int | None) -> None:
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _unflushed(at_risk: Mapping[asyncio.Future[list[Appended]], int],
               uncertain: set[asyncio.Future[list[Appended]]]) -> str | None:
    """What a close that gave up did not make durable, from the appends unanswered when it
    did (None: every one of them was written after all). `uncertain`: those in a commit
    the disk did not finish, counted even if their callers had given up (cancelled)."""
    lost = unknown = lost_records = unknown_records = 0
    for future, count in at_risk.items():
        if future in uncertain:
            unknown, unknown_records = unknown + 1, unknown_records + count
            continue
        if future.cancelled():  # its caller gave up: not an append anyone waits for
            continue
        exc = future.exception()
        if isinstance(exc, EventLogOutcomeUnknown):
            unknown, unknown_records = unknown + 1, unknown_records + count
        elif exc is not None:
            lost, lost_records = lost + 1, lost_records + count
    parts = []
    if lost:
        parts.append(f"{lost} append(s) ({lost_records} record(s)) not written, answered "
                     "with an error")
    if unknown:
        parts.append(f"{unknown} append(s) ({unknown_records} record(s)) in a commit the "
                     "disk did not finish: never acknowledged, may or may not be in the file")
    return "; ".join(parts) or None


def _size(record: Record) -> int:
    return len(record.value) + len(record.key) + 200  # the objects' own overhead, roughly


def _group(records: Sequence[Record]) -> dict[TopicPartition, list[Record]]:
    by_tp: dict[TopicPartition, list[Record]] = defaultdict(list)
    for rec in records:
        by_tp[rec.tp].append(rec)
    return by_tp
