"""Poison records: a record a consumer cannot decode goes to the dead-letter topic.

A record the adjudicator or the projection worker cannot turn into a known event (bytes
that are not JSON, an envelope that does not validate, an unknown type, a version no
upcaster knows) cannot be decided or projected by this build, and retrying it forever would
stall its partition (every later account's events wait behind it). So the consumer writes a
*dead letter* naming the record's origin (topic, partition, offset, key), the error and the
original bytes, and moves on:

- the adjudicator returns the dead letter as an output of the batch, so on Kafka it commits
  in the same transaction as the input offset (exactly once: an aborted batch leaves no dead
  letter, a committed one exactly one); on the embedded log likewise in one SQLite commit;
- the projection worker stores its positions in the read-model database, not on the log: it
  appends the dead letter before committing the batch, so a crash in between writes it
  again with the same `id` on redelivery (at least once; readers de-duplicate by `id`).

The value is deterministic (no wall clock): re-processing a batch writes the same bytes.
Inspect with `dealreg poison list`; after an upgrade that can read them, put them
back on their origin partition with `dealreg poison replay` (docs/runbook.md).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from shared import metrics
from shared.eventlog.base import OutgoingRecord, Record
from shared.logging import get_logger

log = get_logger(__name__)

ERROR_LIMIT = 2000
"""Characters of the error message kept (a pydantic error on a huge record is long)."""


@dataclass(frozen=True)
class DeadLetter:
    id: str
    consumer: str
    group: str
    topic: str
    partition: int
    offset: int
    key: str
    timestamp_ms: int
    error: str
    value: bytes

    def to_json(self) -> dict[str, Any]:
        """The dead letter as shown to an operator (the value as text when it is UTF-8)."""
        try:
            text: str | None = self.value.decode()
        except UnicodeDecodeError:
            text = None
        return {"id": self.id, "consumer": self.consumer, "group": self.group,
                "topic": self.topic, "partition": self.partition, "offset": self.offset,
                "key": self.key, "error": self.error, "value": text,
                "value_base64": base64.b64encode(self.value).decode()}


def dead_letter(record: Record, *, topic: str, consumer: str, group: str,
                error: BaseException | str) -> OutgoingRecord:
    """The dead letter of `record` (which `consumer` of `group` could not decode), to append
    to `topic`. Counted in `dealreg_poison_records_total` and logged."""
    message = (str(error) or type(error).__name__ if isinstance(error, BaseException)
               else error)[:ERROR_LIMIT]
    ident = f"{consumer}:{record.topic}:{record.partition}:{record.offset}"
    metrics.POISON_RECORDS.labels(consumer, record.topic).inc()
    log.error("poison_record_dead_lettered", consumer=consumer, topic=record.topic,
              partition=record.partition, offset=record.offset, error=message,
              dead_letter_topic=topic)
    body = {
        "id": ident, "consumer": consumer, "group": group,
        "origin": {"topic": record.topic, "partition": record.partition,
                   "offset": record.offset, "key": record.key,
                   "timestamp_ms": record.timestamp_ms},
        "error": message, "value_base64": base64.b64encode(record.value).decode(),
    }
    return OutgoingRecord(topic, f"{record.topic}/{record.partition}", orjson.dumps(body),
                          partition=0)


def read_dead_letter(raw: bytes) -> DeadLetter:
    body = orjson.loads(raw)
    origin = body["origin"]
    return DeadLetter(
        id=str(body["id"]), consumer=str(body["consumer"]), group=str(body.get("group", "")),
        topic=str(origin["topic"]), partition=int(origin["partition"]),
        offset=int(origin["offset"]), key=str(origin.get("key", "")),
        timestamp_ms=int(origin.get("timestamp_ms", 0)), error=str(body.get("error", "")),
        value=base64.b64decode(body["value_base64"]),
    )


def replayed(letter: DeadLetter) -> OutgoingRecord:
    """The original record again, for its origin partition (a new offset, after whatever the
    partition holds now): for when an upgraded build can read it."""
    return OutgoingRecord(letter.topic, letter.key, letter.value, partition=letter.partition)
