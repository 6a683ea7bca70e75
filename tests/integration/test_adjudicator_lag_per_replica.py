"""Each adjudicator replica reports the lag of the intake partitions assigned to it, not
the group's (`dealreg.runtime.adjudicator_lag` over the set the real adjudicator keeps).
Kafka: two members of one group split the partitions, and the one that stays takes them
all when the other leaves. Embedded: the one member holds every partition, none after it
stops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from dealreg.runtime import adjudicator_lag
from services.adjudication.worker import run_adjudicator
from shared.eventlog import EventLog, TopicPartition
from shared.eventlog.topics import Topics
from tests.conftest import make_eventlog
from tests.integration.test_adjudicator_exactly_once import _workload

PARTITIONS = 4


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _member(log: EventLog, topics: Topics, group: str, held: set[TopicPartition],
            stop: asyncio.Event) -> asyncio.Task[None]:
    return asyncio.create_task(run_adjudicator(
        log, topics, group_id=group, source="urn:test/adjudication", stopping=stop.is_set,
        max_records=100, snapshot_every_events=0, assignment=held))


async def test_each_replica_reports_the_lag_of_its_own_partitions(
    request: pytest.FixtureRequest, eventlog: EventLog, unique: str, tmp_path: Path
) -> None:
    kafka = type(eventlog).__name__.startswith("Kafka")
    topics = Topics.named(f"lag-{unique}")
    await eventlog.create_topics(topics.specs(PARTITIONS))
    group = f"adj-{unique}"
    every = {TopicPartition(topics.intake, p) for p in range(PARTITIONS)}
    await eventlog.append(_workload(topics)[:200])  # some lag on every partition
    # Nothing decided yet: a replica holding one partition reports that one, all of it.
    ends = await eventlog.end_positions(topics.intake)
    one = TopicPartition(topics.intake, 1)
    assert await adjudicator_lag(eventlog, topics.intake, group, {one}) == {1: ends[one]}
    pending = await adjudicator_lag(eventlog, topics.intake, group, every)
    assert sum(pending.values()) == 200 and all(v > 0 for v in pending.values())

    first_held: set[TopicPartition] = set()
    first_stop = asyncio.Event()
    first = _member(eventlog, topics, group, first_held, first_stop)
    await _until(lambda: first_held == every, 60, "the first member to hold everything")
    if kafka:
        second_log = make_eventlog("kafka", request, tmp_path)
        await second_log.start()
        second_held: set[TopicPartition] = set()
        second_stop = asyncio.Event()
        second = _member(second_log, topics, group, second_held, second_stop)
        await _until(lambda: bool(first_held) and bool(second_held)
                     and first_held | second_held == every, 90, "the two members to split")
        assert first_held & second_held == set()
        first_lag = await adjudicator_lag(eventlog, topics.intake, group, first_held)
        second_lag = await adjudicator_lag(second_log, topics.intake, group, second_held)
        assert set(first_lag) == {tp.partition for tp in first_held}
        assert set(second_lag) == {tp.partition for tp in second_held}
        assert set(first_lag) | set(second_lag) == set(range(PARTITIONS))
        # The one that stays takes every partition over, and reports them all.
        second_stop.set()
        await asyncio.wait_for(second, 60)
        await second_log.close()
        assert second_held == set()
        await _until(lambda: first_held == every, 90, "the first member to take over")
    lag = await adjudicator_lag(eventlog, topics.intake, group, first_held)
    assert set(lag) == set(range(PARTITIONS))
    # Decided everything: no lag left on any partition it holds.
    async def drained() -> bool:
        return sum((await adjudicator_lag(eventlog, topics.intake, group,
                                          first_held)).values()) == 0
    deadline = asyncio.get_running_loop().time() + 60
    while not await drained():
        assert asyncio.get_running_loop().time() < deadline, "lag never reached zero"
        await asyncio.sleep(0.2)
    first_stop.set()
    await asyncio.wait_for(first, 60)
    assert first_held == set()
    assert await adjudicator_lag(eventlog, topics.intake, group, first_held) == {}
