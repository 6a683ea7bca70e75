"""A live projection batch on a SQLite file runs whole on the store's writer thread, in one
hop (`shared.readmodel.store.write_in_thread`, session 27), and writes exactly what the
same batch writes through `engine.begin()`.

Through `begin()` every statement of a batch (the positions, the loads, a bulk write per
table, the commit) was its own hop to aiosqlite's thread and back; in `dealreg dev` those
hops were the largest part of the projections' CPU per decision. The dead-letter path (a
batch with an undecodable record, whose dead letters are appended to the log first) still
takes `begin()`: tests/integration/test_poison_records.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

import services.projections.worker as worker_module
from services.projections.domain.batch import MODELS, NOTIFICATIONS
from services.projections.worker import ProjectionWorker
from shared.eventlog import Record
from shared.eventlog.partitioner import partition_for
from shared.eventlog.topics import Topics
from shared.events import encode
from shared.readmodel.store import create_engine, migrate, writes_in_thread
from tests.integration.projections.projection_support import positions, snapshot
from tests.unit.projections.projection_workload import Workload, generate

TOPICS = Topics.named("thread")
PARTITIONS = 4


def _records(workload: Workload) -> list[Record]:
    """The workload as a log would hold it: keyed partitions, offsets counted per partition."""
    ends: dict[tuple[str, int], int] = {}
    out = []
    for logged in workload.records:
        topic = TOPICS.intake if logged.topic == "intake" else TOPICS.decisions
        partition = partition_for(logged.key, PARTITIONS)
        offset = ends.get((topic, partition), 0)
        ends[(topic, partition)] = offset + 1
        out.append(Record(topic, partition, offset, logged.key, encode(logged.envelope), 0))
    return out


async def _apply(path: Path, records: list[Record], batch: int) -> tuple[int, Any, Any]:
    """Apply `records` in batches of `batch` with a fresh live worker on a new file: the
    statements sent through the engine's own (aiosqlite) pool meanwhile, then the read
    models and positions."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await migrate(engine)
        worker = ProjectionWorker(None, engine, TOPICS,  # type: ignore[arg-type]
                                  group_id="g", models=(*MODELS, NOTIFICATIONS))
        sent = 0

        def count(*_: Any) -> None:
            nonlocal sent
            sent += 1

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        for start in range(0, len(records), batch):
            await worker.apply(records[start:start + batch])
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        return sent, await snapshot(engine), await positions(engine)
    finally:
        await engine.dispose()


async def test_a_live_batch_runs_whole_on_the_writer_thread_and_writes_what_begin_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records(generate(600, seed=27, accounts=60, partners=12))
    assert writes_in_thread(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'probe.db'}"))
    assert not writes_in_thread(create_engine("sqlite+aiosqlite:///:memory:"))

    sent, threaded, threaded_positions = await _apply(tmp_path / "thread.db", records, 3)
    # Nothing of the batches went through the pool: one hop each, to the writer thread.
    assert sent == 0

    monkeypatch.setattr(worker_module, "writes_in_thread", lambda _engine: False)
    sent_looped, looped, looped_positions = await _apply(tmp_path / "loop.db", records, 3)
    assert sent_looped > len(records) // 3  # the reference path: statements through the pool

    assert threaded == looped
    assert threaded_positions == looped_positions
    assert threaded["registrations"] and threaded["timeline_entries"]
