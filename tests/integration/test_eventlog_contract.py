"""The event-log contract, written once and run against the embedded log and real Kafka."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from shared.eventlog import EventLog, OutgoingRecord, Record, TopicPartition, TopicSpec
from shared.eventlog.partitioner import partition_for
from tests.conftest import make_eventlog

PARTITIONS = 3


async def _topic(log: EventLog, name: str, partitions: int = PARTITIONS) -> str:
    await log.create_topics([TopicSpec(name, partitions)])
    return name


async def _drain(log: EventLog, group: str, topics: list[str], expected: int,
                 timeout: float = 20.0) -> list[Record]:
    sub = await log.subscribe(group, topics)
    records: list[Record] = []
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            records.extend(await sub.poll(1000, timeout=0.5))
    finally:
        await sub.close()
    return records


async def test_records_of_one_key_land_in_one_partition_in_order(
    eventlog: EventLog, unique: str
) -> None:
    topic = await _topic(eventlog, f"t-{unique}")
    appended = await eventlog.append(
        [OutgoingRecord(topic, "dom:acme.com", f"v{i}".encode()) for i in range(5)]
    )
    assert {a.partition for a in appended} == {partition_for("dom:acme.com", PARTITIONS)}
    offsets = [a.offset for a in appended]
    assert offsets == sorted(offsets) and len(set(offsets)) == 5

    records = await _drain(eventlog, f"g-{unique}", [topic], 5)
    assert [r.value for r in records] == [f"v{i}".encode() for i in range(5)]
    assert all(r.key == "dom:acme.com" for r in records)


async def test_every_record_appended_is_read_exactly_once_by_a_group(
    eventlog: EventLog, unique: str
) -> None:
    topic = await _topic(eventlog, f"t-{unique}")
    keys = [f"dom:acct{i}.com" for i in range(300)]
    await asyncio.gather(*(
        eventlog.append([OutgoingRecord(topic, k, k.encode())]) for k in keys
    ))
    records = await _drain(eventlog, f"g-{unique}", [topic], len(keys))
    assert Counter(r.key for r in records) == Counter(keys)
    for record in records:
        assert record.partition == partition_for(record.key, PARTITIONS)


async def test_a_group_resumes_from_its_committed_positions(
    eventlog: EventLog, unique: str
) -> None:
    topic = await _topic(eventlog, f"t-{unique}")
    await eventlog.append([OutgoingRecord(topic, f"k{i}", b"first") for i in range(10)])
    group = f"g-{unique}"
    sub = await eventlog.subscribe(group, [topic])
    seen: list[Record] = []
    while len(seen) < 10:
        seen.extend(await sub.poll(100, timeout=1.0))
    positions = {r.tp: r.offset + 1 for r in seen}
    await sub.commit(positions)
    await sub.close()

    assert await eventlog.committed(group, topic) == {
        TopicPartition(topic, p): positions.get(TopicPartition(topic, p), 0)
        for p in range(PARTITIONS)
    }
    await eventlog.append([OutgoingRecord(topic, f"k{i}", b"second") for i in range(4)])
    later = await _drain(eventlog, group, [topic], 4)
    assert [r.value for r in later] == [b"second"] * 4


async def test_start_positions_callback_decides_where_a_member_starts(
    eventlog: EventLog, unique: str
) -> None:
    topic = await _topic(eventlog, f"t-{unique}", partitions=1)
    await eventlog.append([OutgoingRecord(topic, "k", str(i).encode()) for i in range(6)])

    async def start_at(tps: Sequence[TopicPartition]) -> Mapping[TopicPartition, int]:
        return dict.fromkeys(tps, 4)

    sub = await eventlog.subscribe(f"g-{unique}", [topic], start_positions=start_at)
    got: list[Record] = []
    for _ in range(20):
        got.extend(await sub.poll(100, timeout=0.5))
        if len(got) >= 2:
            break
    await sub.close()
    assert [r.value for r in got] == [b"4", b"5"]


async def test_read_returns_a_range_of_one_partition(eventlog: EventLog, unique: str) -> None:
    topic = await _topic(eventlog, f"t-{unique}", partitions=1)
    await eventlog.append([OutgoingRecord(topic, "k", str(i).encode()) for i in range(10)])
    ends = await eventlog.end_positions(topic)
    tp = TopicPartition(topic, 0)
    assert ends[tp] >= 10
    values = [r.value async for batch in eventlog.read(tp, 3, 7, batch=2) for r in batch]
    assert values == [b"3", b"4", b"5", b"6"]


async def test_a_record_appended_since_a_moment_is_found_and_an_older_one_is_not(
    eventlog: EventLog, unique: str
) -> None:
    """`offsets_for_time` and `find`: what a retry of a stranded command uses to look for
    its event (records appended from a moment on, up to the end read now)."""
    topic = await _topic(eventlog, f"t-{unique}")
    await eventlog.append([OutgoingRecord(topic, f"k{i}", b'{"id":"old"}') for i in range(6)])
    await asyncio.sleep(0.05)
    since = int(time.time() * 1000)
    await asyncio.sleep(0.05)
    landed = await eventlog.append([OutgoingRecord(topic, "k1", b'{"id":"new-1"}'),
                                    OutgoingRecord(topic, "k4", b'{"id":"new-2"}')])
    starts = await eventlog.offsets_for_time(topic, since)
    ends = await eventlog.end_positions(topic)
    for a in landed:
        assert starts[TopicPartition(topic, a.partition)] <= a.offset
    assert all(starts[tp] <= ends[tp] for tp in ends)
    assert await eventlog.offsets_for_time(topic, since + 3_600_000) == ends
    found = await eventlog.find(topic, since, b'"new-2"', lambda r: True)
    assert found is not None and (found.partition, found.offset) == (
        landed[1].partition, landed[1].offset)
    assert await eventlog.find(topic, since, b'"old"', lambda r: True) is None
    assert await eventlog.find(topic, since - 60_000, b'"old"', lambda r: True) is not None
    assert await eventlog.find(topic, since, b'"new-1"', lambda r: False) is None


async def test_create_topics_keeps_an_existing_topic(eventlog: EventLog, unique: str) -> None:
    topic = await _topic(eventlog, f"t-{unique}", partitions=2)
    await eventlog.create_topics([TopicSpec(topic, 5)])
    assert await eventlog.partitions(topic) == 2


class Doubler:
    """A processor that writes every input twice to an output topic; can be told to fail."""

    def __init__(self, out: str, fail_after: int | None = None) -> None:
        self.out = out
        self.fail_after = fail_after
        self.processed = 0
        self.assigned_positions: dict[TopicPartition, int] = {}

    async def assigned(self, positions: Mapping[TopicPartition, int]) -> None:
        self.assigned_positions.update(positions)

    async def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self.assigned_positions.pop(tp, None)

    async def prepare(self, tp: TopicPartition, records: Sequence[Record]) -> None:
        return None

    def tick(self, tp: TopicPartition) -> list[OutgoingRecord]:
        return []

    def process(self, tp: TopicPartition, records: Sequence[Record]) -> list[OutgoingRecord]:
        self.processed += len(records)
        if self.fail_after is not None and self.processed > self.fail_after:
            raise RuntimeError("processor crashed mid-batch")
        return [OutgoingRecord(self.out, r.key, r.value + suffix)
                for r in records for suffix in (b"/1", b"/2")]


async def _run_until(log: EventLog, group: str, topic: str, processor: Doubler,
                     done: asyncio.Event) -> None:
    await log.run_transactional(group, [topic], processor, max_records=50,
                                stopping=done.is_set)


async def test_transactional_outputs_and_positions_commit_together(
    eventlog: EventLog, unique: str
) -> None:
    src = await _topic(eventlog, f"in-{unique}")
    out = await _topic(eventlog, f"out-{unique}")
    keys = [f"k{i}" for i in range(200)]
    await eventlog.append([OutgoingRecord(src, k, k.encode()) for k in keys])
    group = f"g-{unique}"

    # A processor that crashes part-way: whatever it did not commit must not be visible.
    crashing = Doubler(out, fail_after=60)
    with pytest.raises(RuntimeError, match="crashed"):
        await asyncio.wait_for(_run_until(eventlog, group, src, crashing, asyncio.Event()), 60)

    done = asyncio.Event()
    healthy = Doubler(out)
    runner = asyncio.create_task(_run_until(eventlog, group, src, healthy, done))
    try:
        outputs = await _drain(eventlog, f"reader-{unique}", [out], 2 * len(keys), timeout=60)
    finally:
        done.set()
        await asyncio.wait_for(runner, 30)

    # Exactly once: every input produced exactly its two outputs, none twice.
    assert Counter(r.value for r in outputs) == Counter(
        k.encode() + s for k in keys for s in (b"/1", b"/2")
    )
    committed = await eventlog.committed(group, src)
    ends = await eventlog.end_positions(src)
    assert committed == ends


async def test_appended_records_survive_a_restart(
    request: pytest.FixtureRequest, eventlog: EventLog, unique: str, tmp_path: Path
) -> None:
    topic = await _topic(eventlog, f"t-{unique}", partitions=1)
    await eventlog.append([OutgoingRecord(topic, "k", b"durable")])
    await eventlog.close()
    backend = "kafka" if type(eventlog).__name__.startswith("Kafka") else "embedded"
    reopened = make_eventlog(backend, request, tmp_path)
    await reopened.start()
    try:
        tp = TopicPartition(topic, 0)
        values = [r.value async for batch in reopened.read(tp, 0, 1) for r in batch]
        assert values == [b"durable"]
        [again] = await reopened.append([OutgoingRecord(topic, "k", b"next")])
        assert again.offset > 0
    finally:
        await reopened.close()
    await eventlog.start()  # the fixture closes it again
