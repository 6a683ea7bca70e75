"""Waiting for the read model: a registration's decision (`Prefer: wait=N`), or a log
position (read your writes).

In one process (`dealreg dev`, or a registration service co-located with projections) the
projection worker wakes waiters directly after its transaction commits. A registration
service in its own process on PostgreSQL is woken the same way by `DecisionListener`: the
projection worker sends the ids it decided with `NOTIFY` inside its transaction (delivered
on commit, so never before the rows are visible; a row the batch left undecided, a bare
submission, is not sent), and one dedicated connection per process `LISTEN`s. Either way a
waiting request holds no database connection while it waits.

A command registers its interest before it appends (`DecisionWaiter.expect`), so it needs
no read of its own: the rows the projections just wrote are read back for every waiter
notified together in one batched query, and each waiter gets its row once it is decided.
A batched read that failed is retried shortly. In process nothing else is read; woken by
`DecisionListener`, a waiter also re-checks every `RECHECK_SECONDS` (a notification lost
while the listener reconnected), and without notifications it polls with a short back-off
-- both by joining the next batched read, so hundreds of waiters cost one query, not one
each. `wait_decided` (a registration appended earlier) reads the row once first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import UTC
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Numeric, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.logging import get_logger
from shared.readmodel.queries import one_of
from shared.readmodel.schema import UTCDateTime, projection_positions, registrations
from shared.readmodel.store import reader

log = get_logger(__name__)

_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (column.name, "datetime" if isinstance(column.type, UTCDateTime)
     else "json" if isinstance(column.type, JSON)
     else "numeric" if isinstance(column.type, Numeric) and column.type.asdecimal
     else "plain")
    for column in registrations.columns)
_SCALES: dict[str, int] = {
    column.name: column.type.scale or 0 for column in registrations.columns
    if isinstance(column.type, Numeric)}

DECIDED = {"approved", "rejected", "in_review", "expired", "withdrawn", "won", "lost"}
CHANNEL = "dealreg_registrations"
"""The PostgreSQL notification channel of registrations the projections just wrote."""
PAYLOAD_BYTES = 7000
"""NOTIFY payloads stay under PostgreSQL's 8000-byte limit."""
RECHECK_SECONDS = 1.0
"""A notified waiter re-reads its row this often anyway (a notification lost while the
listener reconnected delays an answer by at most this)."""
RETRY_SECONDS = 0.1
"""A batched read of notified registrations that failed is retried after this."""


