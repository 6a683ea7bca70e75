"""The projection worker: folds intake and decisions into the read models, effectively once.

Each polled batch is applied in one database transaction that also stores the consumed
positions, so a crash between the two is impossible. Every model keeps its own positions
(so one model can be rebuilt alone); a record is folded into the models whose stored
position has not passed it. The positions are read (and on PostgreSQL locked, missing rows
included: `repository.lock_positions`) inside the batch's transaction, so a record another
process applied in the meantime (a consumer-group rebalance moved the partition) is
skipped instead of applied twice. Rows touched by a batch
are loaded once, folded in memory by the pure core (`domain/`), and written back in bulk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.projections.adapters import repository
from services.projections.adapters.lag import (
    APPLIED,
    BATCH_SECONDS,
    HELD,
    LAST_APPLIED,
    LagMonitor,
)
from services.projections.domain.batch import MODELS, Batch, Item, Loaded, Needs, needs
from shared import tracing
from shared.busy import retry_when_busy
from shared.eventlog import EventLog, Record, Subscription, TopicPartition
from shared.eventlog.deadletter import dead_letter
from shared.eventlog.topics import Topics
from shared.events import CATALOGUE, DomainEvent, upcasters
from shared.events.codec import decode
from shared.logging import get_logger
from shared.readmodel.store import NotWhole, write_in_thread, writes_in_thread
from shared.readmodel.waiter import PositionWaiter, notify_registrations

log = get_logger(__name__)

Listener = Callable[[Iterable[str], Mapping[str, dict[str, Any]]], None]
"""Called after a batch committed: the registration/claim ids it touched, and the
registration and claim rows it holds, as committed (a co-located waiter answers from them
without reading them back; the re-reporter reads no claim whose row is there undecided)."""


def _committed_rows(batch: Batch) -> Mapping[str, dict[str, Any]]:
    """The batch's registration and claim rows by id (claims since session 25: a claim
    just filed is not notified or handed over as if it might be decided)."""
    return {**batch.registrations, **batch.claims} if batch.claims else batch.registrations
LAG_INTERVAL_SECONDS = 5.0
ANALYZE_FROM_ROWS = 2000
"""Directory rows (names and their blocking keys) filed before the first `ANALYZE`."""
ANALYZED = ("account_names", "account_name_keys")


Decoded = tuple[str, datetime, DomainEvent, dict[str, Any], str | None, str | None]


def decode_value(raw: bytes) -> Decoded:
    """An envelope's id and time, its upcast event, the event's JSON data, and its trace
    context (`traceparent`, `tracestate`; None when the event has none).

    The fast path validates the event only (the envelope was validated by whoever appended
    it); anything unexpected goes through the codec, which raises a precise ValueError."""
    try:
        obj = orjson.loads(raw)
        kind = obj["type"]
        data = obj["data"]
        current = _CURRENT.get(kind)
        if (current is not None and current[0] == upcasters.generation
                and type(data) is dict):
            # A catalogue type at its newest version (no upcaster step from it, none
            # registered since that was seen), validated by the model's own validator.
            event = current[1](data)
        else:
            named = _TYPE_NAMES.get(kind)
            if named is None:
                base, _, version = kind.rpartition(".v")
                named = (base, int(version))
            # `obj` was just parsed: an upcaster may change its data in place, no copy needed.
            version_n, data = upcasters.upcast(named[0], named[1], data)
            if not isinstance(data, dict):
                raise ValueError("event data is not an object")
            event = CATALOGUE[kind if version_n == named[1] else
                              f"{named[0]}.v{version_n}"].model_validate(data)
            if kind not in _TYPE_NAMES:
                _TYPE_NAMES[kind] = named  # a catalogue type: the cache stays small
            _current(kind, named)
        moment = datetime.fromisoformat(obj["time"])
        if moment.tzinfo is None:
            raise ValueError("naive envelope time")
        return (str(obj["id"]), moment, event, data, _text(obj.get("traceparent")),
                _text(obj.get("tracestate")))
    except Exception:
        envelope, event = decode(raw)
        return (envelope.id, envelope.time, event, event.to_data(), envelope.traceparent,
                envelope.tracestate)


_TYPE_NAMES: dict[str, tuple[str, int]] = {}
"""Envelope type -> (base type, version), parsed once per type; only types the catalogue
knows are kept (an undecodable record's type is not)."""

_CURRENT: dict[str, tuple[int, Callable[[dict[str, Any]], DomainEvent]]] = {}
"""Envelope type -> (the upcasters' generation, its model's validator) for the catalogue
types seen at their newest version (no upcaster step from it): what `model_validate`
calls, without its wrapper or the upcast look-up (about a microsecond per record of a
rebuild). A step registered since (a newer version) sends the type through the upcasters
again."""


def _current(kind: str, named: tuple[str, int]) -> None:
    if kind in CATALOGUE and not upcasters.applies(*named):
        _CURRENT[kind] = (upcasters.generation,
                          CATALOGUE[kind].__pydantic_validator__.validate_python)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


Misrouted = tuple[str, int, int, str, str, str]
"""A record keyed by another key than the account key its event names: topic, partition,
offset, event type, record key, the event's account key."""


def misrouted(record: Record, event: DomainEvent) -> Misrouted | None:
    """Whether `record` breaks the keying every read model's partition independence rests
    on: each event naming an account key is keyed by it (the edge keys intake so; the
    adjudicator keys each decision by its own account key, adjudication DESIGN.md
    invariant 14), so every record about a registration, claim or dispute is on its
    account's partition."""
    own = getattr(event, "account_key", None)
    if own is None or own == record.key:
        return None
    return (record.topic, record.partition, record.offset, event.TYPE, record.key, own)


def decode_records(
    records: Sequence[Record], positions: repository.Positions, models: Sequence[str],
    poison: list[tuple[Record, ValueError]] | None = None,
    misrouted_to: list[Misrouted] | None = None,
) -> list[Item]:
    """Decoded items for the models that have not applied each record yet; `poison`
    collects the records that cannot be decoded (with the error), `misrouted_to` (when
    given) the records that are `misrouted`."""
    items: list[Item] = []
    by_model = [(m, positions[m]) for m in models]
    all_models = frozenset(models)
    # No positions at all (a rebuild from the beginning): every model wants every record.
    fresh = bool(by_model) and not any(by_tp for _, by_tp in by_model)
    for record in records:
        if fresh:
            models_of = all_models
        else:
            tp = TopicPartition(record.topic, record.partition)
            offset = record.offset
            wanted = [m for m, by_tp in by_model if offset >= by_tp.get(tp, 0)]
            if not wanted:
                continue  # every model applied it already (a redelivery)
            models_of = all_models if len(wanted) == len(by_model) else frozenset(wanted)
        try:
            event_id, moment, event, data, traceparent, tracestate = decode_value(record.value)
        except ValueError as exc:
            if poison is not None:
                poison.append((record, exc))
            else:
                log.error("undecodable_record", topic=record.topic,
                          partition=record.partition, offset=record.offset, error=str(exc))
            continue
        if misrouted_to is not None and (breach := misrouted(record, event)) is not None:
            misrouted_to.append(breach)
        items.append(Item(event_id, moment, event, models_of, data, traceparent, tracestate,
                          record.offset))
    return items


def advanced(
    positions: repository.Positions, records: Sequence[Record]
) -> repository.Positions:
    """Positions after `records` (never moving backwards)."""
    ends: dict[TopicPartition, int] = {}
    for record in records:
        ends[record.tp] = max(ends.get(record.tp, 0), record.offset + 1)
    return {
        model: {**by_tp, **{tp: max(by_tp.get(tp, 0), end) for tp, end in ends.items()}}
        for model, by_tp in positions.items()
    }


async def load_and_fold(conn: AsyncConnection, items: Sequence[Item],
                        carry: Loaded | None = None, stored: Needs | None = None) -> Batch:
    """Load what `items` touch and fold them in order (nothing written). `carry`: rows
    known to be what the store holds (or will hold), not read again. `stored`: the only
    rows the store can hold (a rebuild's: those it wrote since it emptied the models);
    others are known absent, not looked for."""
    wanted = needs(items)
    missing = wanted if carry is None else carry.without(wanted)
    if stored is not None:
        missing = missing.within(stored)
    loaded = await repository.load(conn, missing) if missing else Loaded()
    return Batch(loaded if carry is None else carry.merged(loaded, wanted)).fold_all(items)


async def fold_into(conn: AsyncConnection, items: Sequence[Item], *,
                    stage_from: int | None = repository.STAGE_FROM_ROWS) -> Batch:
    """Load what `items` touch, fold them in order, write the changes (no commit);
    `stage_from`: see `repository.write`."""
    batch = await load_and_fold(conn, items)
    await repository.write(conn, batch, stage_from=stage_from)
    return batch


class ProjectionWorker:
    def __init__(
        self,
        eventlog: EventLog,
        engine: AsyncEngine,
        topics: Topics,
        *,
        group_id: str,
        on_applied: Listener | None = None,
        max_records: int = 5000,
        models: Sequence[str] = MODELS,
        stage_from: int | None = repository.STAGE_FROM_ROWS,
        linger_seconds: float = 0.0,
        linger_from: int = 1,
        hold_seconds: float = 0.0,
    ) -> None:
        """`linger_seconds`: after applying a batch of at least `linger_from` events that
        was not full, wait this long before polling again, so the next batch gathers more
        events (one transaction, one NOTIFY, one read back per registration service for
        all of them); after a smaller batch, or an idle spell, the next poll is not
        delayed (the Kafka deployment's `kafka_projections_linger_ms` and
        `kafka_projections_linger_from_records`; the embedded log lingers in its own
        reader). Only a worker falling behind its input builds big batches, so at low
        rates no decision waits for the linger (session 27).

        `hold_seconds`: a fetched batch that holds intake records but no decision is
        not applied at once: the worker fetches on for at most this long, until a
        decision arrives (or the batch is full), and applies what it gathered in one
        transaction (`_gathered`). At low rates an intake event (a registration) and the
        decision it is waiting for arrived a few milliseconds apart and were applied as
        two batches, each a transaction of ~15 round trips, a NOTIFY and its own
        bookkeeping; held, they are one, and the decision no longer queues behind its
        own submission's batch. A batch that already holds a decision (any batch under
        load) is applied at once, as before (the Kafka deployment's
        `kafka_projections_hold_ms`)."""
        self.eventlog = eventlog
        self.hold_seconds = hold_seconds
        self.linger_seconds = linger_seconds
        self.linger_from = max(1, linger_from)
        self.engine = engine
        self.topics = topics
        self.group_id = group_id
        self.on_applied = on_applied
        # Called after a batch that queued notifications commits (the delivery worker's
        # wake-up: it does not poll for them).
        self.on_outbox: Callable[[], None] | None = None
        self.on_links: Callable[[set[str] | None], None] | None = None
        """Called after a committed batch that rewrote account links, with their aliases
        (a co-located registration service keeps the links in memory); with None when
        the stored positions were not the ones this worker left (another process -- a
        `dealreg projections rebuild` -- wrote the read model: any link may differ)."""
        self._foreign_writes = False
        self.max_records = max_records
        self.models = tuple(models)
        self.stage_from = stage_from
        self._directory_written = 0
        self._analyze_at = ANALYZE_FROM_ROWS
        self.positions: repository.Positions = {m: {} for m in self.models}
        self.position_waiter = PositionWaiter(engine, self.models)
        self.lag = LagMonitor(eventlog, engine, (topics.intake, topics.decisions), self.models)

    async def _start_positions(
        self, partitions: Sequence[TopicPartition]
    ) -> Mapping[TopicPartition, int]:
        async with self.engine.connect() as conn:
            found = await repository.load_positions(conn, self.models, partitions)
        if self.on_links is not None and any(  # restarted after another process wrote
                found[m].get(tp, 0) != self.positions[m][tp]
                for m in self.models for tp in partitions if tp in self.positions[m]):
            self.on_links(None)
        for model, by_tp in found.items():
            self.positions[model].update(by_tp)
        # Start where the model furthest behind is; the others skip what they have.
        return {tp: min(found[m][tp] for m in self.models) for tp in partitions}

    async def run(self, stopping: Callable[[], bool]) -> None:
        subscription = await self.eventlog.subscribe(
            self.group_id,
            [self.topics.intake, self.topics.decisions],
            start_positions=self._start_positions,
        )
        lag_task = asyncio.create_task(self._watch_lag(stopping), name="projection-lag")
        clock = asyncio.get_running_loop()
        linger_until = 0.0
        try:
            while not stopping():
                if clock.time() < linger_until:
                    await asyncio.sleep(linger_until - clock.time())
                records = await subscription.poll(self.max_records, timeout=0.2)
                if records and self.hold_seconds > 0:
                    records = await self._gathered(subscription, records)
                if records:
                    await self.apply(records)
                linger_until = (clock.time() + self.linger_seconds
                                if self.linger_from <= len(records) < self.max_records
                                else 0.0)
                self.lag.consumed = await subscription.positions()
        finally:
            lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag_task
            await subscription.close()

    async def _gathered(self, subscription: Subscription, records: list[Record]
                        ) -> list[Record]:
        """`records` and what arrives after them until a decision is among them, the
        batch is full, or `hold_seconds` passed since they were fetched (see
        `__init__`). Nothing is applied or committed meanwhile, so a crash or a
        rebalance during the hold loses nothing: the records are fetched again from
        the stored positions, and `_transaction` skips what another owner applied."""
        intake, decisions = self.topics.intake, self.topics.decisions
        if not any(r.topic == intake for r in records) or any(
                r.topic == decisions for r in records):
            return records
        clock = asyncio.get_running_loop()
        deadline = clock.time() + self.hold_seconds
        gathered = list(records)
        while len(gathered) < self.max_records:
            remaining = deadline - clock.time()
            if remaining <= 0:
                break
            more = await subscription.poll(self.max_records - len(gathered),
                                           timeout=remaining)
            gathered.extend(more)
            if any(r.topic == decisions for r in more):
                break
        HELD.inc()
        return gathered

    async def _watch_lag(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            await self.lag.refresh()
            await asyncio.sleep(LAG_INTERVAL_SECONDS)

    async def _dead_letter(self, poison: Sequence[tuple[Record, ValueError]]) -> None:
        """Append the dead letters of undecodable records before the batch (and the position
        past them) commits: a crash in between writes them again, with the same ids."""
        if not self.topics.dead_letters:
            for record, exc in poison:
                log.error("undecodable_record", topic=record.topic,
                          partition=record.partition, offset=record.offset, error=str(exc))
            return
        await self.eventlog.append([
            dead_letter(record, topic=self.topics.dead_letters, consumer="projections",
                        group=self.group_id, error=exc)
            for record, exc in poison])

    async def apply(self, records: Sequence[Record]) -> Batch | None:
        """Fold `records` into the models in one transaction with their positions. A store
        locked by another writer past its busy timeout rolls the transaction back whole;
        the batch is then tried again after a back-off (`retry_when_busy`), not lost and
        not applied in part, and the worker does not crash."""
        started = time.perf_counter()
        started_ns = time.time_ns()
        lettered: set[tuple[TopicPartition, int]] = set()
        items, batch, new_positions = await retry_when_busy(
            lambda: self._apply_once(records, lettered), what="projections")
        for model, by_tp in new_positions.items():
            self.positions[model].update(by_tp)
        _log_items(items, batch)
        _span_items(items, started_ns)
        APPLIED.inc(len(items))
        BATCH_SECONDS.observe(time.perf_counter() - started)
        LAST_APPLIED.set(time.time())
        self.position_waiter.notify()
        if batch is not None and batch.outbox and self.on_outbox is not None:
            self.on_outbox()
        if batch is not None and self.on_applied is not None:
            touched = batch.touched_registrations()
            if touched:
                self.on_applied(touched, _committed_rows(batch))
        if self.on_links is not None:
            if self._foreign_writes:
                self._foreign_writes = False
                self.on_links(None)
            elif batch is not None and batch.link_facts:
                self.on_links({alias for alias, _ in batch.link_facts})
        if batch is not None:  # after the waiters: an answer never waits for statistics
            await self._analyze_when_grown(batch)
        return batch

    async def _analyze_when_grown(self, batch: Batch) -> None:
        """PostgreSQL: `ANALYZE` the account directory's name tables each time the names
        this worker filed doubled (from `ANALYZE_FROM_ROWS` on). The registration
        service's directory look-up is a prepared statement whose generic plan PostgreSQL
        caches per connection and replans only when statistics change; planned on nearly
        empty tables it cost ~16 ms per call (154 ms alone at 8,000 names, 2.8 ms after
        `ANALYZE`) until autovacuum's first ANALYZE, a minute or more later (README,
        "Why the sustained 200/s run saturates")."""
        self._directory_written += len(batch.names) + len(batch.name_keys)
        if self._directory_written < self._analyze_at or self.engine.dialect.name != \
                "postgresql":
            return
        self._analyze_at = 2 * self._directory_written
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql(f"ANALYZE {', '.join(ANALYZED)}")
                await conn.commit()
        except Exception as exc:  # statistics only: never fail the batch that committed
            log.warning("analyze_failed", error=str(exc))

    async def _apply_once(
        self, records: Sequence[Record], lettered: set[tuple[TopicPartition, int]],
    ) -> tuple[list[Item], Batch | None, repository.Positions]:
        """One batch's transaction. On SQLite (a file) it runs whole on the store's writer
        thread, in one hop (`write_in_thread`; the same code, its statements run there
        synchronously); a batch with undecodable records, whose dead letters are appended
        to the log first, takes the event loop's path (`begin()`)."""
        if writes_in_thread(self.engine):
            try:
                return await write_in_thread(
                    self.engine, lambda conn: self._transaction(conn, records, lettered,
                                                                whole=True))
            except NotWhole:
                pass  # rolled back, nothing written: the same batch through `begin()`
        async with self.engine.begin() as conn:
            return await self._transaction(conn, records, lettered)

    async def _transaction(
        self, conn: AsyncConnection, records: Sequence[Record],
        lettered: set[tuple[TopicPartition, int]], *, whole: bool = False,
    ) -> tuple[list[Item], Batch | None, repository.Positions]:
        partitions = {r.tp for r in records}
        stored = await repository.load_positions(conn, self.models, partitions, lock=True)
        foreign = any(stored[m].get(tp, 0) != self.positions[m][tp]
                      for m in self.models for tp in partitions if tp in self.positions[m])
        poison: list[tuple[Record, ValueError]] = []
        items = decode_records(records, stored, self.models, poison)
        # A retried batch does not append its dead letters a second time.
        poison = [(r, e) for r, e in poison if (r.tp, r.offset) not in lettered]
        if poison:
            if whole:  # the log's append cannot be awaited on the writer's thread
                raise NotWhole("dead letters to append")
            await self._dead_letter(poison)
            lettered.update((r.tp, r.offset) for r, _ in poison)
        batch = (await fold_into(conn, items, stage_from=self.stage_from)
                 if items else None)
        new_positions = advanced(stored, records)
        await repository.save_positions(conn, new_positions, stage_from=self.stage_from)
        if batch is not None:  # PostgreSQL: wakes waiting registration services
            await notify_registrations(conn, batch.touched_registrations(),
                                       _committed_rows(batch))
        self._foreign_writes = self._foreign_writes or foreign
        return items, batch, new_positions


def _span_items(items: Sequence[Item], started_ns: int) -> None:
    """A `projection.apply` span per folded event, child of its event's trace, spanning
    the batch's transaction (committed: a rolled-back batch made none)."""
    if not tracing.enabled():
        return
    ended_ns = time.time_ns()
    for item in items:
        tracing.record_span(
            "projection.apply", tracing.TraceContext.parse(item.traceparent, item.tracestate),
            started_ns, ended_ns, "consumer", event_id=item.event_id, type=item.event.TYPE,
            batch_size=len(items))


def _log_items(items: Sequence[Item], batch: Batch | None) -> None:
    """The projection's log lines about events, each with the trace id of its event:
    every folded event at DEBUG, every queued notification at INFO."""
    if log.is_enabled_for(logging.DEBUG):
        for item in items:
            log.debug("projected", event_id=item.event_id, type=item.event.TYPE,
                      trace_id=tracing.trace_id_of(item.traceparent))
    if batch is not None:
        for row in batch.outbox.values():
            log.info("notification_queued", delivery_id=row["id"], type=row["type"],
                     event_id=row["event_id"], recipient=row["recipient_id"],
                     channel=row["channel"], trace_id=tracing.trace_id_of(row["traceparent"]))
