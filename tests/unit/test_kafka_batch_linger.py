"""The adjudicator's loop gathers records for `batch_linger_ms` after a batch that was not
full but held at least `batch_linger_from_records` records, so each partition's
transaction carries more decisions.

Each input partition of a batch is one Kafka transaction (its own producer), and a
transaction costs the broker about as much CPU as the decisions in it: fetched right after
the last commit, a batch at 100-200 registrations/s held one or two records per partition
(0.7 transactions per decided registration, measured with tests/bench/profile_distributed.py).
A full batch (a backlog) and an empty fetch go on at once: the drain is not slowed, and
an idle loop's fetch itself waits for the next record. A small batch (a loop keeping up with
its input: at 50 registrations/s one or two records, each in a transaction of its own
anyway) goes on at once too, so a decision at a low rate does not wait for the linger
(session 27: append -> decide p50 50-55 ms with the linger after every batch, 1-2 ms
without)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition as KafkaTP

from dealreg.runtime import build_eventlog
from shared.eventlog.base import OutgoingRecord, Record, TopicPartition
from shared.eventlog.kafka import KafkaEventLog, _TransactionalLoop
from shared.settings import Settings

TP = KafkaTP("dealreg.intake", 0)


def _records(n: int, start: int = 0) -> list[Any]:
    return [SimpleNamespace(topic=TP.topic, partition=TP.partition, offset=start + i,
                            key=b"k", value=b"v", timestamp=0) for i in range(n)]


class _Consumer:
    def __init__(self, batches: list[dict[KafkaTP, list[Any]]]) -> None:
        self.batches = batches
        self.fetched_at: list[float] = []

    def subscribe(self, topics: Sequence[str], listener: Any) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[KafkaTP, list[Any]]:
        self.fetched_at.append(asyncio.get_running_loop().time())
        return self.batches.pop(0) if self.batches else {}


class _Processor:
    async def prepare(self, tp: TopicPartition, records: Sequence[Record]) -> None: ...

    def process(self, tp: TopicPartition, records: Sequence[Record]) -> list[OutgoingRecord]:
        return []

    def tick(self, tp: TopicPartition) -> list[OutgoingRecord]:
        return []

    async def revoked(self, partitions: Sequence[TopicPartition]) -> None: ...


def _gaps(linger_ms: int, batches: list[dict[KafkaTP, list[Any]]],
          max_records: int = 10, linger_from: int = 1) -> list[float]:
    """Seconds between the loop's fetches over `batches` (then one more fetch)."""
    async def run() -> list[float]:
        log = build_eventlog(Settings(backend="distributed", kafka_batch_linger_ms=linger_ms,
                                      kafka_batch_linger_from_records=linger_from))
        assert isinstance(log, KafkaEventLog)
        loop = _TransactionalLoop(log, "adjudicator", _Processor(),  # type: ignore[arg-type]
                                  max_records=max_records, tick_interval=60)
        consumer = _Consumer(batches)
        loop.consumer = consumer  # type: ignore[assignment]
        loop.producers = {TopicPartition(TP.topic, TP.partition): None}  # type: ignore[dict-item]

        async def commit(*_: Any) -> None: ...

        loop._commit = commit  # type: ignore[method-assign]
        count = len(batches) + 1
        await loop.run([TP.topic], stopping=lambda: len(consumer.fetched_at) >= count)
        at = consumer.fetched_at
        return [b - a for a, b in itertools.pairwise(at)]
    return asyncio.run(run())


def test_a_batch_that_was_not_full_waits_the_linger_before_the_next_fetch() -> None:
    gaps = _gaps(50, [{TP: _records(3)}])
    assert gaps[0] >= 0.045, gaps


def test_a_full_batch_and_an_empty_fetch_fetch_again_at_once() -> None:
    gaps = _gaps(200, [{TP: _records(10)}, {}, {TP: _records(10, 10)}])
    assert all(g < 0.1 for g in gaps), gaps


def test_no_linger_fetches_again_at_once() -> None:
    gaps = _gaps(0, [{TP: _records(3)}, {TP: _records(3, 3)}])
    assert all(g < 0.1 for g in gaps), gaps


def test_a_batch_smaller_than_the_linger_threshold_fetches_again_at_once() -> None:
    gaps = _gaps(200, [{TP: _records(3)}, {TP: _records(3, 3)}], linger_from=4)
    assert all(g < 0.1 for g in gaps), gaps


def test_a_batch_as_big_as_the_linger_threshold_waits_the_linger() -> None:
    gaps = _gaps(50, [{TP: _records(4)}], linger_from=4)
    assert gaps[0] >= 0.045, gaps


def test_the_linger_is_the_setting() -> None:
    log = build_eventlog(Settings(backend="distributed", kafka_batch_linger_ms=7,
                                  kafka_batch_linger_from_records=5))
    assert isinstance(log, KafkaEventLog) and log.batch_linger_ms == 7
    assert log.batch_linger_from_records == 5


def test_by_default_a_lone_record_is_not_held_by_the_linger() -> None:
    """The deployed default threshold (with a linger long enough to see): a batch of one or
    two records (a low rate) is followed by a fetch at once."""
    settings = Settings(backend="distributed")
    gaps = _gaps(200, [{TP: _records(2)}, {TP: _records(1, 2)}], max_records=5000,
                 linger_from=settings.kafka_batch_linger_from_records)
    assert all(g < 0.1 for g in gaps), gaps
