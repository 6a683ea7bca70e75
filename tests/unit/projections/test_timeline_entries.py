"""Timeline entries: filed under the registration, claim or dispute they name, oldest
first, a decision right after its cause, stored compactly."""

from __future__ import annotations

import orjson

from services.projections.domain.timeline import entries, from_us, order_key, to_us
from shared.events import PartnerStatusChanged, TimerFired
from tests.unit.projections.builders import at, decided, opened, submitted


def test_registration_events_are_filed_under_the_registration_at_their_own_time() -> None:
    [row] = entries("evt_1", at(99), submitted(minutes=3))
    assert row["subject_id"] == "reg_1"
    assert from_us(row["at_us"]) == at(3)
    data = orjson.loads(row["data"])
    assert "registration_id" not in data
    assert data["partner_id"] == "p-1"


def test_dispute_events_are_filed_under_the_dispute() -> None:
    [row] = entries("evt_2", at(0), opened())
    assert row["subject_id"] == "dsp-1"


def test_a_timer_is_filed_under_its_target_and_empty_fields_are_left_out() -> None:
    firing = TimerFired(timer_id="t1", kind="protection_expiry", deadline=at(5),
                        account_key="dom:acme.com", registration_id="reg_1")
    [row] = entries("evt_3", at(6), firing)
    assert row["subject_id"] == "reg_1"
    assert "dispute_id" not in orjson.loads(row["data"])


def test_events_about_no_registration_have_no_entry() -> None:
    assert entries("evt_4", at(0), PartnerStatusChanged(
        partner_id="p-1", status="exited", account_key="partner:p-1", changed_at=at(0))) == []


def test_decisions_sort_after_their_cause_and_in_their_own_order() -> None:
    rows = [
        {"event_id": "evt_1.d10", "at_us": to_us(at(0))},
        {"event_id": "evt_1.d2", "at_us": to_us(at(0))},
        {"event_id": "evt_1", "at_us": to_us(at(0))},
        {"event_id": "evt_0", "at_us": to_us(at(-1))},
    ]
    assert [r["event_id"] for r in sorted(rows, key=order_key)] == [
        "evt_0", "evt_1", "evt_1.d2", "evt_1.d10"]


def test_microsecond_times_round_trip() -> None:
    moment = at(0.123456)
    assert from_us(to_us(moment)) == moment
    assert entries("e", at(0), decided())[0]["type"] == "dealreg.registration.decided.v1"
