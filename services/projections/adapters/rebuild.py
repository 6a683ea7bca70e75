"""Rebuild: empty read models and replay the log from the beginning (invariant 2).

Partitions are replayed one after the other, intake before decisions; the folds do not
depend on that order (see `domain/`), which is why the result equals the live model. Every
batch commits its rows with the models' positions, so an interrupted rebuild resumes like
a worker would: run the projections service afterwards and it continues from there.

Rebuild while no projection worker runs against the same store (stop `dealreg serve
projections`; `dealreg dev` holds the embedded data directory's lock anyway): a live worker
would keep folding into the tables being emptied.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.adapters import repository
from services.projections.domain.batch import MODELS, Item, Loaded, Needs
from services.projections.worker import Misrouted, decode_records, load_and_fold
from shared.eventlog import EventLog, Record, TopicPartition
from shared.eventlog.base import ReadIterator
from shared.eventlog.topics import Topics
from shared.logging import get_logger

log = get_logger(__name__)

Progress = Callable[[int], None]
_COLLECT_EVERY = 25


class PartitioningBroken(RuntimeError):
    """A record on the log is keyed by another account key than the one its event names
    (for a decision: invariant 14): its rows may be written from two partitions, whose
    order a parallel rebuild does not fix. The message names the first such record."""


PARALLEL_FROM_RECORDS = 100_000
"""A smaller log is replayed in this process: workers (forked, ready in milliseconds) still
cost their own engine and connections, and this process's reading and piping of every
record (about 0.75 CPU-second per 100,000), which a short replay does not win back."""


def default_processes(records: int) -> int:
    """Worker processes for a log of `records`: one per core (at most 4) for a large one."""
    if records < PARALLEL_FROM_RECORDS:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class RebuildResult:
    models: tuple[str, ...]
    records: int
    events: int
    seconds: float
    skipped: tuple[tuple[str, int, int, str], ...] = ()
    """Undecodable records (topic, partition, offset, error), skipped as the live worker
    skips them (it dead-letters them), so the rebuilt rows equal the live ones."""
    misrouted: int = 0
    """Records keyed by another account key than the one their event names (for decisions:
    invariant 14 broken; not a log this service wrote); the first `MISROUTED_KEPT` are in
    `misrouted_first`. Such a log was replayed in one process, partition after
    partition."""
    misrouted_first: tuple[Misrouted, ...] = ()
    fell_back: str | None = None
    """Why a parallel rebuild was started again in one process (the first misrouted
    decision a worker found), or None."""

    @property
    def events_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


async def log_size(eventlog: EventLog, topics: Topics) -> dict[TopicPartition, int]:
    ends: dict[TopicPartition, int] = {}
    for topic in (topics.intake, topics.decisions):
        ends.update(await eventlog.end_positions(topic))
    return ends


Batch_ = tuple[list[Record], dict[TopicPartition, int]]


async def _batches(
    eventlog: EventLog, groups: dict[int, list[TopicPartition]],
    ends: dict[TopicPartition, int], batch_records: int,
) -> AsyncIterator[Batch_]:
    """Batches of records, partition group after partition group, each with the next
    offset of every partition it read (a chunk holds one partition's records in offset
    order)."""
    for partition in sorted(groups):
        tps = groups[partition]
        total = sum(ends[tp] for tp in tps)
        readers: dict[TopicPartition, ReadIterator] = {
            tp: aiter(eventlog.read(tp, 0, ends[tp], max(100, batch_records * ends[tp] // total)))
            for tp in tps}
        while readers:
            records: list[Record] = []
            read_to: dict[TopicPartition, int] = {}
            for tp in list(readers):
                chunk = await anext(readers[tp], None)
                if chunk is None:
                    del readers[tp]
                elif chunk:
                    records.extend(chunk)
                    read_to[tp] = chunk[-1].offset + 1
            if records:
                yield records, read_to


Decoded = tuple[list[Record], list[Item], dict[TopicPartition, int]]


class Keying:
    """The check of a rebuild's records (`worker.misrouted`): each must be keyed by the
    account key its event names (a decision by its own, invariant 14), so every record
    about a registration, claim or dispute is on its account's partition. The parallel
    rebuild relies on it (`parallel.py`), and so does skipping the loads of rows no batch
    wrote yet (`replay`): with a `strict` check the first breach raises
    `PartitioningBroken` before its batch is folded; otherwise the breaches are collected
    (the one-process replay folds partition after partition, a fixed order whatever the
    log holds, and knows every row it wrote)."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.breaches: list[Misrouted] = []
        self.count = 0

    def check(self, found: list[Misrouted]) -> None:
        if not found:
            return
        if self.strict:
            raise PartitioningBroken(describe_breach(found[0]))
        self.count += len(found)
        self.breaches.extend(found[:MISROUTED_KEPT - len(self.breaches)])


