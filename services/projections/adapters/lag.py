"""How far the read models are behind the log, per partition: Prometheus gauges and the
`/readyz` detail.

Lag is the log's end position minus the lowest position any projection model stored for
that partition (positions are written with the rows, so this is what readers can see,
whichever process owns the partition). On Kafka the end of a transactionally written topic
(decisions) includes the commit marker of its last transaction, which occupies an offset no
consumer ever receives, so an idle partition of that topic can report a lag of 1 until the
next record arrives; `lag_records` counts offsets, not events.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.adapters.repository import load_positions
from shared.eventlog import EventLog, TopicPartition

LAG = Gauge("dealreg_projection_lag_records",
            "Log offsets not yet applied to every read model, per partition",
            ["topic", "partition"])
POSITION = Gauge("dealreg_projection_position",
                 "Next offset every read model has applied, per partition",
                 ["topic", "partition"])
APPLIED = Counter("dealreg_projection_events_total", "Events folded into the read models")
BATCH_SECONDS = Histogram("dealreg_projection_batch_seconds",
                          "Time to fold and commit one batch",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
HELD = Counter("dealreg_projection_batches_held_total",
               "Batches of intake events held for their decisions before they were applied "
               "(`kafka_projections_hold_ms`, `embedded_projections_hold_ms`)")
LAST_APPLIED = Gauge("dealreg_projection_last_applied_timestamp_seconds",
                     "Unix time of the last committed projection batch")


@dataclass
class LagReport:
    partitions: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)
    """topic-partition -> (applied position, end position)."""
    measured_at: float | None = None
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(max(0, end - pos) for pos, end in self.partitions.values())

    def detail(self) -> dict[str, Any]:
        return {
            "lag_records": self.total,
            "measured_at": self.measured_at,
            "error": self.error,
            "partitions": {
                f"{tp.topic}/{tp.partition}": {"position": pos, "end": end,
                                               "lag": max(0, end - pos)}
                for tp, (pos, end) in sorted(self.partitions.items())
            },
        }


class LagMonitor:
    def __init__(self, eventlog: EventLog, engine: AsyncEngine, topics: Iterable[str],
                 models: Iterable[str]) -> None:
        self.eventlog = eventlog
        self.engine = engine
        self.topics = tuple(topics)
        self.models = tuple(models)
        self.report = LagReport()
        # The worker's consumer positions, snapshotted right after an applied batch or an
        # empty poll: they equal what is applied, plus transaction markers skipped, which
        # the stored positions (last record + 1) cannot see.
        self.consumed: dict[TopicPartition, int] = {}

    async def measure(self) -> LagReport:
        ends: dict[TopicPartition, int] = {}
        for topic in self.topics:
            ends.update(await self.eventlog.end_positions(topic))
        async with self.engine.connect() as conn:
            stored = await load_positions(conn, self.models, ends)
        report = LagReport(measured_at=time.time())
        for tp, end in ends.items():
            position = min(stored[m][tp] for m in self.models)
            consumed = self.consumed.get(tp)
            if consumed is not None and position < consumed <= end:
                position = consumed
            report.partitions[tp] = (position, end)
            labels = (tp.topic, str(tp.partition))
            LAG.labels(*labels).set(max(0, end - position))
            POSITION.labels(*labels).set(position)
        self.report = report
        return report

    async def refresh(self) -> LagReport:
        """Measure, keeping the last good report (with the error) if the log or the store
        does not answer."""
        try:
            return await self.measure()
        except Exception as exc:  # a broker or database hiccup must not stop the worker
            self.report.error = repr(exc)
            return self.report
