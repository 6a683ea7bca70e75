"""A rebalance requested while a member decides a long batch (real Kafka).

`prepare` decides a batch and yields to the event loop as it goes (worker.py,
`YIELD_EVERY_SECONDS`), so the group protocol runs mid-batch: a second member joins and the
first is asked to give partitions up while its state is half way through the batch. The
revocation must wait for the batch's transaction (the loop's lock): the batch commits whole
under the old owner, the new owner recovers from that committed offset, and every input has
exactly its replayed decisions, each written once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

from services.adjudication.worker import Adjudicator
from shared.eventlog import Record, TopicPartition
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


async def test_a_member_joining_mid_batch_leaves_every_input_decided_exactly_once(
    kafka_server: Any, unique: str
) -> None:
    log = KafkaEventLog(kafka_server.url, session_timeout_ms=6_000)
    await log.start()
    try:
        topics = Topics.named(f"rmb-{unique}")
        await log.create_topics(topics.specs(2))
        await log.append(_workload(topics))
        group = f"adj-{unique}"
        first = Adjudicator(log, topics, "urn:test/adjudication", group_id=group,
                            yield_every_seconds=0.0)  # yields every few events
        second = Adjudicator(log, topics, "urn:test/adjudication", group_id=group,
                             yield_every_seconds=0.0)
        a = _TransactionalLoop(log, group, first, max_records=REGISTRATIONS,
                               tick_interval=0.25)
        b = _TransactionalLoop(log, group, second, max_records=REGISTRATIONS,
                               tick_interval=0.25)
        mid_batch = asyncio.Event()
        revoked_mid_batch: list[bool] = []
        prepare, revoked = first.prepare, first.revoked
        deciding = False
        held: list[TopicPartition] = []

        async def slow_prepare(tp: TopicPartition, records: Sequence[Record]) -> None:
            nonlocal deciding
            deciding = True
            mid_batch.set()
            try:
                await prepare(tp, records)
                if not held:
                    # Keep the first batch open (yielding) while the second member joins
                    # and the group rebalances: the revocation must wait for this batch.
                    held.append(tp)
                    for _ in range(80):
                        if revoked_mid_batch:
                            break
                        await asyncio.sleep(0.05)
            finally:
                deciding = False

        async def watch_revoked(partitions: Sequence[TopicPartition]) -> None:
            revoked_mid_batch.append(deciding)
            await revoked(partitions)

        first.prepare = slow_prepare  # type: ignore[method-assign]
        first.revoked = watch_revoked  # type: ignore[method-assign]
        stop = asyncio.Event()
        running_a = asyncio.create_task(a.run([topics.intake], stop.is_set))
        await asyncio.wait_for(mid_batch.wait(), 60)
        running_b = asyncio.create_task(b.run([topics.intake], stop.is_set))
        deadline = asyncio.get_running_loop().time() + 90
        while not (await _count_at_least(log, topics, REGISTRATIONS) and b.consumer.assignment()):
            assert asyncio.get_running_loop().time() < deadline, (
                f"only {await _decided(log, topics)} of {REGISTRATIONS} registrations decided")
            assert not running_a.done() and not running_b.done(), (running_a, running_b)
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(asyncio.gather(running_a, running_b), 60)
        assert held and revoked_mid_batch and not any(revoked_mid_batch), revoked_mid_batch

        committed = await log.committed(group, topics.intake)
        intake = [r for r in await _read_all(log, topics.intake) if r.offset < committed[r.tp]]
        assert len(intake) >= REGISTRATIONS  # and the timer firings appended since
        decisions = [decode(r.value) for r in await _read_all(log, topics.decisions)]
        twice = [i for i, n in Counter(e.id for e, _ in decisions).items() if n > 1]
        assert twice == [], f"{len(twice)} decisions written twice, e.g. {twice[:3]}"
        assert {e.id: ev.to_data() for e, ev in decisions} == _replay(intake)
    finally:
        await log.close()