async def notify_registrations(conn: AsyncConnection, registration_ids: Iterable[str],
                               rows: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Inside the projection transaction on PostgreSQL: tell listening registration
    services which registrations changed (delivered when the transaction commits).
    `rows`: the batch's rows; an id whose row is there undecided (just submitted) is not
    sent, since a waiter only ever wants a decided row: each notified id costs every
    listening registration service a read back, and half the ids of a live stream were
    submissions (README, "Distributed decision path, session 24"). An id whose row is
    there is followed by its status (`=approved`, `parse_payload`): the post-decision
    re-reporter needs nothing else, so it reads nothing back (session 26). One statement
    for all the payloads of a batch."""
    if conn.dialect.name != "postgresql":
        return
    tokens: list[str] = []
    for rid in sorted(set(registration_ids)):
        row = rows.get(rid) if rows is not None else None
        if row is None:
            tokens.append(rid)
        elif (status := row.get("status")) in DECIDED:
            tokens.append(f"{rid} ={status}")
    payloads: list[str] = []
    chunk: list[str] = []
    size = 0
    for token in tokens:
        if chunk and size + len(token) + 1 > PAYLOAD_BYTES:
            payloads.append(" ".join(chunk))
            chunk, size = [], 0
        chunk.append(token)
        size += len(token) + 1
    if chunk:
        payloads.append(" ".join(chunk))
    if len(payloads) == 1:
        await conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payloads[0]})
    elif payloads:
        await conn.execute(text("SELECT pg_notify(:c, p) FROM unnest(CAST(:ps AS text[])) p"),
                           {"c": CHANNEL, "ps": payloads})


def parse_payload(payload: str) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """A notification's ids, and the status of those it names one for: a token `=status`
    follows its id. A receiver of an older sender gets bare ids (no statuses), and an
    older receiver, reading every token as an id, finds no waiter for a `=status` token,
    so either side may be upgraded first."""
    ids: list[str] = []
    statuses: dict[str, dict[str, Any]] = {}
    for token in payload.split():
        if token[0] == "=":
            if ids and token[1:] in DECIDED:
                statuses[ids[-1]] = {"status": token[1:]}
        else:
            ids.append(token)
    return ids, statuses


def as_read(row: Mapping[str, Any]) -> dict[str, Any]:
    """A registration row the projections committed, as reading it back would return it:
    exactly the table's columns in table order, datetimes in UTC (`UTCDateTime`), JSON
    values as decoding their stored text gives them (tuples become lists). A copy: the
    worker's batch is not shared with the request."""
    out: dict[str, Any] = {}
    for name, kind in _COLUMNS:
        value = row.get(name)
        if value is not None:
            if kind == "datetime":
                value = value.astimezone(UTC)
            elif kind == "json":
                value = json.loads(json.dumps(value))  # SQLAlchemy's JSON serializer
            elif kind == "numeric":
                # As Numeric(scale=s) reads back: a Decimal of s places.
                value = Decimal(f"{float(value):.{_SCALES[name]}f}")
        out[name] = value
    return out


class Expected:
    """One request's interest in a registration's decision, registered with the waiter
    *before* the command is appended (`DecisionWaiter.expect`): a decision projected at
    any time after that resolves it, so none can slip between the append and the wait,
    and the request need not read the row first to catch an early one."""

    def __init__(self, waiter: DecisionWaiter, registration_id: str) -> None:
        self.waiter = waiter
        self.registration_id = registration_id
        self.future: asyncio.Future[dict[str, Any]] = \
            asyncio.get_running_loop().create_future()

    async def wait(self, timeout: float, recheck: float = RECHECK_SECONDS
                   ) -> dict[str, Any] | None:
        """The decided row, or None when no decision arrived within `timeout` seconds.

        In process: no re-check at all (the co-located projection worker's
        notifications are not lost, and a batched read that failed is retried by the
        waiter). Woken by `DecisionListener`: a re-check every `recheck` seconds (a
        notification lost while it reconnected; a long wait that is not answering anyone,
        like the post-decision re-report's minute once did, asks for fewer: every waiter still
        waiting re-reads its row at each re-check, so with decisions late a backlog was
        re-read every second). Without notifications: polls with a
        short back-off. Re-checks and polls join the batched read of notified rows. A
        read model that cannot be read counts as "not decided yet": the command is
        durable already, and an error here would be a 5xx for a command that was taken."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.005
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            in_process = self.waiter.in_process
            chunk = (remaining if in_process else
                     min(recheck, remaining) if self.waiter.listening else
                     min(delay, remaining))
            done, _ = await asyncio.wait({self.future}, timeout=chunk)
            if done:
                return self.future.result()
            if in_process or loop.time() >= deadline:
                return None  # (a re-check now would be read for nobody)
            delay = min(delay * 2, 0.05)
            # Re-checked with every other waiter's re-check in one batched read: hundreds
            # waiting on slow decisions each read alone every second otherwise, which ran
            # the pool of a distributed registration service dry.
            self.waiter.recheck(self.registration_id)


class DecisionWaiter:
    def __init__(self, engine: AsyncEngine, *, in_process: bool) -> None:
        self.engine = reader(engine)  # reads only: no BEGIN/ROLLBACK around them
        self.in_process = in_process
        self.listening = False
        """A `DecisionListener` is connected: notifications wake waiters."""
        self._waiting: dict[str, list[Expected]] = defaultdict(list)
        self._pending: set[str] = set()
        self._reader: asyncio.Task[None] | None = None
        self.reads = 0
        """Read-model reads done for waiters (batched reads count once)."""
        self.handed = 0
        """Decided rows handed over by a co-located projection worker (no read)."""
        self.observers: list[Callable[[Collection[str], Mapping[str, dict[str, Any]] | None],
                                      None]] = []
        """Told of every notification (the ids, and the rows a co-located worker handed
        over, or else `{"status": ...}` of the ids a `NOTIFY` gave one), waiting or not:
        the post-decision re-reporter
        (services/registration/rereports.py). Not told of the waiters' own re-checks."""

    @property
    def notified(self) -> bool:
        return self.in_process or self.listening

    def notify(self, registration_ids: Iterable[str],
               rows: Mapping[str, dict[str, Any]] | None = None,
               statuses: Mapping[str, dict[str, Any]] | None = None) -> None:
        """These registrations' rows changed (committed): called by a co-located projection
        worker, or by `DecisionListener`. A co-located worker hands over the rows it just
        committed (`rows`): a waiter whose registration is decided there gets its row as
        the read model would give it back (`as_read`), with no read, and one committed
undecided keeps waiting without a read. The others someone
        waits for are read back in one batched query (several notifications in a row share
        it) and their waiters get the row once it is decided. `observers` are told first,
        with the rows handed over or else what the notification said of each id
        (`statuses`: `{"status": ...}` per id, from `DecisionListener`)."""
        ids = registration_ids if isinstance(registration_ids, Collection) \
            else list(registration_ids)
        told = rows if rows is not None else statuses
        for observer in self.observers:
            observer(ids, told)
        self._wake(ids, rows)

    def _wake(self, registration_ids: Iterable[str],
              rows: Mapping[str, dict[str, Any]] | None = None) -> None:
        wanted = [rid for rid in registration_ids if rid in self._waiting]
        if not wanted:
            return
        if rows is not None:
            unread = []
            for rid in wanted:
                row = rows.get(rid)
                if row is None:  # not among the rows handed over: read it
                    unread.append(rid)
                elif row.get("status") in DECIDED:
                    self.handed += 1
                    read = as_read(row)
                    for expected in self._waiting[rid]:
                        if not expected.future.done():
                            expected.future.set_result(read)
                # else: committed undecided, as a read would find it: keep waiting
            if not unread:
                return
            wanted = unread
        self._pending.update(wanted)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_pending())

    def recheck(self, registration_id: str) -> None:
        """Read this registration's row again (a waiter's periodic re-check or poll),
        batched with every other id read at the same time."""
        self._wake([registration_id])

    @contextlib.contextmanager
    def expect(self, registration_id: str) -> Iterator[Expected]:
        """Register interest in `registration_id`'s decision (before appending it); the
        registration is dropped when the block ends."""
        expected = Expected(self, registration_id)
        self._waiting[registration_id].append(expected)
        try:
            yield expected
        finally:
            waiting = self._waiting.get(registration_id)
            if waiting and expected in waiting:
                waiting.remove(expected)
                if not waiting:
                    del self._waiting[registration_id]
            if not expected.future.done():
                expected.future.cancel()

    async def wait_decided(self, registration_id: str, timeout: float) -> dict[str, Any] | None:
        """The decided row, or None when no decision arrived within `timeout` seconds (for
        a registration appended earlier: reads the row once first)."""
        with self.expect(registration_id) as expected:
            row = await self.read_decided(registration_id)
            return row if row is not None else await expected.wait(timeout)

    async def read_decided(self, registration_id: str) -> dict[str, Any] | None:
        """The row if decided; None if not (or the read model cannot be read now)."""
        rows = await self._read([registration_id])
        return rows.get(registration_id) if rows is not None else None

    async def _read(self, ids: list[str]) -> dict[str, dict[str, Any]] | None:
        """The decided rows among `ids` (one query per 500); None when the read failed."""
        self.reads += 1
        found: dict[str, dict[str, Any]] = {}
        try:
            async with self.engine.connect() as conn:
                # `= ANY($1)` on PostgreSQL (`one_of`): one statement text whatever the
                # batch's size, so asyncpg prepares it once per connection; an `IN` list
                # was a new text, and a new prepared statement, for every batch size.
                dialect = conn.dialect.name
                for i in range(0, len(ids), 500):
                    result = await conn.execute(select(registrations).where(
                        one_of(dialect, registrations.c.id, ids[i:i + 500])))
                    for row in result:
                        if row.status in DECIDED:
                            found[row.id] = dict(row._mapping)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("decision_read_failed", error=type(exc).__name__)
            return None
        return found

    async def _read_pending(self) -> None:
        while self._pending:
            ids = sorted(self._pending)
            self._pending.clear()
            rows = await self._read(ids)
            if rows is None:  # the read model cannot be read now: again, shortly
                self._pending.update(rid for rid in ids if rid in self._waiting)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for rid, row in rows.items():
                for expected in self._waiting.get(rid, ()):
                    if not expected.future.done():
                        expected.future.set_result(row)


