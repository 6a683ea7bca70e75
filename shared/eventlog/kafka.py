"""The Kafka event log (aiokafka 0.14): the production backend.

- Appends go through one idempotent producer with `acks=all`; the record key is the account
  key and the partition is chosen explicitly with Kafka's murmur2 (`partitioner.py`).
- Consumers read `read_committed` and never auto-commit.
- `run_transactional` is the consume-process-produce loop of the adjudicator. aiokafka has
  no KIP-447 fencing by consumer generation (aio-libs/aiokafka#844), so a single producer per
  member could commit offsets for partitions a rebalance already gave away. Instead, as
  Faust does, every input partition has its own transactional producer whose
  `transactional_id` names the partition: whichever member owns the partition next calls
  `init_transactions` with the same id, which aborts the previous owner's open transaction
  and fences it for good. Each batch of a partition commits its outputs and its input
  offset in that partition's transaction. A batch fetched across a rebalance is discarded
  and its partitions are sought back to where their state is (aiokafka moved past it).
- Transactions stay short (`transaction_timeout_ms`, default 10 s) because a stuck open
  transaction blocks every `read_committed` reader of its partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka import TopicPartition as KafkaTP
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from prometheus_client import Counter

from shared.eventlog.base import (
    Appended,
    EventLog,
    OutgoingRecord,
    Processor,
    ReadIterator,
    Record,
    StartPositions,
    Subscription,
    TopicPartition,
    TopicSpec,
)
from shared.eventlog.partitioner import partition_for

_HEADERS: Final = [("content-type", b"application/cloudevents+json")]
"""Every record's headers (CloudEvents' Kafka binding, structured mode)."""


def _tp(tp: KafkaTP) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


def _ktp(tp: TopicPartition) -> KafkaTP:
    return KafkaTP(tp.topic, tp.partition)


def _record(r: Any) -> Record:
    # A foreign record may have no key, key bytes that are not UTF-8, or no value: it must
    # still reach the consumer, which dead-letters what it cannot decode.
    key = r.key.decode("utf-8", "replace") if r.key is not None else ""
    return Record(r.topic, r.partition, r.offset, key,
                  r.value if r.value is not None else b"", r.timestamp)


class KafkaEventLog(EventLog):
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "dealreg",
        replication_factor: int = 1,
        linger_ms: int = 2,
        transaction_timeout_ms: int = 10_000,
        session_timeout_ms: int = 30_000,
        retry_backoff_ms: int = 20,
        batch_linger_ms: int = 20,
        batch_linger_from_records: int = 1,
    ) -> None:
        """`session_timeout_ms`: a group member that sends no heartbeat for this long is
        dropped (its partitions move, its producers are fenced); heartbeats go every tenth
        of it. Longer than aiokafka's 10 s default so a member on a saturated machine is not
        dropped for being slow (its worker yields the loop to heartbeats meanwhile).

        `retry_backoff_ms`: every producer's pause before retrying a retriable error. A
        Kafka 4 broker verifies each transactional produce with the transaction coordinator
        (KIP-890) and answers NOT_ENOUGH_REPLICAS while the producer's previous transaction
        is still completing (its markers being written) -- routinely, since the adjudicator
        starts a partition's next transaction right after committing the last. With
        aiokafka's 100 ms default each such retry added 100 ms to the batch, and the loop
        waits for every partition's commit before it fetches again.

        `batch_linger_ms`: after committing a batch that was not full, the
        consume-process-produce loop waits this long before it fetches again, so the next
        batch gathers more records per partition. Each input partition of a batch is one
        transaction (its own producer), and a transaction costs the broker about as much
        CPU as the decisions in it: at 100-200 registrations/s over 12 partitions a batch
        fetched right after the last commit held one or two records per partition, so
        nearly every decision paid a transaction of its own. The pause also lets the last
        transaction's markers complete, which a produce started at once answers with
        NOT_ENOUGH_REPLICAS (KIP-890, above) and a `retry_backoff_ms` retry. A loop that
        found nothing fetches again at once (the fetch itself waits for records).

        `batch_linger_from_records`: the pause follows only a batch of at least this many
        records, i.e. a loop falling behind its input, where batches grow and the pause
        saves transactions; after a smaller batch it fetches at once. At 50
        registrations/s a batch held one or two records, each in a transaction of its own
        whether the loop paused or not, and the pause (with the commit before it) held the
        next decision for ~50 ms (append -> decide p50 50-55 ms against 1-2 ms, session
        27)."""
        self.bootstrap_servers = bootstrap_servers
        self.session_timeout_ms = session_timeout_ms
        self.client_id = client_id
        self.replication_factor = replication_factor
        self.linger_ms = linger_ms
        self.transaction_timeout_ms = transaction_timeout_ms
        self.retry_backoff_ms = retry_backoff_ms
        self.batch_linger_ms = batch_linger_ms
        self.batch_linger_from_records = max(1, batch_linger_from_records)
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._partitions: dict[str, int] = {}

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, client_id=f"{self.client_id}-admin"
        )
        await self._admin.start()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-append",
            enable_idempotence=True,
            acks="all",
            linger_ms=self.linger_ms,
            max_batch_size=256 * 1024,
            retry_backoff_ms=self.retry_backoff_ms,
        )
        await self._producer.start()

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    # topics ------------------------------------------------------------------------------

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        assert self._admin is not None, "start() first"
        existing = set(await self._admin.list_topics())
        new = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=self.replication_factor,
                topic_configs={
                    "retention.ms": str(s.retention_ms),
                    "cleanup.policy": "compact" if s.compacted else "delete",
                    **s.extra_config,
                },
            )
            for s in specs
            if s.name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await self._admin.create_topics(new)
        # Metadata propagates asynchronously; wait until every topic is visible.
        for spec in specs:
            await self._wait_for_topic(spec.name)

    async def _wait_for_topic(self, topic: str, timeout: float = 30.0) -> int:
        assert self._producer is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            await self._producer.client.force_metadata_update()
            parts = self._producer.client.cluster.partitions_for_topic(topic)
            if parts:
                self._partitions[topic] = len(parts)
                return len(parts)
            if asyncio.get_running_loop().time() > deadline:
                raise KeyError(f"topic {topic!r} does not exist; run `dealreg topics create`")
            await asyncio.sleep(0.1)

    async def partitions(self, topic: str) -> int:
        known = self._partitions.get(topic)
        if known is not None:
            return known
        return await self._wait_for_topic(topic, timeout=5.0)

    # writing -----------------------------------------------------------------------------

    async def _send_all(
        self, producer: AIOKafkaProducer, records: Sequence[OutgoingRecord]
    ) -> list[asyncio.Future[Any]]:
        futures = []
        # Partition counts looked up once per topic, not awaited per record; one headers
        # list for every record (aiokafka only reads it).
        counts: dict[str, int] = {}
        send = producer.send
        for rec in records:
            topic = rec.topic
            n = counts.get(topic)
            if n is None:  # (also: an unknown topic fails here, as before)
                n = counts[topic] = await self.partitions(topic)
            partition = rec.partition if rec.partition is not None else partition_for(rec.key, n)
            futures.append(await send(topic, rec.value, key=rec.key.encode(),
                                      partition=partition, headers=_HEADERS))
        return futures

    async def append(self, records: Sequence[OutgoingRecord]) -> list[Appended]:
        assert self._producer is not None, "start() first"
        futures = await self._send_all(self._producer, records)
        metas = await asyncio.gather(*futures)
        return [Appended(m.topic, m.partition, m.offset) for m in metas]

    # reading -----------------------------------------------------------------------------

    def _consumer(self, group_id: str | None, **kw: Any) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-{group_id or 'reader'}",
            group_id=group_id,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(1_000, self.session_timeout_ms // 10),
            # aiokafka's rebalance timeout is the session timeout, and a JoinGroup goes with
            # the client's request timeout (40 s): the broker may hold a JoinGroup for the
            # whole rebalance timeout, so wait that long and 5 s more (as the Java client)
            # rather than give up on it and rejoin (tests/unit/test_kafka_group_timeouts.py).
            request_timeout_ms=max(40_000, self.session_timeout_ms + 5_000),
            **kw,
        )

    async def end_positions(self, topic: str) -> dict[TopicPartition, int]:
        n = await self.partitions(topic)
        consumer = self._consumer(None)
        try:  # a broker that does not answer start() must not leave the consumer open
            await consumer.start()
            ends = await consumer.end_offsets([KafkaTP(topic, p) for p in range(n)])
            return {_tp(tp): off for tp, off in ends.items()}
        finally:
            await consumer.stop()

    async def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[TopicPartition, int]:
        n = await self.partitions(topic)
        tps = [KafkaTP(topic, p) for p in range(n)]
        consumer = self._consumer(None)
        try:
            await consumer.start()
            found = await consumer.offsets_for_times({tp: timestamp_ms for tp in tps})
            ends = await consumer.end_offsets(tps)
            return {_tp(tp): found[tp].offset if found.get(tp) is not None else ends[tp]
                    for tp in tps}
        finally:
            await consumer.stop()

    async def committed(self, group_id: str, topic: str) -> dict[TopicPartition, int]:
        assert self._admin is not None
        n = await self.partitions(topic)
        tps = [KafkaTP(topic, p) for p in range(n)]
        found = await self._admin.list_consumer_group_offsets(group_id, partitions=tps)
        return {
            _tp(tp): max(0, found[tp].offset) if tp in found else 0
            for tp in tps
        }

    def read(self, tp: TopicPartition, start: int, end: int, batch: int = 5000) -> ReadIterator:
        return _KafkaRangeReader(self, tp, start, end, batch)

    # consumer groups ---------------------------------------------------------------------

    async def subscribe(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        start_positions: StartPositions | None = None,
    ) -> KafkaSubscription:
        for topic in topics:
            await self.partitions(topic)
        consumer = self._consumer(group_id)
        sub = KafkaSubscription(consumer, start_positions)
        consumer.subscribe(list(topics), listener=sub)
        await consumer.start()
        return sub

    async def run_transactional(
        self,
        group_id: str,
        topics: Sequence[str],
        processor: Processor,
        *,
        max_records: int = 5000,
        tick_interval: float = 0.25,
        stopping: Callable[[], bool],
    ) -> None:
        loop = _TransactionalLoop(self, group_id, processor, max_records, tick_interval)
        for topic in topics:
            await self.partitions(topic)
        await loop.run(list(topics), stopping)


class KafkaSubscription(Subscription, ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: AIOKafkaConsumer, start_positions: StartPositions | None):
        self._consumer = consumer
        self._start_positions = start_positions

    async def on_partitions_revoked(self, revoked: list[KafkaTP]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[KafkaTP]) -> None:
        if self._start_positions is None or not assigned:
            return
        positions = await self._start_positions([_tp(tp) for tp in assigned])
        for tp in assigned:
            self._consumer.seek(tp, positions.get(_tp(tp), 0))

    async def poll(self, max_records: int = 1000, timeout: float = 0.5) -> list[Record]:
        batches = await self._consumer.getmany(
            timeout_ms=int(timeout * 1000), max_records=max_records
        )
        return [_record(r) for recs in batches.values() for r in recs]

    async def commit(self, positions: Mapping[TopicPartition, int]) -> None:
        await self._consumer.commit({_ktp(tp): p for tp, p in positions.items()})

    def assignment(self) -> set[TopicPartition]:
        return {_tp(tp) for tp in self._consumer.assignment()}

    async def positions(self) -> dict[TopicPartition, int]:
        return {_tp(tp): await self._consumer.position(tp)
                for tp in self._consumer.assignment()}

    async def close(self) -> None:
        await self._consumer.stop()


TRANSACTIONS = Counter(
    "dealreg_kafka_transactions_total",
    "Transactions the consume-process-produce loop committed (one per input partition of a "
    "batch: the broker's cost of a decision is mostly these)")


class TransactionStuck(RuntimeError):
    """A batch's transaction (or a client's shutdown) did not finish in time: the loop
    gives up on this member so its supervisor starts a fresh one, whose producers fence
    whatever the stuck ones still hold."""


async def _within(awaitable: Any, seconds: float, what: str) -> Any:
    """`awaitable`'s result, or TransactionStuck after `seconds`; a stuck client is left
    behind, not awaited (aiokafka retries some broker errors forever, e.g. the
    NOT_ENOUGH_REPLICAS a Kafka 4 broker answers while a transaction it aborted is still
    being written to, and then even its stop() may not return)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        raise TransactionStuck(f"{what} did not finish within {seconds:.0f} s")
    return task.result()


