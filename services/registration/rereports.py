"""The post-decision re-report, durable and driven by the decisions (DESIGN.md, "Two first
registrations racing across partitions").

Every registration and claim a registration process appends is written to `re_reports`
*before* its append (`ReReporter.record`): its key, its normalised identity and what its
own reports carried. The row is deleted once the registration or claim is decided and
its re-report (`Commands._re_report`, the one rule) ran. Between the two nothing waits
per request:

- the decisions wake it: the `DecisionWaiter` tells its observers of every registration
  and claim the projections committed (the co-located worker's hand-over, or PostgreSQL's
  `NOTIFY` through `DecisionListener`), and the ids this process holds are read back in
  one batched status read (none when the co-located worker handed the decided row over,
  or the `NOTIFY` named its status: the rule needs only that); the lease check before a
  re-report and the delete after it are one statement each, in autocommit on
  PostgreSQL (no BEGIN / COMMIT round trips);
- one sweep per process every `re_report_recheck_seconds` (10 s) re-reads every pending
  id in one query (a notification lost while the listener reconnected, a re-report whose
  append failed), renews this process's leases and takes over rows whose lease ran out;
- a decision however late is re-reported: nothing times out (`RE_REPORT_WAIT` is gone);
  a row whose registration or claim is not in the read model `re_report_orphan_seconds`
  (a day) after it was written, while the projections have applied one filed a day after
  it, is dropped (its append failed; `_orphans`: a projection worker down for days drops
  nothing);
- a restart resumes: a process that stops releases its leases (a crash's run out after
  `re_report_lease_seconds`), and the next process to start or sweep takes the rows over.
  Two processes do not both re-report a row: one checks that it still holds its ids
  (renewing their leases) before it re-reports them, and a row is taken over only once its
  lease ran out (a re-report that outlasted a whole lease could be run twice). A report
  sent twice (that, or a process that stopped after its append, before the delete) only
  refreshes the copy at the adjudicator, as the second racing side's does.

A row that could not be written (the read model unavailable, or SQLite's write lock held
past the busy timeout) is kept in memory only: the registration is not failed for it, and
the next sweep that can write writes it (`sweep`); only a process that dies before then
loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.registration.adapters.sql import driver_fetch, insert_if_absent
from services.registration.adapters.tables import re_reports
from shared.accounts import AccountIdentity
from shared.ids import new_id
from shared.logging import get_logger
from shared.readmodel.queries import one_of
from shared.readmodel.schema import claims, registrations
from shared.readmodel.store import reader
from shared.readmodel.waiter import DECIDED, DecisionWaiter

log = get_logger(__name__)

PENDING = Gauge("dealreg_re_reports_pending",
                "Registrations and claims this process holds to re-report once decided")
RE_REPORTED = Counter("dealreg_re_reports_total",
                      "Post-decision re-reports run (whatever they appended)")
CLAIM_PREFIX = "clm_"
RETRY_SECONDS = 0.1
"""A status read that failed is tried again after this."""
UNAVAILABLE = (SQLAlchemyError, OSError, sqlite3.Error)
"""The read model cannot be written or read now. SQLite's "database is locked" at
`BEGIN IMMEDIATE` (another process holds the write lock past the busy timeout: a rebuild)
is raised by the store's begin hook as the driver's `sqlite3.OperationalError`, not
wrapped by SQLAlchemy: missed, it killed the group writer and every command of the group
waited for its row forever."""


@dataclass(frozen=True)
class Pending:
    """A registration or claim appended by this service, to re-report once decided."""

    entity_id: str
    account_key: str
    identity: AccountIdentity
    reported: Mapping[str, frozenset[str]]
    """alias key -> registration ids its own reports (`_copy_reports`) carried."""
    via: str
    created_at: datetime
    durable: bool = field(default=True, compare=False)


Rule = Callable[[Pending, dict[str, Any]], Awaitable[None]]


class ReReporter:
    """One per registration process: the pending re-reports it holds, woken by the
    decisions. `rule` re-reports one decided registration or claim (raises when it could
    not: the row stays and is tried again at the next sweep)."""

    def __init__(self, engine: AsyncEngine, waiter: DecisionWaiter, rule: Rule, *,
                 clock: Callable[[], datetime], lease_seconds: float,
                 orphan_seconds: float) -> None:
        self.engine = engine
        self.readonly = reader(engine)
        self.rule = rule
        self.clock = clock
        self.lease = timedelta(seconds=lease_seconds)
        self.orphan = timedelta(seconds=orphan_seconds)
        self.owner = new_id("rr")
        self.pending: dict[str, Pending] = {}
        self._due: set[str] = set()
        self._handed: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._autocommit = (engine.execution_options(isolation_level="AUTOCOMMIT")
                            if engine.dialect.name == "postgresql" else None)
        self._queue: list[tuple[Pending, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._binds: list[tuple[str, Any]] | None = None
        self.writes = 0
        """Statements that recorded pending re-reports (one per group of commands)."""
        self.reads = 0
        """Status reads done (batched reads count once)."""
        self.re_reported = 0
        """Registrations and claims whose re-report ran (whatever it appended)."""
        self.waiter = waiter
        self.on_taken: Callable[[Pending], None] | None = None
        """Told of each row taken over from a stopped process (`Commands` files its
        account in the directory: a restarted embedded process warmed its directory before
        the projections caught up with what its predecessor appended)."""
        self._stopped = False
        self._stopping = asyncio.Event()
        waiter.observers.append(self.notify)

    # --- the command side ----------------------------------------------------------------

    async def record(self, pending: Pending) -> None:
        """Before the append: the pending re-report, durable. Never fails the command (a
        read model that cannot be written keeps it in memory only). Concurrent commands'
        rows are written together (`_write`: one statement, like a group commit)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((pending, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())
        if not await asyncio.shield(done):
            pending = replace(pending, durable=False)
        self.pending[pending.entity_id] = pending
        PENDING.set(len(self.pending))

    async def _write(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            rows = self._rows([p for p, _ in batch])
            written = False
            self.writes += 1
            try:
                if self._autocommit is not None:
                    # PostgreSQL: one fixed statement whatever the group's size, sent by
                    # the driver (0.22 ms CPU a row against 0.56 built by SQLAlchemy),
                    # atomic on its own: no BEGIN / COMMIT round trips around it.
                    async with self._autocommit.connect() as conn:
                        await driver_fetch(conn, _UPSERT, *(
                            [_pg_json(r[c]) if c in ("identity", "reported") else r[c]
                             for r in rows] for c in _COLUMNS))
                else:
                    # SQLite: the same upsert sent by the driver itself, its values bound
                    # by the columns' own type processors (the rows SQLAlchemy wrote),
                    # inside the write transaction `begin` opened (BEGIN IMMEDIATE, one
                    # COMMIT: as durable as before). SQLAlchemy built and compiled the
                    # statement for every group, the larger part of the row's CPU.
                    async with self.engine.begin() as conn:
                        driver = (await conn.get_raw_connection()).driver_connection
                        assert driver is not None
                        bind = self._sqlite_binds(conn)
                        await driver.executemany(_SQLITE_UPSERT, [
                            [b(r[c]) if b is not None else r[c] for c, b in bind]
                            for r in rows])
                written = True
            except Exception as exc:  # never leaves a command waiting (kept in memory)
                log.warning("re_report_not_recorded", entity_ids=[r["id"] for r in rows],
                            error=type(exc).__name__)
            finally:
                for _, done in batch:
                    if not done.done():
                        done.set_result(written)

    def _sqlite_binds(self, conn: AsyncConnection) -> list[tuple[str, Any]]:
        """(column, its bind processor or None) in `_COLUMNS` order, for this dialect."""
        if self._binds is None:
            dialect = conn.dialect
            self._binds = [(c, re_reports.c[c].type.bind_processor(dialect))
                           for c in _COLUMNS]
        return self._binds

    def _rows(self, pending: list[Pending]) -> list[dict[str, Any]]:
        until = self.clock() + self.lease
        return [{"id": p.entity_id, "account_key": p.account_key,
                 "identity": _identity_json(p.identity),
                 "reported": {k: sorted(v) for k, v in p.reported.items()},
                 "via": p.via, "owner": self.owner, "lease_until": until,
                 "created_at": p.created_at} for p in pending]

    # --- woken by the decisions ----------------------------------------------------------

    def notify(self, ids: Collection[str], rows: Mapping[str, dict[str, Any]] | None
               ) -> None:
        """The projections committed these registrations' or claims' rows (`rows`: the
        registrations a co-located worker handed over)."""
        if not self.pending:
            return
        due = [i for i in ids if i in self.pending]
        if not due:
            return
        for i in due:
            row = rows.get(i) if rows is not None else None
            if row is None:
                self._due.add(i)
            elif row.get("status") in DECIDED:
                self._handed[i] = row
                self._due.add(i)
            # else: committed undecided (a bare submission): nothing to read
        self._kick()

    def _kick(self) -> None:
        if self._due and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._work())

    async def settled(self) -> None:
        """Until every re-report woken so far has run (tests/support/pipeline.py)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _work(self) -> None:
        from services.registration.handlers import COMMAND

        COMMAND.set(None)  # this task's own context: ids of its own, no command lease
        while self._due:
            ids = sorted(i for i in self._due if i in self.pending)
            self._due.clear()
            handed = {i: self._handed.pop(i) for i in ids if i in self._handed}
            self._handed.clear()
            unread = [i for i in ids if i not in handed]
            found = await self._statuses(unread) if unread else {}
            if found is None:  # the read model cannot be read now: again, shortly
                self._due.update(ids)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            decided = {**{i: r for i, r in found.items() if r["status"] in DECIDED},
                       **handed}
            orphans = await self._orphans(
                [i for i in unread if i not in found
                 and self.pending[i].created_at < self.clock() - self.orphan])
            if orphans:
                log.warning("re_report_orphaned", entity_ids=orphans)
                await self._delete(orphans)
            if decided:
                await self._run(sorted(decided), decided)

    async def _orphans(self, missing: list[str]) -> list[str]:
        """Of the rows older than the orphan age whose registration or claim the read
        model does not have, those whose append surely failed: the projections have
        since applied a registration or claim filed at least the orphan age after them.
        Age alone is not enough: a projection worker down over a weekend leaves every
        appended (and decided) registration missing from the read model for days, and
        dropping their rows then lost the race's only re-report (two approvals, no
        review). In a quiet read model such a row just waits (one row read a sweep)."""
        if not missing:
            return []
        try:
            async with self.readonly.connect() as conn:
                latest = [(await conn.execute(select(func.max(column)))).scalar()
                          for column in (registrations.c.submitted_at, claims.c.filed_at)]
        except UNAVAILABLE as exc:
            log.warning("re_report_read_failed", error=type(exc).__name__)
            return []
        newest = max((_utc(t) for t in latest if t is not None), default=None)
        if newest is None:
            return []
        return [i for i in missing if self.pending[i].created_at + self.orphan < newest]

    async def _run(self, ids: list[str], rows: Mapping[str, dict[str, Any]]) -> None:
        held = await self._hold(ids)
        done = []
        for entity_id in ids:
            pending = self.pending.get(entity_id)
            if pending is None or entity_id not in held:
                continue
            try:
                await self.rule(pending, rows[entity_id])
            except asyncio.CancelledError:
                raise
            except Exception:
                # Stays pending: the next sweep tries it again.
                log.exception("account_link_re_report_failed", entity_id=entity_id)
                continue
            self.re_reported += 1
            RE_REPORTED.inc()
            done.append(entity_id)
        if done:
            await self._delete(done)

    async def _hold(self, ids: list[str]) -> set[str]:
        """The ids this process still holds (their leases renewed); the others were taken
        over by another process (this one's lease ran out) and are dropped here."""
        memory = {i for i in ids if not self.pending[i].durable}
        durable = [i for i in ids if i not in memory]
        if not durable:
            return memory
        try:
            async with self._atomic() as conn:
                result = await conn.execute(
                    update(re_reports)
                    .where(one_of(conn.dialect.name, re_reports.c.id, durable),
                           re_reports.c.owner == self.owner)
                    .values(lease_until=self.clock() + self.lease)
                    .returning(re_reports.c.id))
                held = {row.id for row in result}
        except UNAVAILABLE as exc:
            log.warning("re_report_hold_failed", error=type(exc).__name__)
            return memory  # the next sweep tries them again
        for lost in set(durable) - held:
            self.pending.pop(lost, None)
        PENDING.set(len(self.pending))
        return memory | held

    async def _delete(self, ids: list[str]) -> None:
        for i in ids:
            self.pending.pop(i, None)
        PENDING.set(len(self.pending))
        try:
            async with self._atomic() as conn:
                await conn.execute(delete(re_reports).where(
                    one_of(conn.dialect.name, re_reports.c.id, ids),
                    re_reports.c.owner == self.owner))
        except UNAVAILABLE as exc:
            # Left behind: taken over once its lease runs out and re-reported again,
            # which only refreshes the copy.
            log.warning("re_report_delete_failed", error=type(exc).__name__)

    def _atomic(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for one statement that is atomic alone: in autocommit on
        PostgreSQL (one round trip, where a transaction around it was three), a committed
        transaction elsewhere."""
        if self._autocommit is not None:
            return self._autocommit.connect()
        return self.engine.begin()

    async def _statuses(self, ids: list[str]) -> dict[str, dict[str, Any]] | None:
        """{id: {"status": ...}} of the registrations and claims among `ids` the read
        model has; None when it cannot be read now."""
        self.reads += 1
        found: dict[str, dict[str, Any]] = {}
        try:
            async with self.readonly.connect() as conn:
                dialect = conn.dialect.name
                for table, wanted in (
                        (claims, [i for i in ids if i.startswith(CLAIM_PREFIX)]),
                        (registrations, [i for i in ids if not i.startswith(CLAIM_PREFIX)])):
                    for n in range(0, len(wanted), 500):
                        result = await conn.execute(
                            select(table.c.id, table.c.status)
                            .where(one_of(dialect, table.c.id, wanted[n:n + 500])))
                        found.update({row.id: {"status": row.status} for row in result})
        except UNAVAILABLE as exc:
            log.warning("re_report_read_failed", error=type(exc).__name__)
            return None
        return found

    # --- resuming, re-checking -----------------------------------------------------------

    async def sweep(self) -> None:
        """Renew this process's leases, take over the rows whose lease ran out (a process
        that stopped, or crashed), and re-read every pending id (a lost notification)."""
        if self._stopped:
            return
        now = self.clock()
        # Rows kept in memory only (the read model could not be written when their
        # commands ran) are written now: a process that dies after this loses none. One
        # another process wrote meanwhile (a retried command) is left to it.
        memory = [p for p in self.pending.values() if not p.durable]
        try:
            async with self.engine.begin() as conn:
                for values in self._rows(memory):
                    await insert_if_absent(conn, re_reports, values, ("id",))
                await conn.execute(update(re_reports).where(re_reports.c.owner == self.owner)
                                   .values(lease_until=now + self.lease))
                await conn.execute(update(re_reports).where(re_reports.c.lease_until < now)
                                   .values(owner=self.owner, lease_until=now + self.lease))
                result = await conn.execute(select(re_reports).where(
                    re_reports.c.owner == self.owner))
                rows = list(result)
            for p in memory:
                if self.pending.get(p.entity_id) is p:
                    self.pending[p.entity_id] = replace(p, durable=True)
        except UNAVAILABLE as exc:
            log.warning("re_report_sweep_failed", error=type(exc).__name__)
            rows = []
        taken = 0
        for row in rows:
            if row.id not in self.pending:
                taken += 1
                pending = self.pending[row.id] = Pending(
                    row.id, row.account_key, AccountIdentity(**row.identity),
                    {k: frozenset(v) for k, v in row.reported.items()}, row.via,
                    row.created_at)
                if self.on_taken is not None:
                    self.on_taken(pending)
        if taken:
            log.info("re_reports_taken_over", count=taken)
        PENDING.set(len(self.pending))
        self._due.update(self.pending)
        self._kick()

    async def run(self, stopping: Callable[[], bool], every: float) -> None:
        """The sweep every `every` seconds, until the runtime stops."""
        while not stopping():
            if self._stopped:  # before the runtime: returning would read as a crash
                await asyncio.sleep(0.2)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), every)
            if not self._stopped and not stopping():
                await self.sweep()

    async def stop(self) -> None:
        """Release this process's leases: the next process takes its rows over at once."""
        self._stopped = True
        self._stopping.set()
        if self.notify in self.waiter.observers:
            self.waiter.observers.remove(self.notify)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(update(re_reports).where(re_reports.c.owner == self.owner)
                                   .values(lease_until=self.clock() - self.lease))
        except UNAVAILABLE as exc:
            log.warning("re_report_release_failed", error=type(exc).__name__)


_COLUMNS = ("id", "account_key", "identity", "reported", "via", "owner", "lease_until",
            "created_at")
_UPSERT = (
    f"INSERT INTO re_reports ({', '.join(_COLUMNS)}) SELECT * FROM unnest($1::varchar[], "
    "$2::varchar[], $3::jsonb[], $4::jsonb[], $5::varchar[], $6::varchar[], "
    "$7::timestamptz[], $8::timestamptz[]) ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:]))
"""A group of pending re-reports in one statement (a retried command's row taken over)."""
_SQLITE_UPSERT = (
    f"INSERT INTO re_reports ({', '.join(_COLUMNS)}) VALUES "
    f"({', '.join('?' for _ in _COLUMNS)}) ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:]))
"""The same on SQLite, one row per parameter set (`executemany`)."""


def _pg_json(value: Any) -> str:
    """A JSONB parameter as the SQLAlchemy asyncpg dialect's codec takes it: JSON text."""
    return json.dumps(value, separators=(",", ":"))


def _utc(value: datetime) -> datetime:
    """A timestamp read back by `func.max` (SQLite: no type processing, maybe naive)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _identity_json(identity: AccountIdentity) -> dict[str, str | None]:
    return {"crm_account_id": identity.crm_account_id, "domain": identity.domain,
            "name": identity.name, "country": identity.country}
