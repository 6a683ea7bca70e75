"""Recovery from state snapshots on both backends (real Kafka, embedded log), no fakes.

- A batch that took a snapshot and then crashed before its transaction committed: the
  snapshot is never used past the committed position (Kafka: it was in the aborted
  transaction, invisible; embedded: the file is newer than the position and skipped), and
  redoing the batch loses nothing and duplicates nothing.
- A snapshot written by another build (an older state schema) is ignored and the partition
  rebuilt from the log, with the same decisions.
- A recovery checks its tail's re-decided decisions against the logged ones: a snapshot that
  decides otherwise is caught and the partition rebuilt from its history; a build that
  decides the log otherwise refuses to recover.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from services.adjudication import snapshots, worker
from services.adjudication.domain import AdjudicationState
from services.adjudication.snapshots import store_for
from services.adjudication.worker import Adjudicator, RecoveryMismatch, run_adjudicator
from shared.eventlog import EventLog, Record, TopicPartition
from shared.eventlog.kafka import KafkaEventLog
from shared.eventlog.topics import Topics
from shared.events.codec import decode
from tests.integration.test_adjudicator_exactly_once import _read_all, _replay, _workload

PARTITIONS = 2


async def _drain(log: EventLog, topics: Topics, group: str, every: int = 50) -> None:
    """Run the real adjudicator until it has committed every intake record (its own timer
    firings included: the workload's deadlines are long past)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_adjudicator(
        log, topics, group_id=group, source="urn:test/adjudication", stopping=stop.is_set,
        max_records=100, snapshot_every_events=every))
    deadline = asyncio.get_running_loop().time() + 90
    try:
        while left := await _undecided(log, topics, group):
            assert asyncio.get_running_loop().time() < deadline, (
                f"the adjudicator did not drain: {left} records left")
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def _undecided(log: EventLog, topics: Topics, group: str) -> int:
    """Intake records past the group's committed positions (Kafka's end offsets count
    transaction markers too, so records are counted, not offsets compared)."""
    committed = await log.committed(group, topics.intake)
    left = 0
    for tp, end in (await log.end_positions(topics.intake)).items():
        async for batch in log.read(tp, committed[tp], end):
            left += len(batch)
    return left


async def _decisions_are_exactly_the_replay(log: EventLog, topics: Topics, group: str) -> None:
    # Up to the committed positions: a timer may have fired just before the member stopped.
    committed = await log.committed(group, topics.intake)
    intake = [r for r in await _read_all(log, topics.intake) if r.offset < committed[r.tp]]
    written = [decode(r.value) for r in await _read_all(log, topics.decisions)]
    duplicates = Counter(envelope.id for envelope, _ in written)
    assert {i: n for i, n in duplicates.items() if n != 1} == {}, "a decision written twice"
    actual = {envelope.id: event.to_data() for envelope, event in written}
    assert actual == _replay(intake)


async def _count(log: EventLog, tp: TopicPartition, start: int, end: int) -> int:
    """Records in `[start, end)` (Kafka offsets skip transaction markers)."""
    return sum([len(batch) async for batch in log.read(tp, start, end)])


async def _batch(log: EventLog, tp: TopicPartition, start: int) -> list[Record]:
    end = (await log.end_positions(tp.topic))[tp]
    out: list[Record] = []
    async for batch in log.read(tp, start, end):
        out.extend(batch)
    return out


