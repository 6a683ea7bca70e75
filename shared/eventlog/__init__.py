"""The event log: one interface, an embedded (SQLite) and a Kafka backend."""

from shared.eventlog.base import (
    Appended,
    EventLog,
    OutgoingRecord,
    Processor,
    Record,
    Subscription,
    TopicPartition,
    TopicSpec,
)

__all__ = [
    "Appended",
    "EventLog",
    "OutgoingRecord",
    "Processor",
    "Record",
    "Subscription",
    "TopicPartition",
    "TopicSpec",
]
