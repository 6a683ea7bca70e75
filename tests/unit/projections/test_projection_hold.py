"""The projection worker's hold (session 28; `kafka_projections_hold_ms` in the Kafka
deployment): a fetched batch of intake events with no decision in it waits, fetching on,
until a decision arrives, and both are applied in one transaction. At low rates a
registration and its decision arrived milliseconds apart and were two read-model
transactions (each ~15 round trips to PostgreSQL, a NOTIFY and a read back per
registration service). A batch that already holds a decision is applied at once. Real
SQLite read model and embedded log (the worker's loop is the same on Kafka)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from services.projections.worker import ProjectionWorker
from shared.eventlog import OutgoingRecord, Record
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.topics import Topics
from shared.events import DomainEvent
from shared.events.codec import encode, new_envelope
from shared.readmodel.store import create_engine, migrate
from tests.unit.projections.builders import at, decided, submitted

HOLD = 2.0


def _record(topic: str, event: DomainEvent, i: int) -> OutgoingRecord:
    key = "dom:acme.com"
    envelope = new_envelope(event, id=f"evt_{topic[-3:]}_{i}", source="urn:test",
                            subject=key, time=at(i))
    return OutgoingRecord(topic, key, encode(envelope))


async def _applied(tmp_path: Path, hold: float, steps: Sequence[tuple[float, str]]
                   ) -> tuple[list[list[str]], list[float]]:
    """The batches the worker applied (each as the topics of its records, "i" intake or
    "d" decisions) when `steps` are appended in turn, each after its pause; and when each
    batch was applied, in seconds after the first append."""
    topics = Topics.named("hold")
    log = EmbeddedEventLog(tmp_path / f"log-{hold}.sqlite3")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / f'rm-{hold}.sqlite3'}")
    await log.start()
    await log.create_topics(topics.specs(1))
    await migrate(engine)
    worker = ProjectionWorker(log, engine, topics, group_id="projections",
                              hold_seconds=hold)
    batches: list[list[str]] = []
    applied_at: list[float] = []
    apply = worker.apply
    started = 0.0

    async def counted(records: Sequence[Record]) -> object:
        batches.append(["i" if r.topic == topics.intake else "d" for r in records])
        applied_at.append(time.monotonic() - started)
        return await apply(records)

    worker.apply = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop.is_set))
    try:
        await asyncio.sleep(0.5)  # subscribed, idle
        started = time.monotonic()
        for n, (pause, kind) in enumerate(steps):
            await asyncio.sleep(pause)
            if kind == "i":
                await log.append([_record(topics.intake, submitted(f"reg_{n}"), n)])
            else:
                await log.append([_record(topics.decisions, decided(f"reg_{n - 1}"), n)])
        for _ in range(400):
            if sum(len(b) for b in batches) >= len(steps):
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await engine.dispose()
        await log.close()
    return batches, applied_at


async def test_a_submission_and_its_decision_are_applied_in_one_batch(
        tmp_path: Path) -> None:
    batches, applied_at = await _applied(tmp_path, HOLD, [(0, "i"), (0.2, "d")])
    assert batches == [["i", "d"]]  # without the hold: [["i"], ["d"]], a transaction each
    assert applied_at[0] < HOLD / 2  # applied when the decision came, not at the hold's end


async def test_without_the_hold_each_arrival_is_its_own_batch(tmp_path: Path) -> None:
    batches, _ = await _applied(tmp_path, 0.0, [(0, "i"), (0.2, "d")])
    assert batches == [["i"], ["d"]]


async def test_a_decision_alone_is_applied_at_once(tmp_path: Path) -> None:
    batches, applied_at = await _applied(tmp_path, HOLD, [(0, "d")])
    assert batches == [["d"]]
    assert applied_at[0] < HOLD / 2


async def test_intake_with_no_decision_is_applied_when_the_hold_ends(tmp_path: Path) -> None:
    batches, applied_at = await _applied(tmp_path, 0.5, [(0, "i")])
    assert batches == [["i"]]
    assert 0.4 < applied_at[0] < 2.0
