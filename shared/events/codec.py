"""Bytes on the log <-> envelopes <-> typed domain events, with orjson.

Decoding upcasts old versions first, so callers see only current classes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from shared.events.base import CATALOGUE, DomainEvent
from shared.events.envelope import Envelope
from shared.events.upcasting import UpcasterRegistry, upcasters


class UnknownEventType(ValueError):
    """The log holds a type this build does not know (newer producer, or a typo)."""


def new_envelope(
    event: DomainEvent, *, id: str, source: str, subject: str, time: datetime,
    traceparent: str | None = None, tracestate: str | None = None,
) -> Envelope:
    """`traceparent` / `tracestate`: the W3C trace context the event belongs to (the
    CloudEvents distributed-tracing extension), if any."""
    return Envelope(id=id, source=source, type=event.TYPE, time=time, subject=subject,
                    data=event.to_data(), traceparent=traceparent,
                    tracestate=tracestate if traceparent else None)


_TRACE_FIELDS = ("traceparent", "tracestate")


def encode(envelope: Envelope) -> bytes:
    body = envelope.model_dump(mode="json")
    for name in _TRACE_FIELDS:  # absent rather than null: untraced events stay as they were
        if body.get(name) is None:
            body.pop(name, None)
    return orjson.dumps(body)


def decode_envelope(raw: bytes) -> Envelope:
    return Envelope.model_validate(orjson.loads(raw))


def decode(
    raw: bytes | Envelope, registry: UpcasterRegistry = upcasters
) -> tuple[Envelope, DomainEvent]:
    """Parse a record's value into its envelope and its typed, upcast event."""
    envelope = raw if isinstance(raw, Envelope) else decode_envelope(raw)
    return envelope, to_event(envelope, registry)


def to_event(envelope: Envelope, registry: UpcasterRegistry = upcasters) -> DomainEvent:
    version, data = registry.upcast(envelope.base_type, envelope.version, dict(envelope.data))
    cls = CATALOGUE.get(f"{envelope.base_type}.v{version}")
    if cls is None:
        raise UnknownEventType(envelope.type)
    return cls.model_validate(data)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
