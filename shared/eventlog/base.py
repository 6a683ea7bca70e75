"""The event-log interface: what the services need from Kafka, and what the embedded log copies.

Two backends implement it (`kafka.KafkaEventLog`, `embedded.EmbeddedEventLog`) and one
contract test suite (`tests/integration/test_eventlog_contract.py`) runs against both.

Vocabulary follows Kafka: a topic has partitions, each partition is an append-only sequence
of records with offsets; a record's partition is chosen from its key (the account key) with
Kafka's murmur2 partitioner on both backends, so an account lands on the same partition
number everywhere. A *position* is the next offset to read (last processed + 1).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

FOREVER = -1


class TopicPartition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Record:
    """A record read from the log."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    timestamp_ms: int

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """A record to append. The partition is derived from `key` unless given: a fact that is
    not about one account (a partner's status change) is copied to every partition."""

    topic: str
    key: str
    value: bytes
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an appended record landed: proof that it is durable (a 2xx may now be sent)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int = FOREVER
    compacted: bool = False
    extra_config: Mapping[str, str] = field(default_factory=dict)


class Processor(Protocol):
    """Consume-process-produce logic run exactly once by `EventLog.run_transactional`.

    The backend calls `assigned` before it hands over any record of a new partition, with
    the committed position of each; `prepare` may await whatever `process` will need for a
    batch (reference data); `process` turns one partition's records, in offset order, into
    outputs that are appended atomically with the new input position; `tick` is called
    every `tick_interval` seconds for each owned partition, and its outputs are appended
    in a transaction of that partition without moving its position (time-driven work);
    `revoked` is called after the last transaction of a partition this member gives up.
    """

    async def assigned(self, positions: Mapping[TopicPartition, int]) -> None: ...

    async def revoked(self, partitions: Sequence[TopicPartition]) -> None: ...

    async def prepare(self, tp: TopicPartition, records: Sequence[Record]) -> None: ...

    def process(self, tp: TopicPartition, records: Sequence[Record]) -> list[OutgoingRecord]: ...

    def tick(self, tp: TopicPartition) -> list[OutgoingRecord]: ...


StartPositions = Callable[[Sequence[TopicPartition]], Awaitable[Mapping[TopicPartition, int]]]


class Subscription(abc.ABC):
    """A member of a consumer group that reads committed records only."""

    @abc.abstractmethod
    async def poll(self, max_records: int = 1000, timeout: float = 0.5) -> list[Record]:
        """Up to `max_records` records across assigned partitions, each partition in order."""

    @abc.abstractmethod
    async def commit(self, positions: Mapping[TopicPartition, int]) -> None:
        """Store the group's positions on the log (consumers that keep their own may skip)."""

    @abc.abstractmethod
    def assignment(self) -> set[TopicPartition]: ...

    async def positions(self) -> dict[TopicPartition, int]:
        """The member's fetch position of each assigned partition: the offset after the last
        record handed out, past transaction markers (which no consumer receives)."""
        return {}

    @abc.abstractmethod
    async def close(self) -> None: ...


class EventLog(abc.ABC):
    """An append-only, partitioned, durable log with consumer groups and transactions."""

    unflushed: str | None = None
    """After close(): what it could not make durable (None: nothing, or not known)."""
    stuck: bool = False
    """After close(): a thread of the log never came back (a wedged disk); the process must
    exit without waiting for it."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics that do not exist yet; existing topics are left as they are."""

    @abc.abstractmethod
    async def partitions(self, topic: str) -> int: ...

    @abc.abstractmethod
    async def append(self, records: Sequence[OutgoingRecord]) -> list[Appended]:
        """Append durably (acks=all / fsync'd commit) and say where each record landed."""

    @abc.abstractmethod
    async def end_positions(self, topic: str) -> dict[TopicPartition, int]:
        """The position after the last committed record of each partition."""

    @abc.abstractmethod
    async def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[TopicPartition, int]:
        """Per partition, the first offset whose record was appended at or after
        `timestamp_ms` (the end position where none was): every later record lies at or
        past it (Kafka's offsets-for-times; the embedded log's commit time)."""

    async def find(self, topic: str, since_ms: int, needle: bytes,
                   match: Callable[[Record], bool]) -> Record | None:
        """The first record appended since `since_ms`, up to the end positions read now,
        whose value contains `needle` and that `match` accepts (None: not in the log).
        A scan, bounded by the time since `since_ms`: for rare look-ups only."""
        starts = await self.offsets_for_time(topic, since_ms)
        for tp, end in sorted((await self.end_positions(topic)).items()):
            async for batch in self.read(tp, starts.get(tp, 0), end):
                for record in batch:
                    if needle in record.value and match(record):
                        return record
        return None

    @abc.abstractmethod
    async def committed(self, group_id: str, topic: str) -> dict[TopicPartition, int]:
        """A consumer group's committed positions (0 where it has none)."""

    @abc.abstractmethod
    def read(
        self, tp: TopicPartition, start: int, end: int, batch: int = 5000
    ) -> ReadIterator:
        """Committed records of one partition with `start <= offset < end`, in batches."""

    @abc.abstractmethod
    async def subscribe(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        start_positions: StartPositions | None = None,
    ) -> Subscription:
        """Join `group_id`. With `start_positions`, the member starts each newly assigned
        partition where that callback says (a consumer that stores positions with its own
        writes); without it, at the group's committed position, else the beginning."""

    @abc.abstractmethod
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
        """Run `processor` until `stopping()` is true: each batch's outputs and the group's
        new input positions commit in one transaction, or neither does. A backend may
        prepare the next batch while the previous one commits (the embedded log does);
        batches commit in order, a batch only after the one before it, and a failed
        commit ends the loop with its error (the processor's state may then be a batch
        ahead: whoever restarts the loop rebuilds it)."""


class ReadIterator(Protocol):
    def __aiter__(self) -> ReadIterator: ...

    async def __anext__(self) -> list[Record]: ...
