"""A rebalance that completes while the transactional loop waits in a fetch (real Kafka).

The loop throws away a batch fetched across a rebalance, but aiokafka has already moved its
position past the records it returned (which may come from the new assignment). Unless the
loop puts the partition back where its state is, those records are never decided and the
next batch commits an offset past them: inputs committed without decisions, and every later
decision computed from a state that missed them (found by the fault suite).
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.adjudication.worker import Adjudicator
from shared.eventlog import TopicPartition
from shared.eventlog.kafka import KafkaEventLog, _TransactionalLoop
from shared.eventlog.topics import Topics
from shared.events.codec import decode
from tests.integration.test_adjudicator_exactly_once import (
    REGISTRATIONS,
    _count_at_least,
    _decided,
    _read_all,
    _replay,
    _workload,
)


async def test_records_fetched_across_a_rebalance_are_still_decided_before_their_offset_commits(
    kafka_server: Any, unique: str
) -> None:
    log = KafkaEventLog(kafka_server.url)
    await log.start()
    try:
        topics = Topics.named(f"rbf-{unique}")
        await log.create_topics(topics.specs(2))
        await log.append(_workload(topics))
        group = f"adj-{unique}"
        adjudicator = Adjudicator(log, topics, "urn:test/adjudication", group_id=group)
        loop = _TransactionalLoop(log, group, adjudicator, max_records=100, tick_interval=0.25)
        fetch = loop.consumer.getmany
        rebalanced = 0

        async def getmany(*args: Any, **kwargs: Any) -> Any:
            # The first fetches that return records: the group rebalances (same
            # assignment, as when a paused member rejoins) before they are returned.
            nonlocal rebalanced
            batches = await fetch(*args, **kwargs)
            if batches and rebalanced < 1:
                rebalanced += 1
                assignment = list(loop.consumer.assignment())
                await loop.on_partitions_revoked(assignment)
                await loop.on_partitions_assigned(assignment)
            return batches

        loop.consumer.getmany = getmany  # type: ignore[method-assign]
        stop = asyncio.Event()
        running = asyncio.create_task(loop.run([topics.intake], stop.is_set))
        deadline = asyncio.get_running_loop().time() + 60
        while not await _count_at_least(log, topics, REGISTRATIONS):
            assert asyncio.get_running_loop().time() < deadline, (
                f"only {await _decided(log, topics)} of {REGISTRATIONS} registrations decided")
            assert not running.done(), running
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(running, 60)
        assert rebalanced == 1

        # Every input below the committed offsets has exactly its replayed decisions.
        committed = await log.committed(group, topics.intake)
        assert set(committed) == {TopicPartition(topics.intake, p) for p in range(2)}
        intake = [r for r in await _read_all(log, topics.intake) if r.offset < committed[r.tp]]
        written = {envelope.id: event.to_data() for envelope, event in
                   (decode(r.value) for r in await _read_all(log, topics.decisions))}
        expected = _replay(intake)
        missing = sorted(set(expected) - set(written))
        assert missing == [], f"{len(missing)} committed inputs have no decision"
        assert written == expected
    finally:
        await log.close()
