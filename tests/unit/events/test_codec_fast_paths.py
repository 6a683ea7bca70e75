"""The codec's fast paths write and read exactly what the envelope model does.

`encode_event` (the adjudicator's hot path) must give the bytes of
`encode(new_envelope(...))` for every decision the core makes, or a replay would write
different decisions than the first run (invariant 3); and `decode` must still upcast old
versions and still refuse what the model refuses (the dead-letter path).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adjudication"))

from adjudication_workload import generate

from shared.events import (
    ConflictEvidence,
    RegistrationDecided,
    TimerFired,
    encode,
    new_envelope,
)
from shared.events.base import CATALOGUE, DomainEvent
from shared.events.codec import decode, encode_event
from shared.events.upcasting import UpcasterRegistry

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

TIMES = [
    datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    datetime(2026, 3, 1, 12, 0, 0, 450000, tzinfo=UTC),
    datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 3, 1, 12, 0),  # naive: written as the model writes it
]
TRACES: list[tuple[str | None, str | None]] = [
    (None, None), (TRACE, None), (TRACE, "vendor=1"), (None, "vendor=1"), ("", "vendor=1"),
]


def _both(event: DomainEvent, **kw: Any) -> tuple[bytes, bytes]:
    return encode_event(event, **kw), encode(new_envelope(event, **kw))


def test_encode_event_writes_the_bytes_of_the_envelope_model_for_every_decision() -> None:
    _, decisions = generate(400, seed=11)
    kinds = {type(d) for d in decisions}
    assert len(kinds) >= 6, kinds  # registrations, claims, disputes, links, expiries...
    for i, decision in enumerate(decisions):
        at = TIMES[i % len(TIMES)]
        parent, state = TRACES[i % len(TRACES)]
        fast, model = _both(decision, id=f"evt_{i}.d0", source="urn:dealreg/adjudication",
                            subject=str(getattr(decision, "account_key", "k")), time=at,
                            traceparent=parent, tracestate=state)
        assert fast == model, (type(decision).__name__, fast, model)


def test_encode_event_refuses_what_the_envelope_refuses() -> None:
    event = TimerFired(timer_id="t1", kind="protection_expiry", registration_id="r1",
                       account_key="dom:acme.com", deadline=TIMES[0])
    for bad in ({"id": "x" * 201}, {"id": ""}, {"subject": "s" * 501}, {"source": ""},
                {"traceparent": "p" * 201}):
        kw: dict[str, Any] = {"id": "e1", "source": "urn:s", "subject": "dom:acme.com",
                              "time": TIMES[0], **bad}
        with pytest.raises(ValidationError):
            encode_event(event, **kw)


def test_decode_still_refuses_a_malformed_record_as_a_value_error() -> None:
    good = orjson.loads(encode(new_envelope(
        RegistrationDecided(registration_id="r1", partner_id="p1", account_key="dom:a.com",
                            status="approved", rule="no_conflict", policy_version=1,
                            explanation="ok", decided_at=TIMES[0]),
        id="e1", source="urn:s", subject="dom:a.com", time=TIMES[0])))
    assert decode(orjson.dumps(good))[1].registration_id == "r1"  # type: ignore[attr-defined]
    for broken in ({**good, "time": "yesterday"}, {**good, "type": "Not A Type"},
                   {**good, "data": {**good["data"], "status": "maybe"}},
                   {**good, "data": {**good["data"], "surprise": 1}}):
        with pytest.raises(ValueError):  # the worker's dead-letter path catches ValueError
            decode(orjson.dumps(broken))
    with pytest.raises(ValueError):
        decode(b"not json")


class _NoteV1(DomainEvent):
    TYPE: ClassVar[str] = "test.fastpath.note.v1"
    text: str


class _NoteV2(DomainEvent):
    TYPE: ClassVar[str] = "test.fastpath.note.v2"
    text: str
    shouted: bool


def test_a_version_read_as_current_is_upcast_once_a_newer_version_appears() -> None:
    """Decoding remembers how a type string parses, never that it is current: a registry
    that gains a step upcasts the very type it read as-is before."""
    registry = UpcasterRegistry()
    raw = orjson.dumps({"specversion": "1.0", "id": "e1", "source": "s", "subject": "k",
                        "type": _NoteV1.TYPE, "time": TIMES[0].isoformat(),
                        "data": {"text": "hi"}})
    CATALOGUE[_NoteV1.TYPE] = _NoteV1
    try:
        assert decode(raw, registry)[1] == _NoteV1(text="hi")
        registry.register("test.fastpath.note", 1)(lambda d: {**d, "shouted": False})
        CATALOGUE[_NoteV2.TYPE] = _NoteV2
        envelope, event = decode(raw, registry)
    finally:
        CATALOGUE.pop(_NoteV1.TYPE, None)
        CATALOGUE.pop(_NoteV2.TYPE, None)
    assert event == _NoteV2(text="hi", shouted=False)
    assert envelope.data == {"text": "hi"}  # the upcaster worked on a copy


def test_the_projections_decode_upcasts_a_type_it_read_as_current_once_a_step_appears() -> None:
    """The projection worker's (and rebuild's) decode remembers a type read at its newest
    version and validates it directly; a step registered afterwards (the type is no longer
    the newest) sends it through the upcasters again, as `decode` does."""
    from services.projections.worker import decode_value
    from shared.events.upcasting import upcasters

    raw = orjson.dumps({"specversion": "1.0", "id": "e2", "source": "s", "subject": "k",
                        "type": _NoteV1.TYPE, "time": TIMES[0].isoformat(),
                        "data": {"text": "hi"}})
    CATALOGUE[_NoteV1.TYPE] = _NoteV1
    try:
        assert decode_value(raw)[2] == _NoteV1(text="hi")
        assert decode_value(raw)[2] == _NoteV1(text="hi")  # the remembered path
        upcasters.register("test.fastpath.note", 1)(lambda d: {**d, "shouted": True})
        CATALOGUE[_NoteV2.TYPE] = _NoteV2
        event_id, _, event, data, _, _ = decode_value(raw)
    finally:
        upcasters._steps.pop(("test.fastpath.note", 1), None)
        CATALOGUE.pop(_NoteV1.TYPE, None)
        CATALOGUE.pop(_NoteV2.TYPE, None)
    assert (event_id, event, data) == ("e2", _NoteV2(text="hi", shouted=True),
                                       {"text": "hi", "shouted": True})


class _TrailingNewline(DomainEvent):
    TYPE: ClassVar[str] = "test.fastpath.newline.v1\n"
    text: str


def test_encode_event_refuses_a_type_the_envelope_pattern_refuses() -> None:
    """The model's pattern is anchored by pydantic's regex engine, where `$` is the very
    end; Python's `re` lets `$` match before a trailing newline. The fast path must not
    write a type the envelope (and so every reader) refuses."""
    kw: dict[str, Any] = {"id": "e1", "source": "urn:s", "subject": "k", "time": TIMES[0]}
    with pytest.raises(ValidationError):
        encode(new_envelope(_TrailingNewline(text="x"), **kw))
    with pytest.raises(ValidationError):
        encode_event(_TrailingNewline(text="x"), **kw)


def test_encode_event_writes_awkward_floats_and_text_as_the_envelope_model_does() -> None:
    """The fast path serializes an event's data with pydantic-core and its head with
    orjson: the two must agree on every float (shortest round trip, exponents) and on
    which characters are escaped, or a decision's bytes would depend on the path taken."""
    scores = [0.0, -0.0, 1.0, 0.1, 1 / 3, 1e-05, 2.5e-07, 1e16, 1e17, 123456789.125, 5e-324,
              1.7976931348623157e308, float("inf"), float("nan")]
    texts = ["plain", "Société Générale", "東京", "emoji \U0001f600", "tab\there",
             "nl\nq\"\\", "\x00\x01\x1f\x7f", "\u2028\u2029\ufeff", "</script>"]
    for i, (score, text) in enumerate(zip(scores * 2, texts * 3, strict=False)):
        event = RegistrationDecided(
            registration_id=f"r{i}", partner_id=text, account_key="dom:a.com",
            status="in_review", rule="possible_duplicate", policy_version=1, explanation=text,
            conflicts=(ConflictEvidence(registration_id=text, party_type="partner",
                                        matched_by="name", score=score),),
            decided_at=TIMES[i % len(TIMES)], flags=(text,))
        fast, model = _both(event, id=f"e{i}", source="urn:s", subject=text,
                            time=TIMES[i % len(TIMES)], traceparent=TRACE, tracestate=text)
        assert fast == model, (score, text, fast, model)


def test_encode_event_writes_awkward_ids_and_sources_as_the_envelope_model_does() -> None:
    """The head's constant pieces are written once per (type, source) and the time's text
    once per time object: ids, sources and subjects that need escaping, a source met again
    after another, and a time reused across events must still give the model's bytes."""
    texts = ["urn:s", 'urn:"quoted"\\', "urn:Société/東京", "urn:\x00\x1f\u2028", "e" * 200]
    _, decisions = generate(60, seed=5)
    for i, decision in enumerate(decisions):
        source = texts[i % len(texts)]
        fast, model = _both(decision, id=texts[(i + 1) % len(texts)], source=source,
                            subject=texts[(i + 2) % len(texts)], time=TIMES[(i // 3) % len(TIMES)])
        assert fast == model, (source, fast, model)
