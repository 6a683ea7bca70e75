"""Adjudication exactly once (invariant 4) on both backends, with the real adjudicator.

Kafka: two adjudicator instances in one consumer group; the second joins in the middle of
a load and the first leaves later, so partitions move twice while transactions are in
flight. Embedded: the adjudicator is killed in the middle of the load and restarted.
Either way every registration must get exactly one initial decision, and the decisions
must equal what a fresh, pure replay of the intake log decides.

State snapshots are taken every few dozen events (into the backend's real store: the
compacted state topic on Kafka, files on the embedded log), so the members that take over
recover from a snapshot plus the tail, and the test checks they did.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.adjudication.domain import AdjudicationState, DecisionContext, decide
from services.adjudication.domain.state import AdjudicationState as State
from services.adjudication.snapshots import SnapshotStore, store_for
from services.adjudication.worker import run_adjudicator
from shared.eventlog import EventLog, OutgoingRecord, Record, TopicPartition
from shared.eventlog.topics import Topics
from shared.events import (
    Account,
    Opportunity,
    PartnerSnapshot,
    RegistrationDecided,
    RegistrationSubmitted,
    encode,
    new_envelope,
)
from shared.events.codec import decode
from shared.policy import Policy
from tests.conftest import make_eventlog

REGISTRATIONS = 1500
ACCOUNTS = 250
START = datetime(2026, 11, 1, tzinfo=UTC)


def _workload(topics: Topics) -> list[OutgoingRecord]:
    records = []
    for i in range(REGISTRATIONS):
        key = f"dom:acct{i % ACCOUNTS}.com"
        at = START + timedelta(seconds=i)
        event = RegistrationSubmitted(
            registration_id=f"reg_{i:05d}", partner_id=f"p-{i % 7}",
            partner=PartnerSnapshot(partner_id=f"p-{i % 7}"), account_key=key,
            account=Account(name=f"Account {i % ACCOUNTS}", domain=key[4:]),
            opportunity=Opportunity(title="deal", products=("analytics",)),
            motion="resell", submitted_at=at, policy_version=1,
        )
        envelope = new_envelope(event, id=f"evt_{i:05d}", source="urn:test", subject=key,
                                time=at)
        records.append(OutgoingRecord(topics.intake, key, encode(envelope)))
    return records


async def _read_all(log: EventLog, topic: str) -> list[Record]:
    out: list[Record] = []
    ends = await log.end_positions(topic)
    for tp, end in ends.items():
        async for batch in log.read(tp, 0, end):
            out.extend(batch)
    return out


async def _decided(log: EventLog, topics: Topics) -> int:
    """How many registrations have their initial decision written so far."""
    ids = {decode(r.value)[0].id.split(".d")[0] for r in await _read_all(log, topics.decisions)}
    return len({i for i in ids if i.startswith("evt_")})


async def _wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():  # type: ignore[misc]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _replay(intake: list[Record]) -> dict[str, dict[str, object]]:
    """What a fresh adjudicator decides: the pure core over each partition in order, as
    decision envelope id -> decision data (ids derive from the input event's id)."""
    by_partition: dict[TopicPartition, list[Record]] = defaultdict(list)
    for record in intake:
        by_partition[record.tp].append(record)
    expected = {}
    for records in by_partition.values():
        state = AdjudicationState()
        for record in sorted(records, key=lambda r: r.offset):
            envelope, event = decode(record.value)
            context = DecisionContext(envelope.id, envelope.time, Policy.default(1))
            _, decisions = decide(state, event, context)
            for i, d in enumerate(decisions):
                expected[f"{envelope.id}.d{i}"] = d.to_data()
    return expected


SNAPSHOT_EVERY = 60


class Recovered:
    """The backend's own snapshot store, noting which snapshots recoveries started from."""

    def __init__(self, store: SnapshotStore) -> None:
        self.store = store
        self.loaded: list[tuple[TopicPartition, int, int]] = []  # (tp, position, covers)

    def save(self, tp: TopicPartition, covers: int, blob: bytes) -> list[OutgoingRecord]:
        return self.store.save(tp, covers, blob)

    def busy(self, tp: TopicPartition) -> bool:
        return self.store.busy(tp)

    async def load(self, tp: TopicPartition, position: int) -> tuple[State, int] | None:
        found = await self.store.load(tp, position)
        if found is not None:
            self.loaded.append((tp, position, found[1]))
        return found

    async def close(self) -> None:
        await self.store.close()


def _start(log: EventLog, topics: Topics, group: str, stop: asyncio.Event,
           recovered: Recovered | None = None) -> asyncio.Task[None]:
    return asyncio.create_task(run_adjudicator(
        log, topics, group_id=group, source="urn:test/adjudication",
        stopping=stop.is_set, max_records=100,
        snapshots=recovered or Recovered(store_for(log, topics)),
        snapshot_every_events=SNAPSHOT_EVERY,
    ))


async def test_every_registration_is_decided_exactly_once_through_rebalances_and_crashes(
    request: pytest.FixtureRequest, eventlog: EventLog, unique: str, tmp_path: Path
) -> None:
    kafka = type(eventlog).__name__.startswith("Kafka")
    topics = Topics.named(f"eo-{unique}")
    await eventlog.create_topics(topics.specs(4))
    workload = _workload(topics)
    group = f"adj-{unique}"

    appended = 0

    async def feed() -> None:
        # A load arriving over a few seconds, so members come and go while it flows.
        nonlocal appended
        for start in range(0, len(workload), 50):
            await eventlog.append(workload[start:start + 50])
            appended = start + 50
            await asyncio.sleep(0.1)

    async def fed(fraction: float) -> bool:
        return appended >= len(workload) * fraction

    first_stop = asyncio.Event()
    first = _start(eventlog, topics, group, first_stop)
    feeder = asyncio.create_task(feed())

    if kafka:
        # A second member joins mid-load, then the first leaves mid-load: partitions move
        # twice while batches and transactions are in flight.
        second_log = make_eventlog("kafka", request, tmp_path)
        await second_log.start()
        second_stop = asyncio.Event()
        await _wait_for(lambda: fed(0.25), 60, "a quarter of the load")
        recovered = Recovered(store_for(second_log, topics))
        second = _start(second_log, topics, group, second_stop, recovered)
        await _wait_for(lambda: fed(0.6), 60, "most of the load")
        decided_before_leave = await _decided(eventlog, topics)
        first_stop.set()
        await asyncio.wait_for(first, 60)
        await feeder
        await _wait_for(lambda: _count_at_least(eventlog, topics, REGISTRATIONS),
                        120, "all decisions")
        second_stop.set()
        await asyncio.wait_for(second, 60)
        await second_log.close()
        assert 0 < decided_before_leave < REGISTRATIONS, "the rebalance did not hit the load"
    else:
        # Killed mid-load (no graceful stop), then restarted from the committed position.
        await _wait_for(lambda: fed(0.4), 60, "part of the load")
        decided_before_kill = await _decided(eventlog, topics)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        restart_stop = asyncio.Event()
        recovered = Recovered(store_for(eventlog, topics))
        restarted = _start(eventlog, topics, group, restart_stop, recovered)
        await feeder
        await _wait_for(lambda: _count_at_least(eventlog, topics, REGISTRATIONS),
                        60, "all decisions")
        restart_stop.set()
        await asyncio.wait_for(restarted, 30)
        assert 0 < decided_before_kill < REGISTRATIONS, "the kill did not hit the load"

    # The member that took over recovered partitions from snapshots plus their tail.
    assert recovered.loaded, "no recovery started from a snapshot"
    assert all(0 < covers <= position for _, position, covers in recovered.loaded)
    written = [decode(r.value) for r in await _read_all(eventlog, topics.decisions)]
    # Exactly once: no decision was written twice, none is missing, none is invented.
    duplicates = Counter(envelope.id for envelope, _ in written)
    assert {i: n for i, n in duplicates.items() if n != 1} == {}, "a decision written twice"
    actual = {envelope.id: event.to_data() for envelope, event in written}
    assert actual == _replay(await _read_all(eventlog, topics.intake))
    # Every registration got exactly one initial decision: the one its own event produced.
    initial = Counter(
        event.registration_id for envelope, event in written
        if isinstance(event, RegistrationDecided)
        and envelope.id.startswith(f"evt_{event.registration_id[4:]}.")
    )
    assert len(initial) == REGISTRATIONS and set(initial.values()) == {1}


async def _count_at_least(log: EventLog, topics: Topics, n: int) -> bool:
    return await _decided(log, topics) >= n
