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
import gc
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.adapters import repository
from services.projections.domain.batch import MODELS, Item, Loaded
from services.projections.worker import decode_records, load_and_fold
from shared.eventlog import EventLog, Record, TopicPartition
from shared.eventlog.base import ReadIterator
from shared.eventlog.topics import Topics

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RebuildResult:
    models: tuple[str, ...]
    records: int
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


async def log_size(eventlog: EventLog, topics: Topics) -> dict[TopicPartition, int]:
    ends: dict[TopicPartition, int] = {}
    for topic in (topics.intake, topics.decisions):
        ends.update(await eventlog.end_positions(topic))
    return ends


async def _batches(
    eventlog: EventLog, groups: dict[int, list[TopicPartition]],
    ends: dict[TopicPartition, int], batch_records: int, models: tuple[str, ...],
) -> AsyncIterator[tuple[list[Record], list[Item], dict[TopicPartition, int]]]:
    """Decoded batches, partition group after partition group, each with the next offset
    of every partition it read (a chunk holds one partition's records in offset order)."""
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
                # Replaying from the beginning: nothing is applied yet, every record counts.
                yield (records, decode_records(records, {m: {} for m in models}, models),
                       read_to)


async def rebuild(
    eventlog: EventLog,
    engine: AsyncEngine,
    topics: Topics,
    models: Sequence[str] = MODELS,
    *,
    batch_records: int = 20_000,
    progress: Progress | None = None,
    ends: dict[TopicPartition, int] | None = None,
) -> RebuildResult:
    """Empty `models` and replay every partition up to its current end into them.

    Partition p of intake and partition p of decisions hold the same accounts, so they are
    read side by side (in proportion to their sizes) and folded in the same transactions:
    most registrations are then loaded and written once instead of once per topic."""
    models = tuple(models)
    unknown = set(models) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown read models: {sorted(unknown)}")
    ends = ends if ends is not None else await log_size(eventlog, topics)
    started = time.perf_counter()
    async with engine.begin() as conn:
        await repository.empty(conn, models)
    seen = events = 0
    groups: dict[int, list[TopicPartition]] = {}
    for tp in sorted(ends):
        if ends[tp] > 0:
            groups.setdefault(tp.partition, []).append(tp)
    # Decoding allocates many short-lived objects and no cycles: collect less often.
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(50_000, 50, 100)
    try:
        batches = _batches(eventlog, groups, ends, batch_records, models)
        # Read and decode the next batch while this one is folded and written (the log
        # reader and the store's driver work in their own threads or servers).
        pending = asyncio.ensure_future(anext(batches, None))
        carry: Loaded | None = None
        dialect = engine.dialect.name
        while (batch := await pending) is not None:
            records, items, read_to = batch
            pending = asyncio.ensure_future(anext(batches, None))
            async with engine.begin() as conn:
                if items:
                    # This process is the only writer: the previous batch's rows are what
                    # the store holds, no need to read them back.
                    folded = await load_and_fold(conn, items, carry)
                    carry = folded.carry()
                    await repository.execute(conn, repository.prepare(dialect, folded))
                await repository.save_positions(conn, dict.fromkeys(models, read_to))
            seen += len(records)
            events += len(items)
            if progress is not None:
                progress(len(records))
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
    return RebuildResult(models, seen, events, time.perf_counter() - started)
