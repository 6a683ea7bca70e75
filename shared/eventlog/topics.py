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

    @classmethod
    def named(cls, prefix: str = "dealreg") -> Topics:
        return cls(intake=f"{prefix}.intake", decisions=f"{prefix}.decisions",
                   reference=f"{prefix}.reference")

    def specs(self, partitions: int) -> list[TopicSpec]:
        # Intake and decisions are the system of record: retained forever (invariant 8).
        return [
            TopicSpec(self.intake, partitions, retention_ms=FOREVER),
            TopicSpec(self.decisions, partitions, retention_ms=FOREVER),
            TopicSpec(self.reference, 1, retention_ms=FOREVER),
        ]