async def test_a_snapshot_taken_by_a_batch_that_never_committed_is_never_used(
    eventlog: EventLog, unique: str
) -> None:
    topics = Topics.named(f"snap-{unique}")
    await eventlog.create_topics(topics.specs(PARTITIONS))
    workload = _workload(topics)
    group = f"adj-{unique}"
    await eventlog.append(workload[:900])
    await _drain(eventlog, topics, group)
    committed = await eventlog.committed(group, topics.intake)

    # The rest arrives; a member decides it in one batch per partition with a snapshot due,
    # and dies before its transactions commit.
    await eventlog.append(workload[900:])
    store = store_for(eventlog, topics)
    doomed = Adjudicator(eventlog, topics, "urn:test/adjudication", snapshots=store,
                         snapshot_every_events=1)
    await doomed.assigned(committed)
    lost: list[tuple[TopicPartition, int]] = []
    for tp, position in committed.items():
        records = await _batch(eventlog, tp, position)
        await doomed.prepare(tp, records)
        outputs = doomed.process(tp, records)
        lost.append((tp, records[-1].offset + 1))
        if isinstance(eventlog, KafkaEventLog):
            assert any(o.topic == topics.state for o in outputs), "no snapshot in the batch"
            producer = AIOKafkaProducer(bootstrap_servers=eventlog.bootstrap_servers,
                                        transactional_id=f"doomed-{unique}-{tp.partition}",
                                        enable_idempotence=True, acks="all")
            await producer.start()
            try:
                await producer.begin_transaction()
                for future in await eventlog._send_all(producer, outputs):
                    await future
                await producer.abort_transaction()
            finally:
                await producer.stop()
    await store.close()  # the embedded store's files are written by now
    if not isinstance(eventlog, KafkaEventLog):
        assert all(any(covers == end for covers, _ in store._files(tp))  # type: ignore[attr-defined]
                   for tp, end in lost), "no snapshot file of the doomed batch"

    # A new member recovers from a snapshot at or before the committed position, never the
    # doomed one, and redoes the batch.
    recovering = Adjudicator(eventlog, topics, "urn:test/adjudication",
                             snapshots=store_for(eventlog, topics))
    await recovering.assigned(committed)
    for tp, position in committed.items():
        covers = recovering.recovered_from[tp]
        assert covers is not None and 0 < covers <= position, (tp, covers, position)
        assert recovering.replayed[tp] == await _count(eventlog, tp, covers, position)
    await _drain(eventlog, topics, group)
    await _decisions_are_exactly_the_replay(eventlog, topics, group)


async def test_a_snapshot_from_another_state_schema_is_ignored_and_the_state_rebuilt(
    eventlog: EventLog, unique: str
) -> None:
    topics = Topics.named(f"old-{unique}")
    await eventlog.create_topics(topics.specs(PARTITIONS))
    workload = _workload(topics)
    group = f"adj-{unique}"
    await eventlog.append(workload[:800])
    await _drain(eventlog, topics, group)
    committed = await eventlog.committed(group, topics.intake)

    # Each partition's newest snapshot is replaced by one an older build wrote: the same
    # bytes, under the previous state schema version.
    store = store_for(eventlog, topics)
    for tp, position in committed.items():
        found = await store.load(tp, position)
        assert found is not None, "the drain took no snapshot"
        state, covers = found
        blob = snapshots.encode(state, tp, position)
        header = snapshots.read_header(blob)
        body = blob[header.pop("_body"):]
        header["schema"] = snapshots.STATE_SCHEMA_VERSION - 1
        old = snapshots.MAGIC + orjson.dumps(header) + b"\n" + body
        outputs = store.save(tp, position, old)
        if outputs:
            await eventlog.append(outputs)
    await store.close()

    recovering = Adjudicator(eventlog, topics, "urn:test/adjudication",
                             snapshots=store_for(eventlog, topics))
    await recovering.assigned(committed)
    for tp, position in committed.items():
        # Not the old-schema snapshot at `position`: an older one of this build, or none.
        covers = recovering.recovered_from[tp]
        assert covers is None or covers < position
        assert recovering.replayed[tp] == await _count(eventlog, tp, covers or 0, position)

    await eventlog.append(workload[800:])
    await _drain(eventlog, topics, group)
    await _decisions_are_exactly_the_replay(eventlog, topics, group)


async def _snapshot_then_tail(eventlog: EventLog, topics: Topics, group: str
                              ) -> dict[TopicPartition, int]:
    """Decide 600 records with snapshots, 300 more without: each partition's newest
    snapshot is followed by a tail of decided records whose decisions are in the log."""
    await eventlog.create_topics(topics.specs(PARTITIONS))
    workload = _workload(topics)
    await eventlog.append(workload[:600])
    await _drain(eventlog, topics, group)
    await eventlog.append(workload[600:900])
    await _drain(eventlog, topics, group, every=0)
    return await eventlog.committed(group, topics.intake)


def _mismatches(partition: int, source: str) -> float:
    return REGISTRY.get_sample_value("dealreg_adjudicator_recovery_mismatches_total",
                                     {"partition": str(partition), "source": source}) or 0.0


