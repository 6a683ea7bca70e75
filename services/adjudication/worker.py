"""The adjudicator process: the pure core driven by the log's transactional loop.

Per-partition state lives in memory. On assignment a partition's state is rebuilt by
re-deciding its intake history up to the committed position (decisions discarded): because
`decide` is deterministic, that reproduces exactly the state the previous owner had.
Decision envelopes get ids derived from the input event id, so a decision is recognisable
as the same decision wherever and however often it is computed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from services.adjudication.domain import AdjudicationState, DecisionContext, decide
from shared.eventlog import EventLog, OutgoingRecord, Record, TopicPartition
from shared.eventlog.topics import Topics
from shared.events import encode, new_envelope
from shared.events.codec import decode
from shared.logging import get_logger

log = get_logger(__name__)


class Adjudicator:
    """Implements `shared.eventlog.Processor` over the pure `decide`."""

    def __init__(self, eventlog: EventLog, topics: Topics, source: str) -> None:
        self.eventlog = eventlog
        self.topics = topics
        self.source = source
        self.states: dict[TopicPartition, AdjudicationState] = {}
        self.recovery_seconds: dict[TopicPartition, float] = {}

    async def assigned(self, positions: Mapping[TopicPartition, int]) -> None:
        for tp, position in positions.items():
            started = time.perf_counter()
            state = AdjudicationState()
            replayed = 0
            async for batch in self.eventlog.read(tp, 0, position):
                for record in batch:
                    self._decide(state, record)
                replayed += len(batch)
            self.states[tp] = state
            self.recovery_seconds[tp] = time.perf_counter() - started
            log.info("partition_recovered", topic=tp.topic, partition=tp.partition,
                     position=position, replayed=replayed,
                     seconds=round(self.recovery_seconds[tp], 3))

    async def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self.states.pop(tp, None)

    def process(self, tp: TopicPartition, records: Sequence[Record]) -> list[OutgoingRecord]:
        state = self.states.setdefault(tp, AdjudicationState())
        outputs: list[OutgoingRecord] = []
        for record in records:
            outputs.extend(self._decide(state, record))
        return outputs

    def _decide(self, state: AdjudicationState, record: Record) -> list[OutgoingRecord]:
        try:
            envelope, event = decode(record.value)
        except ValueError as exc:
            # The edge validates everything it appends, so this is a foreign or corrupt
            # record: skipping it is the only choice that keeps the partition moving.
            log.error("undecodable_intake_record", topic=record.topic,
                      partition=record.partition, offset=record.offset, error=str(exc))
            return []
        _, decisions = decide(state, event, DecisionContext(envelope.id, envelope.time))
        return [
            OutgoingRecord(
                self.topics.decisions,
                record.key,
                encode(
                    new_envelope(
                        decision,
                        id=f"{envelope.id}.d{i}",
                        source=self.source,
                        subject=envelope.subject,
                        time=envelope.time,
                    )
                ),
            )
            for i, decision in enumerate(decisions)
        ]


async def run_adjudicator(
    eventlog: EventLog,
    topics: Topics,
    *,
    group_id: str,
    source: str,
    stopping: Callable[[], bool],
    max_records: int = 5000,
) -> None:
    await eventlog.run_transactional(
        group_id, [topics.intake], Adjudicator(eventlog, topics, source),
        max_records=max_records, stopping=stopping,
    )
