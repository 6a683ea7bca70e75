"""Waiting for the read model: a registration's decision (`Prefer: wait=N`), or a log
position (read your writes).

In one process (`dealreg dev`, or a registration service co-located with projections) the
projection worker wakes waiters directly after its transaction commits. A registration
service in its own process on PostgreSQL is woken the same way by `DecisionListener`: the
projection worker sends the ids it touched with `NOTIFY` inside its transaction (delivered
on commit, so never before the rows are visible), and one dedicated connection per process
`LISTEN`s. Either way a waiting request holds no database connection while it waits: it
reads the row once when it starts and once when woken (and every `RECHECK_SECONDS`, in
case a notification was lost while the listener reconnected). Without either it polls the
read model with a short back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.logging import get_logger
from shared.readmodel.queries import get_registration
from shared.readmodel.schema import projection_positions

log = get_logger(__name__)

DECIDED = {"approved", "rejected", "in_review", "expired", "withdrawn", "won", "lost"}
CHANNEL = "dealreg_registrations"
"""The PostgreSQL notification channel of registrations the projections just wrote."""
PAYLOAD_BYTES = 7000
"""NOTIFY payloads stay under PostgreSQL's 8000-byte limit."""
RECHECK_SECONDS = 1.0
"""A notified waiter re-reads its row this often anyway (a notification lost while the
listener reconnected delays an answer by at most this)."""


async def notify_registrations(conn: AsyncConnection, registration_ids: Iterable[str]) -> None:
    """Inside the projection transaction on PostgreSQL: tell listening registration
    services which registrations changed (delivered when the transaction commits)."""
    if conn.dialect.name != "postgresql":
        return
    chunk: list[str] = []
    size = 0
    for rid in sorted(set(registration_ids)):
        if chunk and size + len(rid) + 1 > PAYLOAD_BYTES:
            await conn.execute(text("SELECT pg_notify(:c, :p)"),
                               {"c": CHANNEL, "p": " ".join(chunk)})
            chunk, size = [], 0
        chunk.append(rid)
        size += len(rid) + 1
    if chunk:
        await conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": " ".join(chunk)})


class DecisionWaiter:
    def __init__(self, engine: AsyncEngine, *, in_process: bool) -> None:
        self.engine = engine
        self.in_process = in_process
        self.listening = False
        """A `DecisionListener` is connected: notifications wake waiters."""
        self._events: dict[str, list[asyncio.Event]] = defaultdict(list)

    @property
    def notified(self) -> bool:
        return self.in_process or self.listening

    def notify(self, registration_ids: Iterable[str]) -> None:
        """Called by a co-located projection worker after it committed these rows."""
        for rid in registration_ids:
            for event in self._events.pop(rid, ()):
                event.set()

    async def _decided(self, registration_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = await get_registration(conn, registration_id)
        return row if row is not None and row["status"] in DECIDED else None

    async def wait_decided(self, registration_id: str, timeout: float) -> dict[str, Any] | None:
        """The decided row, or None when no decision arrived within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.005
        while True:
            event = asyncio.Event()
            notified = self.notified
            if notified:
                self._events[registration_id].append(event)
            row = await self._decided(registration_id)
            if row is not None:
                self._forget(registration_id, event)
                return row
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._forget(registration_id, event)
                return None
            try:
                await asyncio.wait_for(event.wait(), remaining if self.in_process else
                                       min(RECHECK_SECONDS, remaining) if notified else
                                       min(delay, remaining))
            except TimeoutError:
                delay = min(delay * 2, 0.05)
            self._forget(registration_id, event)

    def _forget(self, registration_id: str, event: asyncio.Event) -> None:
        waiting = self._events.get(registration_id)
        if waiting and event in waiting:
            waiting.remove(event)
            if not waiting:
                del self._events[registration_id]


class DecisionListener:
    """One dedicated PostgreSQL connection (outside the pool) that `LISTEN`s for the
    registrations the projections wrote and wakes the waiter; reconnects with a back-off.
    While it is down the waiter polls (`DecisionWaiter.listening` is False)."""

    def __init__(self, database_url: str, waiter: DecisionWaiter) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self.waiter = waiter

    def _received(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.waiter.notify(payload.split())

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
                .where(projection_positions.c.topic.in_(topics),
                       projection_positions.c.projection.in_(self.models))
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
