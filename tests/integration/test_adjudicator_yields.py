"""A member busy deciding a long batch (or recovering a long history) keeps handing the
event loop back, so its consumer's heartbeats and the group protocol keep running (a
member that starved them was dropped from the group and fenced: bench_scaleout.py), and
what it decides does not depend on how often it yielded (invariant 3).

Real embedded log (SQLite); the yielding is the worker's, the same on both backends.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.adjudication.worker import Adjudicator
from shared.eventlog import EventLog, OutgoingRecord, Record, TopicPartition
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.topics import Topics
from tests.integration.test_adjudicator_exactly_once import _workload


async def _records(log: EventLog, tp: TopicPartition) -> list[Record]:
    end = (await log.end_positions(tp.topic))[tp]
    out: list[Record] = []
    async for batch in log.read(tp, 0, end):
        out.extend(batch)
    return out


async def _decide_counting_turns(
    log: EventLog, topics: Topics, tp: TopicPartition, records: list[Record],
    yield_every: float,
) -> tuple[list[OutgoingRecord], int, int]:
    """Decide `records` in one batch while another task counts its turns on the loop:
    (outputs, turns while recovering, turns while deciding)."""
    turns = 0
    running = True

    async def other_task() -> None:
        nonlocal turns
        while running:
            turns += 1
            await asyncio.sleep(0)

    adjudicator = Adjudicator(log, topics, "urn:test/adjudication",
                              yield_every_seconds=yield_every)
    ticker = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    try:
        start = turns
        await adjudicator.assigned({tp: len(records) // 2})  # replays the first half
        recovering = turns - start
        start = turns
        rest = records[len(records) // 2:]
        await adjudicator.prepare(tp, rest)
        deciding = turns - start
        outputs = adjudicator.process(tp, rest)
    finally:
        running = False
        await ticker
    return outputs, recovering, deciding


async def test_a_long_batch_and_a_long_recovery_hand_the_event_loop_back(
    tmp_path: Path,
) -> None:
    log = EmbeddedEventLog(tmp_path / "log.sqlite3")
    await log.start()
    try:
        topics = Topics.named("yields")
        await log.create_topics(topics.specs(1))
        await log.append(_workload(topics))
        tp = TopicPartition(topics.intake, 0)
        records = await _records(log, tp)
        assert len(records) >= 400

        eager, recovering, deciding = await _decide_counting_turns(
            log, topics, tp, records, yield_every=0.0)
        assert recovering >= 5, "recovery never let another task run"
        assert deciding >= 5, "deciding a batch never let another task run"

        # Never yielding (a slice longer than the batch) decides the same, byte for byte.
        hogging, _, deciding_without = await _decide_counting_turns(
            log, topics, tp, records, yield_every=3600.0)
        assert deciding_without <= 1
        # (Timer firings due by the wall clock get fresh ids: compared are the decisions.)
        decided = [(o.key, o.value) for o in eager if o.topic == topics.decisions]
        assert len(decided) >= len(records) // 2
        assert decided == [(o.key, o.value) for o in hogging if o.topic == topics.decisions]
    finally:
        await log.close()
