"""The topics dealreg uses, and how they are provisioned.

Names derive from one prefix (`DEALREG_TOPIC_PREFIX`, default `dealreg`), so several
programs or test runs can share a cluster without seeing each other's events.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.eventlog.base import FOREVER, TopicSpec


@dataclass(frozen=True)
class Topics:
    intake: str
    """Accepted commands and the adjudicator's own timer firings, keyed by account key."""
    decisions: str
    """Adjudication decisions, keyed by account key."""
    reference: str
    """Reference data every adjudicator needs whole (policy versions): one partition, so
    versions are totally ordered; keyed by the document (`policy`)."""
    state: str = ""
    """Snapshots of the adjudicator's per-partition state (Kafka; compacted): partition N
    holds intake partition N's, so recovery replays only the tail (adjudication/snapshots.py)."""
    dead_letters: str = ""
    """Records a consumer could not decode (bad bytes, unknown type or version), each with
    its origin (topic, partition, offset) and the error, so the origin partition moves on
    (shared/eventlog/deadletter.py). One partition: rare, and read in order by operators."""

    @classmethod
    def named(cls, prefix: str = "dealreg") -> Topics:
        return cls(intake=f"{prefix}.intake", decisions=f"{prefix}.decisions",
                   reference=f"{prefix}.reference", state=f"{prefix}.adjudicator-state",
                   dead_letters=f"{prefix}.dead-letters")

    def specs(self, partitions: int) -> list[TopicSpec]:
        # Intake and decisions are the system of record: retained forever (invariant 8).
        return [
            TopicSpec(self.intake, partitions, retention_ms=FOREVER),
            TopicSpec(self.decisions, partitions, retention_ms=FOREVER),
            TopicSpec(self.reference, 1, retention_ms=FOREVER),
            *([TopicSpec(self.dead_letters, 1, retention_ms=FOREVER)]
              if self.dead_letters else []),
            # Only the newest snapshot of each partition matters: compacted, and cleaned
            # soon (small segments, low dirty ratio) so the tail a recovery reads stays short.
            *([TopicSpec(self.state, partitions, compacted=True, extra_config={
                "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1",
                "max.message.bytes": str(2 * 1024 * 1024)})] if self.state else []),
        ]
