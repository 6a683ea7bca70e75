"""Ceilings for the drain benchmark, measured in the same run on the same log and records.

- Kafka: the raw aiokafka transactional consume -> produce loop (read_committed consumer,
  one transactional producer per partition as the adjudicator keeps, `getmany` batches of the
  same size, each partition's batch copied to an output topic with its offsets sent to the
  transaction, partitions committed concurrently). No decoding, no state, no decide: what
  the broker, the client and exactly-once cost on this machine.
- Embedded: the embedded log's own transactional loop (`run_transactional`) with a processor
  that copies each record to the output topic: what the SQLite log costs without decide.

drain / ceiling is then the share of the machine's exactly-once throughput that
adjudication keeps; absolute events/s vary with the machine's load, the ratio much less.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

from shared.eventlog import EventLog, OutgoingRecord
from shared.eventlog.base import Record, TopicPartition


class _Copy:
    """A processor that copies every record to `out` (no decoding, no state)."""

    def __init__(self, out: str) -> None:
        self.out = out

    async def assigned(self, positions: Mapping[TopicPartition, int]) -> None:
        return None

    async def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        return None

    async def prepare(self, tp: TopicPartition, records: Sequence[Record]) -> None:
        return None

    def process(self, tp: TopicPartition, records: Sequence[Record]) -> list[OutgoingRecord]:
        return [OutgoingRecord(self.out, r.key, r.value) for r in records]

    def tick(self, tp: TopicPartition) -> list[OutgoingRecord]:
        return []


async def _until_committed(log: EventLog, group: str, topic: str, n: int,
                           timeout: float) -> float:
    started = time.perf_counter()
    while sum((await log.committed(group, topic)).values()) < n:
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"ceiling loop did not finish {n} records in {timeout} s")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def embedded_ceiling(log: EventLog, topic: str, out: str, n: int,
                           *, max_records: int = 5000, timeout: float = 300) -> float:
    """Events/s of the embedded log's transactional loop copying `n` records."""
    group = f"ceiling-{time.time_ns()}"
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(log.run_transactional(group, [topic], _Copy(out),
                                                     max_records=max_records,
                                                     stopping=stop.is_set))
    try:
        await _until_committed(log, group, topic, n, timeout)
    finally:
        stop.set()
        await task
    return n / (time.perf_counter() - started)


async def kafka_ceiling(bootstrap: str, topic: str, out: str, partitions: int, n: int,
                        *, max_records: int = 5000, timeout: float = 300) -> float:
    """Events/s of the raw aiokafka transactional consume -> produce loop over `n` records."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as KTP

    group = f"ceiling-{time.time_ns()}"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                isolation_level="read_committed", enable_auto_commit=False,
                                auto_offset_reset="earliest",
                                fetch_max_bytes=16 * 1024 * 1024,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    tps = [KTP(topic, p) for p in range(partitions)]
    producers = {tp: AIOKafkaProducer(bootstrap_servers=bootstrap,
                                      transactional_id=f"{group}.{tp.partition}",
                                      enable_idempotence=True, acks="all", linger_ms=5,
                                      max_batch_size=256 * 1024) for tp in tps}
    await consumer.start()
    await asyncio.gather(*(p.start() for p in producers.values()))
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, 0)

    async def commit(tp: KTP, records: list) -> None:  # type: ignore[type-arg]
        producer = producers[tp]
        async with producer.transaction():
            futures = [await producer.send(out, value=r.value, key=r.key) for r in records]
            await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, group)
        for future in futures:
            await future

    done = 0
    started = time.perf_counter()
    try:
        while done < n:
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"kafka ceiling did not finish {n} records in {timeout} s")
            batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
            await asyncio.gather(*(commit(tp, recs) for tp, recs in batches.items() if recs))
            done += sum(len(recs) for recs in batches.values())
        return n / (time.perf_counter() - started)
    finally:
        await asyncio.gather(*(p.stop() for p in producers.values()))
        await consumer.stop()
