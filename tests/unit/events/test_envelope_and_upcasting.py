"""The event catalogue: envelopes round-trip, and old versions are read as new ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
import pytest

from shared.events import (
    Account,
    Opportunity,
    PartnerSnapshot,
    RegistrationSubmitted,
    UpcasterRegistry,
    encode,
    new_envelope,
)
from shared.events.base import CATALOGUE, DomainEvent
from shared.events.codec import UnknownEventType, decode

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _submitted() -> RegistrationSubmitted:
    return RegistrationSubmitted(
        registration_id="reg_1", partner_id="p-1", partner=PartnerSnapshot(partner_id="p-1"),
        account_key="dom:acme.com", account=Account(name="Acme", domain="acme.com"),
        opportunity=Opportunity(title="Rollout", products=("analytics",)), motion="resell",
        submitted_at=NOW, policy_version=3,
    )


def test_an_event_round_trips_through_its_cloudevents_envelope() -> None:
    event = _submitted()
    raw = encode(new_envelope(event, id="evt_1", source="urn:test", subject="dom:acme.com",
                              time=NOW))
    body = orjson.loads(raw)
    assert body["specversion"] == "1.0"
    assert body["type"] == "dealreg.registration.submitted.v1"
    assert body["subject"] == "dom:acme.com"
    envelope, decoded = decode(raw)
    assert decoded == event
    assert envelope.base_type == "dealreg.registration.submitted"
    assert envelope.version == 1


def test_an_unknown_event_type_is_refused_not_guessed() -> None:
    raw = orjson.dumps({"specversion": "1.0", "id": "x", "source": "s", "subject": "k",
                        "type": "dealreg.nothing.happened.v1", "time": NOW.isoformat(),
                        "data": {}})
    with pytest.raises(UnknownEventType):
        decode(raw)


class _GreetingV2(DomainEvent):
    """Version 2 split v1's `name` into given and family names."""

    TYPE: ClassVar[str] = "test.greeting.sent.v2"
    given_name: str
    family_name: str
    loud: bool


def test_a_v1_event_is_read_as_v2_through_the_upcaster_chain() -> None:
    registry = UpcasterRegistry()

    @registry.register("test.greeting.sent", 1)
    def split_name(data: dict[str, Any]) -> dict[str, Any]:
        given, _, family = data.pop("name").partition(" ")
        return {**data, "given_name": given, "family_name": family}

    CATALOGUE[_GreetingV2.TYPE] = _GreetingV2
    try:
        v1 = orjson.dumps({"specversion": "1.0", "id": "e1", "source": "s", "subject": "k",
                           "type": "test.greeting.sent.v1", "time": NOW.isoformat(),
                           "data": {"name": "Ada Lovelace", "loud": True}})
        envelope, event = decode(v1, registry)
    finally:
        del CATALOGUE[_GreetingV2.TYPE]
    assert envelope.type == "test.greeting.sent.v1"  # the log keeps what was written
    assert event == _GreetingV2(given_name="Ada", family_name="Lovelace", loud=True)


def test_registering_two_upcasters_for_one_version_is_an_error() -> None:
    registry = UpcasterRegistry()
    registry.register("t.x.y", 1)(lambda d: d)
    with pytest.raises(ValueError, match="already exists"):
        registry.register("t.x.y", 1)(lambda d: d)