MISROUTED_KEPT = 20
"""How many misrouted decisions a rebuild names (it counts them all)."""


def describe_breach(breach: Misrouted) -> str:
    topic, partition, offset, kind, key, own = breach
    return (f"{topic} partition {partition} offset {offset}: {kind} about account {own!r} "
            f"is keyed {key!r}")


async def _decoded(batches: AsyncIterator[Batch_], models: tuple[str, ...],
                   skipped: list[tuple[str, int, int, str]], keying: Keying | None = None,
                   ) -> AsyncIterator[Decoded]:
    """Decoded batches; undecodable records are added to `skipped` (and logged), and the
    decisions are checked by `keying`."""
    async for records, read_to in batches:
        # Replaying from the beginning: nothing is applied yet, every record counts.
        poison: list[tuple[Record, ValueError]] = []
        found: list[Misrouted] = []
        items = decode_records(records, {m: {} for m in models}, models, poison,
                               found if keying is not None else None)
        for record, exc in poison:
            log.error("undecodable_record", topic=record.topic, partition=record.partition,
                      offset=record.offset, error=str(exc))
            skipped.append((record.topic, record.partition, record.offset, str(exc)))
        if keying is not None:
            keying.check(found)
        yield records, items, read_to


async def rebuild(
    eventlog: EventLog,
    engine: AsyncEngine,
    topics: Topics,
    models: Sequence[str] = MODELS,
    *,
    batch_records: int = 20_000,
    progress: Progress | None = None,
    ends: dict[TopicPartition, int] | None = None,
    processes: int = 1,
) -> RebuildResult:
    """Empty `models` and replay every partition up to its current end into them.

    Partition p of intake and partition p of decisions hold the same accounts, so they are
    read side by side (in proportion to their sizes) and folded in the same transactions:
    most registrations are then loaded and written once instead of once per topic.

    `processes` > 1: the partition groups are handed out, largest first, to that many
    worker processes (`parallel.py`), which decode, fold and write them; this process
    reads the log, and replays groups itself while the workers start."""
    models = tuple(models)
    unknown = set(models) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown read models: {sorted(unknown)}")
    ends = ends if ends is not None else await log_size(eventlog, topics)
    started = time.perf_counter()
    async with engine.begin() as conn:
        await repository.empty(conn, models)
    groups: dict[int, list[TopicPartition]] = {}
    for tp in sorted(ends):
        if ends[tp] > 0:
            groups.setdefault(tp.partition, []).append(tp)
    skipped: list[tuple[str, int, int, str]] = []
    fell_back: str | None = None
    if processes > 1 and len(groups) > 1:
        from services.projections.adapters.parallel import replay_in_processes

        units = [(p, functools.partial(_batches, eventlog, {p: groups[p]}, ends, batch_records))
                 for p in sorted(groups, key=lambda p: -sum(ends[tp] for tp in groups[p]))]
        reported = [0]

        def counted(records: int) -> None:
            reported[0] += records
            if progress is not None:
                progress(records)

        try:
            seen, events, skipped = await replay_in_processes(
                engine, models, units, min(processes, len(groups)), counted)
        except PartitioningBroken as exc:
            # Rows of one registration may be written from two partitions: in several
            # processes their order would depend on timing. Start again in this one, whose
            # order (partition after partition) is fixed.
            fell_back = str(exc)
            log.warning("rebuild_falls_back_to_one_process", reason=fell_back)
            async with engine.begin() as conn:
                await repository.empty(conn, models)
            skipped = []
            if progress is not None:
                progress(-reported[0])  # the progress starts again with the replay
    keying = Keying(strict=False)
    if fell_back is not None or not (processes > 1 and len(groups) > 1):
        seen, events = await replay(
            engine, _decoded(_batches(eventlog, groups, ends, batch_records), models, skipped,
                             keying),
            models, progress)
    if keying.count:
        log.warning("rebuild_found_misrouted_records", count=keying.count,
                    first=describe_breach(keying.breaches[0]))
    return RebuildResult(models, seen, events, time.perf_counter() - started,
                         tuple(sorted(skipped)), keying.count, tuple(keying.breaches),
                         fell_back)