async def test_a_snapshot_that_decides_otherwise_than_the_log_is_caught_and_rebuilt(
    eventlog: EventLog, unique: str
) -> None:
    """A recovery re-decides its tail from the snapshot and compared nothing with the log:
    a snapshot that passed every header and checksum test but held a wrong state (here
    re-encoded around an empty state: a bug that wrote it, a disk that lied, a hand that
    edited it) was recovered from in silence, and the partition went on deciding from a
    state the log's decisions do not describe. Now the tail's decisions are checked against
    the logged ones: a difference is logged at error level and counted, and the partition
    is rebuilt from its whole history, whose tail agrees with the log; it then decides as
    an uninterrupted adjudicator."""
    topics = Topics.named(f"lie-{unique}")
    group = f"adj-{unique}"
    committed = await _snapshot_then_tail(eventlog, topics, group)
    store = store_for(eventlog, topics)
    for tp, position in committed.items():
        found = await store.load(tp, position)
        assert found is not None, "the drain took no snapshot"
        _, covers = found
        assert covers < position, "no tail after the snapshot"
        outputs = store.save(tp, covers, snapshots.encode(AdjudicationState(), tp, covers))
        if outputs:
            await eventlog.append(outputs)
    await store.close()

    before = {tp: _mismatches(tp.partition, "snapshot") for tp in committed}
    recovering = Adjudicator(eventlog, topics, "urn:test/adjudication",
                             snapshots=store_for(eventlog, topics))
    with capture_logs() as logs:
        await recovering.assigned(committed)
    caught = [line for line in logs if line["event"] == "recovery_mismatch"]
    assert sorted((line["partition"], line["source"], line["log_level"]) for line in caught) \
        == [(tp.partition, "snapshot", "error") for tp in sorted(committed)]
    assert all(line["differences"] > 0 for line in caught)
    for tp, position in committed.items():
        assert _mismatches(tp.partition, "snapshot") == before[tp] + 1
        assert recovering.recovered_from[tp] is None  # rebuilt from the whole history
        assert recovering.replayed[tp] == await _count(eventlog, tp, 0, position)
        assert recovering.checked[tp] > 0
    await recovering.revoked(list(committed))

    await eventlog.append(_workload(topics)[900:])
    await _drain(eventlog, topics, group)
    await _decisions_are_exactly_the_replay(eventlog, topics, group)


async def test_a_recovery_that_agrees_with_the_log_checks_and_goes_on_from_its_snapshot(
    eventlog: EventLog, unique: str
) -> None:
    """The check costs no false alarm: an honest snapshot's tail equals the log."""
    topics = Topics.named(f"honest-{unique}")
    committed = await _snapshot_then_tail(eventlog, topics, f"adj-{unique}")
    recovering = Adjudicator(eventlog, topics, "urn:test/adjudication",
                             snapshots=store_for(eventlog, topics))
    with capture_logs() as logs:
        await recovering.assigned(committed)
    assert [line for line in logs if line["event"] == "recovery_mismatch"] == []
    for tp, position in committed.items():
        covers = recovering.recovered_from[tp]
        assert covers is not None and covers < position
        assert recovering.checked[tp] > 0


async def test_a_build_that_decides_the_log_otherwise_refuses_to_recover(
    eventlog: EventLog, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the whole history, re-decided by this build, still gives other decisions than
    the log holds, the snapshot was not the cause: this build decides the log otherwise.
    The recovery refuses to go on (the worker crashes and restarts, refusing again) rather
    than decide on a state the log's decisions do not describe."""
    topics = Topics.named(f"other-{unique}")
    committed = await _snapshot_then_tail(eventlog, topics, f"adj-{unique}")
    real = worker.decide_relaying

    def forgetful(state: Any, event: Any, context: Any) -> Any:
        decisions, relays = real(state, event, context)
        return decisions[:-1], relays  # a build that leaves a decision out

    monkeypatch.setattr(worker, "decide_relaying", forgetful)
    before = _mismatches(0, "history")
    recovering = Adjudicator(eventlog, topics, "urn:test/adjudication",
                             snapshots=store_for(eventlog, topics))
    with capture_logs() as logs, pytest.raises(RecoveryMismatch, match="refusing to go on"):
        await recovering.assigned(committed)
    sources = sorted((line["partition"], line["source"]) for line in logs
                     if line["event"] == "recovery_mismatch")
    assert sources == sorted((tp.partition, source) for tp in committed
                             for source in ("history", "snapshot"))
    assert _mismatches(0, "history") == before + 1
