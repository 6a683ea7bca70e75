"""The projection worker's linger (session 26; `kafka_projections_linger_ms` in the Kafka
deployment): after applying a batch that was not full it waits before polling again, so
events arriving meanwhile share one read-model transaction (and one NOTIFY, and one read
back per registration service) instead of a batch each; an event arriving after an idle
spell is applied at once. Since session 27 it lingers only after a batch of at least
`linger_from` events (a worker falling behind its input): after a smaller one it polls at
once, so at low rates no decision waits for the linger. Real SQLite read model and
embedded log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from services.projections.worker import ProjectionWorker
from shared.eventlog import Record
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.topics import Topics
from shared.readmodel.store import create_engine, migrate
from tests.unit.projections.test_sqlite_write_contention import _submitted

LINGER = 1.0


async def _batches_of_three(tmp_path: Path, linger: float, gap: float, linger_from: int = 1
                            ) -> tuple[list[int], float]:
    """Sizes of the batches that applied three records: the first alone after an idle
    spell, the other two appended `gap` seconds apart right after it; and how long the first
    took from its append to its batch."""
    topics = Topics.named("linger")
    log = EmbeddedEventLog(tmp_path / f"log-{linger}.sqlite3")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / f'rm-{linger}.sqlite3'}")
    await log.start()
    await log.create_topics(topics.specs(1))
    await migrate(engine)
    worker = ProjectionWorker(log, engine, topics, group_id="projections",
                              linger_seconds=linger, linger_from=linger_from)
    sizes: list[int] = []
    applied_at: list[float] = []
    apply = worker.apply

    async def counted(records: Sequence[Record]) -> object:
        sizes.append(len(records))
        applied_at.append(time.monotonic())
        return await apply(records)

    worker.apply = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop.is_set))
    try:
        await asyncio.sleep(0.5)  # subscribed, idle
        appended_at = time.monotonic()
        await log.append([_submitted(topics, 0)])
        for _ in range(200):
            if sizes:
                break
            await asyncio.sleep(0.01)
        await log.append([_submitted(topics, 1)])
        await asyncio.sleep(gap)
        await log.append([_submitted(topics, 2)])
        for _ in range(300):
            if sum(sizes) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await engine.dispose()
        await log.close()
    return sizes, applied_at[0] - appended_at


async def test_events_arriving_while_the_worker_lingers_share_one_batch(
        tmp_path: Path) -> None:
    sizes, first_after = await _batches_of_three(tmp_path, LINGER, 0.1)
    assert sizes == [1, 2]  # without the linger: [1, 1, 1], a transaction each
    assert first_after < LINGER / 2  # after an idle spell: no wait


async def test_a_batch_smaller_than_the_threshold_is_not_followed_by_the_linger(
        tmp_path: Path) -> None:
    sizes, _ = await _batches_of_three(tmp_path, LINGER, 0.5, linger_from=2)
    assert sizes == [1, 1, 1]  # with the linger after every batch: [1, 2]


async def test_the_default_threshold_keeps_a_low_rate_out_of_the_linger(
        tmp_path: Path) -> None:
    from shared.settings import Settings

    threshold = Settings(backend="distributed").kafka_projections_linger_from_records
    assert threshold > 2  # a registration's intake event and its decision
    sizes, _ = await _batches_of_three(tmp_path, LINGER, 0.5, linger_from=threshold)
    assert sizes == [1, 1, 1]


async def test_no_linger_polls_again_at_once(tmp_path: Path) -> None:
    sizes, _ = await _batches_of_three(tmp_path, 0.0, 0.5)
    assert sizes == [1, 1, 1]
