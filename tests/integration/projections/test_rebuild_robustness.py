"""A parallel rebuild attacked on real stores (SQLite and PostgreSQL): interrupted, a worker
process killed, poison records on the log. Each time: whole batches only, a clear answer,
no hang, and a rerun equal to the live rows."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.adapters.parallel import RebuildWorkerFailed
from services.projections.adapters.rebuild import rebuild
from services.projections.worker import ProjectionWorker
from shared.eventlog import EventLog, OutgoingRecord
from shared.eventlog.topics import Topics
from shared.events import encode
from tests.integration.projections import test_projection_store as _store
from tests.integration.projections.projection_support import (
    append_workload,
    positions,
    snapshot,
)
from tests.unit.projections.projection_workload import Workload

Backend = tuple[EventLog, AsyncEngine, Topics]
backend = _store.backend  # the same stores (SQLite, PostgreSQL) and workload as there
workload = _store.workload
read_all = _store.read_all


def _rebuild_workers() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children()
            if p.name.startswith("dealreg-rebuild-")]


async def _live(log: EventLog, engine: AsyncEngine, topics: Topics
                ) -> tuple[dict[str, object], dict[tuple[str, str, int], int]]:
    streams = await read_all(log, topics)
    worker = ProjectionWorker(log, engine, topics, group_id="unused")
    await worker.apply(streams[topics.intake] + streams[topics.decisions])
    return await snapshot(engine), await positions(engine)


async def _resumed_by_a_worker_equals(log: EventLog, engine: AsyncEngine, topics: Topics,
                                      live: object, live_positions: object) -> None:
    """What the failed rebuild committed is whole batches with their positions: a worker
    resuming from them ends at the live rows (a half-applied batch would not)."""
    streams = await read_all(log, topics)
    worker = ProjectionWorker(log, engine, topics, group_id="unused")
    await worker.apply(streams[topics.intake] + streams[topics.decisions])
    assert await snapshot(engine) == live
    assert await positions(engine) == live_positions


async def test_a_killed_rebuild_worker_fails_the_rebuild_naming_its_partitions(
    backend: Backend, workload: Workload,
) -> None:
    """SIGKILL one worker process at the first progress once workers exist (this process
    replays while they start): the rebuild raises (no hang on the dead child), naming the
    worker and the partitions it was given; committed batches are whole; a rerun equals
    the live rows."""
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    live, live_positions = await _live(log, engine, topics)

    killed: list[str] = []

    def kill_one(_records: int) -> None:
        if not killed and (workers := _rebuild_workers()):
            victim = sorted(workers, key=lambda p: p.name)[0]
            assert victim.pid is not None
            killed.append(victim.name)
            os.kill(victim.pid, signal.SIGKILL)

    with pytest.raises(RebuildWorkerFailed) as failed:
        await asyncio.wait_for(
            rebuild(log, engine, topics, batch_records=200, processes=2, progress=kill_one),
            timeout=120)
    assert killed
    message = str(failed.value)
    assert killed[0] in message and "partition" in message and "killed" in message, message
    assert not _rebuild_workers()
    await _resumed_by_a_worker_equals(log, engine, topics, live, live_positions)

    result = await rebuild(log, engine, topics, batch_records=200, processes=2)
    assert result.records == len(workload.records)
    assert await snapshot(engine) == live
    assert await positions(engine) == live_positions


async def test_an_interrupted_parallel_rebuild_stops_its_workers_and_a_rerun_equals_live(
    backend: Backend, workload: Workload,
) -> None:
    """Ctrl-C: `asyncio.run` cancels the rebuild (and the terminal sends the workers
    SIGINT too). The rebuild ends without leaving worker processes, what it committed is
    whole batches, and a rerun equals the live rows."""
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    live, live_positions = await _live(log, engine, topics)

    started = asyncio.Event()

    def interrupt(_records: int) -> None:
        if not started.is_set():
            started.set()
            for worker in _rebuild_workers():
                assert worker.pid is not None
                os.kill(worker.pid, signal.SIGINT)

    task = asyncio.ensure_future(
        rebuild(log, engine, topics, batch_records=200, processes=2, progress=interrupt))
    await asyncio.wait_for(started.wait(), timeout=120)
    task.cancel()
    with pytest.raises((asyncio.CancelledError, RebuildWorkerFailed)):
        await asyncio.wait_for(task, timeout=120)
    assert not _rebuild_workers()
    await _resumed_by_a_worker_equals(log, engine, topics, live, live_positions)

    await rebuild(log, engine, topics, batch_records=200, processes=2)
    assert await snapshot(engine) == live
    assert await positions(engine) == live_positions


@pytest.mark.parametrize("processes", [1, 2])
async def test_poison_records_are_skipped_as_live_and_named_by_partition_and_offset(
    backend: Backend, workload: Workload, processes: int,
) -> None:
    """Undecodable bytes, an unknown event type and a future version of a known one, in the
    middle of the log: the live worker skips them (dead letters), so the rebuild skips
    them too (rows equal the live ones, positions past them) and names each by topic,
    partition and offset; it does not hang or half-apply."""
    log, engine, topics = backend
    half = len(workload.records) // 2
    first, rest = Workload(workload.records[:half]), Workload(workload.records[half:])
    await append_workload(log, topics, first)
    intake = next(r for r in workload.records if r.topic == "intake")
    body = orjson.loads(encode(intake.envelope))
    base = body["type"].rpartition(".v")[0]
    poison = [b"\xff not json",
              orjson.dumps({**body, "type": "com.example.nothing.v1"}),
              orjson.dumps({**body, "type": f"{base}.v99"})]
    await log.append([OutgoingRecord(topics.intake, intake.key, v) for v in poison])
    await append_workload(log, topics, rest)
    live, live_positions = await _live(log, engine, topics)

    result = await asyncio.wait_for(
        rebuild(log, engine, topics, batch_records=200, processes=processes), timeout=120)
    assert await snapshot(engine) == live
    assert await positions(engine) == live_positions
    streams = await read_all(log, topics)
    expected = sorted((r.topic, r.partition, r.offset) for r in streams[topics.intake]
                      if r.value in poison)
    assert len(expected) == 3
    assert [s[:3] for s in result.skipped] == expected
    assert all(s[3] for s in result.skipped)
    assert result.records == len(workload.records) + 3