class DecisionListener:
    """One dedicated PostgreSQL connection (outside the pool) that `LISTEN`s for the
    registrations the projections wrote and wakes the waiter; reconnects with a back-off.
    While it is down the waiter polls (`DecisionWaiter.listening` is False)."""

    def __init__(self, database_url: str, waiter: DecisionWaiter) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self.waiter = waiter

    def _received(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        ids, statuses = parse_payload(payload)
        self.waiter.notify(ids, statuses=statuses or None)

    async def run(self, stopping: Callable[[], bool]) -> None:
        import asyncpg

        backoff = 0.5
        while not stopping():
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _conn, ended=closed: ended.set())
                await conn.add_listener(CHANNEL, self._received)
                self.waiter.listening = True
                backoff = 0.5
                while not stopping() and not closed.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closed.wait(), 0.2)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("decision_listener_down", error=repr(exc))
            finally:
                self.waiter.listening = False
                if conn is not None and not conn.is_closed():
                    await conn.close()
            if not stopping():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)


class PositionWaiter:
    """Read your writes: wait until every projection model applied a log position.

    A command answers with `X-Log-Position: <topic>/<partition>/<offset>`; a read that sends
    it back (`X-Wait-For-Position` or `min_position`) waits here until all `models` stored a
    position past that offset for that partition. Positions live in `projection_positions`
    (written in the same transaction as the rows), so the check is right whichever process
    owns the partition; a co-located worker calls `notify()` after each commit so a waiter
    re-checks at once instead of at its next poll (5-50 ms back-off otherwise).
    """

    def __init__(self, engine: AsyncEngine, models: Iterable[str]) -> None:
        self.engine = engine
        self.models = tuple(models)
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def behind(self, wanted: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """The wanted `(topic, partition) -> offset` not applied yet by every model,
        each with the lowest stored position."""
        if not wanted:
            return {}
        topics = {topic for topic, _ in wanted}
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(projection_positions.c.projection, projection_positions.c.topic,
                       projection_positions.c.partition, projection_positions.c.position)
                .where(one_of(conn.dialect.name, projection_positions.c.topic, topics),
                       one_of(conn.dialect.name, projection_positions.c.projection,
                              self.models))
            )
            stored: dict[tuple[str, str, int], int] = {
                (m, t, p): pos for m, t, p, pos in result
            }
        lagging: dict[tuple[str, int], int] = {}
        for tp, offset in wanted.items():
            lowest = min(stored.get((m, *tp), 0) for m in self.models)
            if lowest <= offset:
                lagging[tp] = lowest
        return lagging

    async def wait(self, wanted: dict[tuple[str, int], int], timeout: float) -> bool:
        """True once every wanted offset is applied; False after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.005
        while True:
            changed = self._changed
            if not await self.behind(wanted):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(changed.wait(), min(delay, remaining))
            except TimeoutError:
                delay = min(delay * 2, 0.05)