async def replay(engine: AsyncEngine, batches: AsyncIterator[Decoded],
                 models: tuple[str, ...], progress: Progress | None) -> tuple[int, int]:
    """Fold and write `batches` (into emptied models); returns (records, events)."""
    seen = events = batches_done = 0
    # Decoding and folding allocate many short-lived objects and no cycles (a 62,000-record
    # rebuild left none to collect): reference counting frees them, and the cyclic
    # collector, whose automatic passes cost a sixth of the rebuild's CPU, runs only every
    # `_COLLECT_EVERY` batches (each pass walks every object allocated since the last).
    gc.collect()
    gc.freeze()
    collecting = gc.isenabled()
    gc.disable()
    # Three stages overlap: reading and decoding the next batch, folding this one (in this
    # process, on the rows carried from the previous batch plus what earlier batches
    # committed), and writing the previous one (in the store's thread or server). At most
    # one write is in flight and writes commit in log order, each with its positions.
    pending = asyncio.ensure_future(anext(batches, None))
    writing: asyncio.Future[None] | None = None
    # The models were emptied and this process is the only writer of the rows it folds
    # (one process replays everything, or each replays whole partitions of a log whose
    # keying `Keying` checks): a row it never wrote is not in the store, and is not looked
    # for. (In a 100,000-record log nearly every id is new to its batch.)
    written = Needs()
    try:
        carry: Loaded | None = None
        dialect = engine.dialect.name
        while (batch := await pending) is not None:
            records, items, read_to = batch
            pending = asyncio.ensure_future(anext(batches, None))
            steps: list[repository.Step] = []
            if items:
                # This process is the only writer of these rows: the previous batch's rows
                # are what the store will hold once its write commits (carried, not read
                # back); rows of earlier batches were committed before that write began.
                async with engine.connect() as conn:
                    folded = await load_and_fold(conn, items, carry, written)
                fresh = repository.fresh_tables(folded, written)
                written.add_written(folded)
                carry = folded.carry()
                steps = repository.prepare(dialect, folded, staged=True, fresh=fresh)
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(_write(engine, steps, models, read_to))
            seen += len(records)
            events += len(items)
            batches_done += 1
            if batches_done % _COLLECT_EVERY == 0:
                gc.collect(1)
            if progress is not None:
                progress(len(records))
        if writing is not None:
            await writing
            writing = None
    finally:
        for future in (pending, writing):
            if future is not None and not future.done():
                future.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await future
        gc.unfreeze()
        if collecting:
            gc.enable()
    return seen, events


async def _write(engine: AsyncEngine, steps: Sequence[repository.Step],
                 models: tuple[str, ...], read_to: dict[TopicPartition, int]) -> None:
    """One batch's rows and the models' positions after it, in one transaction."""
    async with engine.begin() as conn:
        await repository.execute(conn, steps)
        await repository.save_positions(conn, dict.fromkeys(models, read_to))