class _TransactionalLoop(ConsumerRebalanceListener):  # type: ignore[misc]
    """One member's consume-process-produce loop with a producer per input partition."""

    def __init__(
        self,
        log: KafkaEventLog,
        group_id: str,
        processor: Processor,
        max_records: int,
        tick_interval: float,
    ) -> None:
        self.log = log
        self.tick_interval = tick_interval
        self.group_id = group_id
        self.processor = processor
        self.max_records = max_records
        self.consumer = log._consumer(group_id, max_poll_records=max_records)
        self.producers: dict[TopicPartition, AIOKafkaProducer] = {}
        # Held while a batch is in flight, so a rebalance waits for it to commit or abort.
        self.lock = asyncio.Lock()
        # Bumped on every rebalance: a batch fetched before one is thrown away, because its
        # partitions were re-read from their committed positions by `assigned`.
        self.generation = 0
        # Per owned partition: the input position the processor's state has decided up to
        # (its committed offset when assigned, then each committed batch's end).
        self.decided_to: dict[TopicPartition, int] = {}
        # A batch's transactions must end well within this (the broker aborts one open
        # longer than `transaction_timeout_ms`); past it the member gives up (crashes).
        self.stuck_after = max(30.0, 3 * log.transaction_timeout_ms / 1000)
        # A rebalance callback that failed or hung (aiokafka only logs a listener's
        # exception): the loop raises it, so the member restarts instead of idling.
        self.broken: BaseException | None = None

    async def on_partitions_revoked(self, revoked: list[KafkaTP]) -> None:
        async with self.lock:
            self.generation += 1
            gone = [_tp(tp) for tp in revoked if _tp(tp) in self.producers]
            stopping = [self.producers.pop(tp) for tp in gone]
            for tp in gone:
                self.decided_to.pop(tp, None)
            try:
                await _within(asyncio.gather(*(p.stop() for p in stopping)),
                              self.stuck_after, "giving partitions up")
            except Exception as exc:
                self.broken = exc
            if gone:
                await self.processor.revoked(gone)

    async def on_partitions_assigned(self, assigned: list[KafkaTP]) -> None:
        async with self.lock:
            self.generation += 1
            try:
                await self._assign(assigned)
            except Exception as exc:
                self.broken = exc

    async def _assign(self, assigned: list[KafkaTP]) -> None:
        """Producers for the new partitions (fencing their previous owner), then the
        processor's state up to their committed positions."""
        new = [_tp(tp) for tp in assigned if _tp(tp) not in self.producers]
        producers = {tp: self._producer_for(tp) for tp in new}
        # init_transactions: fences the partition's previous owner and completes (aborts)
        # whatever transaction it left open, before we read the committed offset.
        try:
            await _within(asyncio.gather(*(p.start() for p in producers.values())),
                          self.stuck_after, "starting the partitions' producers")
        finally:
            self.producers.update(producers)  # stopped with the others if this failed
        # aiokafka starts each partition at the group's committed offset by itself; the
        # processor rebuilds its state up to that same offset. (An explicit seek here
        # raced with the fetcher and re-delivered committed records.)
        positions: dict[TopicPartition, int] = {}
        for tp in new:
            committed = await self.consumer.committed(_ktp(tp))
            positions[tp] = committed or 0
        if positions:
            await self.processor.assigned(positions)
            self.decided_to.update(positions)

    def _producer_for(self, tp: TopicPartition) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.log.bootstrap_servers,
            client_id=f"{self.log.client_id}-{self.group_id}-{tp.topic}-{tp.partition}",
            transactional_id=f"{self.group_id}.{tp.topic}.{tp.partition}",
            enable_idempotence=True,
            acks="all",
            linger_ms=self.log.linger_ms,
            max_batch_size=256 * 1024,
            transaction_timeout_ms=self.log.transaction_timeout_ms,
            retry_backoff_ms=self.log.retry_backoff_ms,
        )

    async def run(self, topics: list[str], stopping: Callable[[], bool]) -> None:
        self.consumer.subscribe(topics, listener=self)
        await self.consumer.start()
        clock = asyncio.get_running_loop()
        next_tick = clock.time() + self.tick_interval
        linger = self.log.batch_linger_ms / 1000
        linger_from = self.log.batch_linger_from_records
        linger_until = 0.0  # after a big batch that was not full: gather records until then
        try:
            while not stopping():
                if self.broken is not None:
                    raise self.broken
                if clock.time() < linger_until:
                    await asyncio.sleep(linger_until - clock.time())
                generation = self.generation
                batches = await self.consumer.getmany(
                    timeout_ms=int(min(200, self.tick_interval * 1000)),
                    max_records=self.max_records,
                )
                async with self.lock:
                    if generation != self.generation:
                        # A rebalance finished while this fetch waited, so these records
                        # may already come from the new assignment, and returning them
                        # moved the consumer past them: put every partition we still own
                        # back where its state is, or they would never be decided while
                        # the next batch commits an offset past them.
                        for ktp in batches:
                            position = self.decided_to.get(_tp(ktp))
                            if position is not None and _tp(ktp) in self.producers:
                                self.consumer.seek(ktp, position)
                        continue
                    # Every partition is processed before any transaction starts, so a
                    # processor that fails leaves nothing half-committed (or un-awaited).
                    work: list[tuple[TopicPartition, list[Record], list[OutgoingRecord]]] = []
                    for ktp, recs in batches.items():
                        tp = _tp(ktp)
                        if tp not in self.producers:
                            continue
                        records = [_record(r) for r in recs]
                        await self.processor.prepare(tp, records)
                        work.append((tp, records, self.processor.process(tp, records)))
                    if clock.time() >= next_tick:
                        next_tick = clock.time() + self.tick_interval
                        done = {tp for tp, _, _ in work}
                        for tp in self.producers:
                            if tp not in done:
                                outputs = self.processor.tick(tp)
                                if outputs:
                                    work.append((tp, [], outputs))
                    await _within(asyncio.gather(*(self._commit(*item) for item in work)),
                                  self.stuck_after, "a batch's transactions")
                    fetched = sum(len(recs) for recs in batches.values())
                    linger_until = (clock.time() + linger
                                    if linger_from <= fetched < self.max_records else 0.0)
        finally:
            async with self.lock:
                owned = list(self.producers)
                producers = list(self.producers.values())
                self.producers.clear()
                with contextlib.suppress(Exception):
                    await _within(asyncio.gather(*(p.stop() for p in producers),
                                                 return_exceptions=True),
                                  self.stuck_after, "stopping the producers")
                if owned:
                    await self.processor.revoked(owned)
            with contextlib.suppress(Exception):
                await _within(self.consumer.stop(), self.stuck_after, "stopping the consumer")

    async def _commit(
        self, tp: TopicPartition, records: list[Record], outputs: list[OutgoingRecord]
    ) -> None:
        producer = self.producers[tp]
        async with producer.transaction():
            futures = await self.log._send_all(producer, outputs)
            if records:
                await producer.send_offsets_to_transaction(
                    {_ktp(tp): records[-1].offset + 1}, self.group_id
                )
        TRANSACTIONS.inc()
        for future in futures:
            future.result()
        if records:
            self.decided_to[tp] = records[-1].offset + 1


class _KafkaRangeReader:
    def __init__(
        self, log: KafkaEventLog, tp: TopicPartition, start: int, end: int, batch: int
    ) -> None:
        self._log, self._tp, self._start, self._end, self._batch = log, tp, start, end, batch
        self._consumer: AIOKafkaConsumer | None = None

    def __aiter__(self) -> _KafkaRangeReader:
        return self

    async def __anext__(self) -> list[Record]:
        ktp = _ktp(self._tp)
        if self._consumer is None:
            if self._start >= self._end:
                raise StopAsyncIteration
            self._consumer = self._log._consumer(None)
            await self._consumer.start()
            self._consumer.assign([ktp])
            self._consumer.seek(ktp, self._start)
        consumer = self._consumer
        # Offsets have gaps (transaction markers, aborted records): stop on position, not on
        # a count of records.
        while await consumer.position(ktp) < self._end:
            batches = await consumer.getmany(ktp, timeout_ms=500, max_records=self._batch)
            records = [_record(r) for r in batches.get(ktp, []) if r.offset < self._end]
            if records:
                return records
        await consumer.stop()
        raise StopAsyncIteration
