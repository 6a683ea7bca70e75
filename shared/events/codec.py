"""Bytes on the log <-> envelopes <-> typed domain events, with orjson.

Decoding upcasts old versions first, so callers see only current classes.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

import orjson
from pydantic import TypeAdapter

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


_TIME: Final = TypeAdapter(datetime)
"""The envelope's own `time` serializer: the fast path writes exactly what the model does."""
_TYPE_PATTERN: Final = re.compile(Envelope.model_fields["type"].metadata[-1].pattern)
_WRITABLE_TYPES: dict[str, bool] = {}


def encode_event(
    event: DomainEvent, *, id: str, source: str, subject: str, time: datetime,
    traceparent: str | None = None, tracestate: str | None = None,
) -> bytes:
    """`encode(new_envelope(event, ...))`, byte for byte, without building and dumping the
    envelope model: the hot path of the adjudicator, which writes one or more decisions
    per event. Values the model would refuse (an id too long, ...) take the model's path,
    so they fail exactly as they always did (tests/unit/events/test_codec_fast_paths.py)."""
    writable = _WRITABLE_TYPES.get(event.TYPE)
    if writable is None:
        writable = _WRITABLE_TYPES[event.TYPE] = (
            # fullmatch: in Python's `re`, `$` also matches before a final newline, which
            # the model's (pydantic's) regex refuses
            len(event.TYPE) <= 200 and _TYPE_PATTERN.fullmatch(event.TYPE) is not None)
    if not (writable and type(time) is datetime and 0 < len(id) <= 200
            and 0 < len(source) <= 500 and 0 < len(subject) <= 500
            and (traceparent is None or len(traceparent) <= 200)
            and (tracestate is None or len(tracestate) <= 600)):
        return encode(new_envelope(event, id=id, source=source, subject=subject, time=time,
                                   traceparent=traceparent, tracestate=tracestate))
    # The envelope's head by orjson, its data by the event's own (pydantic-core) JSON
    # serializer, spliced: no intermediate dict of the event, nor a second walk over it.
    # The bytes are orjson's of `event.to_data()`: both write the shortest round-trip
    # floats and escape the same characters (test_codec_fast_paths.py compares them).
    # The head is orjson's of the envelope's fields in the model's order, written piece
    # by piece: the constant pieces once per (type, source), only id, time and subject
    # per call (`orjson.dumps` of a dict is the pieces of each value, joined).
    kind = event.TYPE
    between = _HEADS.get((kind, source))
    if between is None:
        between = _head_pieces(kind, source)
    parts = [_ID_PREFIX, _dumps(id), between[0], _time_json(time), _SUBJECT_PREFIX,
             _dumps(subject), between[1], type(event).__pydantic_serializer__.to_json(event)]
    # As `new_envelope` + `encode`: absent rather than null, a state only with a parent.
    if traceparent is not None:
        parts.append(b',"traceparent":' + _dumps(traceparent))
    if traceparent and tracestate is not None:
        parts.append(b',"tracestate":' + _dumps(tracestate))
    parts.append(b"}")
    return b"".join(parts)


_dumps: Final = orjson.dumps
_ID_PREFIX: Final = b'{"specversion":"1.0","id":'
_SUBJECT_PREFIX: Final = b',"subject":'
_HEADS: dict[tuple[str, str], tuple[bytes, bytes]] = {}
"""(type, source) -> the head's constant pieces: after the id up to the time's value, and
after the subject up to the data's value."""


def _head_pieces(kind: str, source: str) -> tuple[bytes, bytes]:
    pieces = (b',"source":' + _dumps(source) + b',"type":' + _dumps(kind) + b',"time":',
              b',"datacontenttype":"application/json","data":')
    if len(_HEADS) < 4096:  # bounded: types x the sources of this process
        _HEADS[(kind, source)] = pieces
    return pieces


_LAST_TIME: list[Any] = [None, b""]
"""The last time `_time_json` wrote, and its JSON: an event's decisions share its time
object (kept by identity: equal datetimes in other zones write other text)."""
_TIME_TEXT: Final = _TIME.serializer.to_python
"""The envelope's `time` serializer itself (`_TIME.dump_python` without its wrapper)."""


def _time_json(time: datetime) -> bytes:
    last = _LAST_TIME
    if last[0] is not time:
        last[1] = _dumps(_TIME_TEXT(time, mode="json"))
        last[0] = time
    text: bytes = last[1]
    return text


_VALIDATE_ENVELOPE: Final = Envelope.__pydantic_validator__.validate_python
"""What `Envelope.model_validate` calls, without its wrapper (a Python frame and keyword
checks per call, twice per decoded record with the event's)."""


def decode_envelope(raw: bytes) -> Envelope:
    envelope: Envelope = _VALIDATE_ENVELOPE(orjson.loads(raw))
    return envelope


def decode(
    raw: bytes | Envelope, registry: UpcasterRegistry = upcasters
) -> tuple[Envelope, DomainEvent]:
    """Parse a record's value into its envelope and its typed, upcast event."""
    envelope = raw if isinstance(raw, Envelope) else decode_envelope(raw)
    return envelope, to_event(envelope, registry)


_PARSED: dict[str, tuple[str, int, type[DomainEvent] | None]] = {}
"""type -> (base type, version, the catalogue's class for it if current): parsed once per
type string (bounded by the types in use). A current type the catalogue does not hold (yet)
is not kept, so a class registered later is found."""


def to_event(envelope: Envelope, registry: UpcasterRegistry = upcasters) -> DomainEvent:
    parsed = _PARSED.get(envelope.type)
    if parsed is None:
        base, version = envelope.base_type, envelope.version
        parsed = (base, version, CATALOGUE.get(f"{base}.v{version}"))
        if (parsed[2] is not None or registry.applies(base, version)) and len(_PARSED) < 4096:
            _PARSED[envelope.type] = parsed
    base, version, cls = parsed
    data = envelope.data
    if registry.applies(base, version):  # an old version: upcast a copy
        version, data = registry.upcast(base, version, dict(data))
        cls = CATALOGUE.get(f"{base}.v{version}")
    if cls is None:
        raise UnknownEventType(envelope.type)
    event: DomainEvent = cls.__pydantic_validator__.validate_python(data)  # model_validate's
    return event


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
