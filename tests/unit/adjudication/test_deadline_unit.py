"""`escalation.deadline_unit`: a dispute's deadlines fall due on the next whole UTC hour (the
default since session 29) after the business-time deadline, so a late joiner's decision by
the final-breach fallback (its `decided_at`, `protected_until`, the timer's id) tells no
rival's submission finer than the hour. Policies published without the field replay
exactly as decided (deadlines at the SLA)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from adjudication_driver import Driver, decisions, only, policy
from pydantic import ValidationError

from services.adjudication import snapshots
from services.adjudication.domain import dispute_id_for, due_timers
from services.adjudication.domain.escalation import level_times
from services.adjudication.domain.instants import from_us, to_us
from shared.business_time import due_on
from shared.eventlog import TopicPartition
from shared.events import (
    DisputeEscalated,
    DisputeJoined,
    DisputeOpened,
    DisputeResolved,
    DomainEvent,
    TimerFired,
)
from shared.policy import Escalation, Policy

HOUR_US = 3_600_000_000
NY = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30: local whole hours are UTC half hours


def test_due_on_is_the_next_whole_unit_at_or_after_the_deadline() -> None:
    at = to_us(datetime(2027, 1, 1, 9, 17, 8, 250000, tzinfo=UTC))
    assert from_us(due_on(at, HOUR_US)) == datetime(2027, 1, 1, 10, 0, tzinfo=UTC)
    on_the_hour = to_us(datetime(2027, 1, 1, 10, 0, tzinfo=UTC))
    assert due_on(on_the_hour, HOUR_US) == on_the_hour
    assert due_on(on_the_hour + 1, HOUR_US) == on_the_hour + HOUR_US
    assert due_on(at, None) == at
    assert from_us(due_on(at, 2_000_000)) == datetime(2027, 1, 1, 9, 17, 10, tzinfo=UTC)
    last = to_us(datetime(2027, 12, 31, 23, 0, 0, 1, tzinfo=UTC))
    assert from_us(due_on(last, HOUR_US)) == datetime(2028, 1, 1, tzinfo=UTC)


def _escalation(**settings: object) -> Escalation:
    return Escalation.model_validate(settings)


def test_a_calendar_deadline_falls_due_on_the_next_whole_utc_hour() -> None:
    # Thu 3 Jul 2025 15:20 New York, PT2H of working time; Fri 4 Jul is Independence Day:
    # the SLA ends Mon 7 Jul 09:20 New York, due at 10:00 (New York is a whole-hour offset).
    escalation = _escalation(
        calendar={"timezone": "America/New_York", "hours": "09:00-17:00", "holidays": "US"},
        levels=[{"owner_id": "cm-1", "sla": "PT2H"}], reminder_before="PT1H")
    start = to_us(datetime(2025, 7, 3, 15, 20, 7, 123456, tzinfo=NY))
    times = level_times(escalation, 1, start)
    assert from_us(times.due_at) == datetime(2025, 7, 7, 10, 0, tzinfo=NY)
    # The reminder stays where the SLA puts it (only the owner sees it).
    assert times.reminder_at is not None
    assert from_us(times.reminder_at) == datetime(2025, 7, 3, 16, 20, 7, 123456, tzinfo=NY)
    exact = level_times(escalation.model_copy(update={"deadline_unit": None}), 1, start)
    assert from_us(exact.due_at) == datetime(2025, 7, 7, 9, 20, 7, 123456, tzinfo=NY)


def test_a_half_hour_timezone_deadline_lands_on_a_utc_hour_past_closing() -> None:
    # Kolkata 09:30-17:30 is 04:00-12:00 UTC; an SLA ending 17:10 local (11:40 UTC) falls
    # due at 12:00 UTC = 17:30 local; one ending 17:30 (12:00 UTC) stays; the UTC hour,
    # not the local one, and never earlier than the working time the SLA gives.
    escalation = _escalation(
        calendar={"timezone": "Asia/Kolkata", "hours": "09:30-17:30"},
        levels=[{"owner_id": "cm-1", "sla": "PT1H"}])
    monday = datetime(2025, 7, 7, 16, 10, 0, 1, tzinfo=KOLKATA)
    due = from_us(level_times(escalation, 1, to_us(monday)).due_at)
    assert due == datetime(2025, 7, 7, 12, 0, tzinfo=UTC)
    assert due.astimezone(KOLKATA).minute == 30
    closing = datetime(2025, 7, 7, 16, 30, tzinfo=KOLKATA)
    assert from_us(level_times(escalation, 1, to_us(closing)).due_at) == \
        datetime(2025, 7, 7, 12, 0, tzinfo=UTC)
    # Friday 17:00 local + 1 working hour: Monday 10:00 local (04:30 UTC), due 05:00 UTC.
    friday = datetime(2025, 7, 11, 17, 0, tzinfo=KOLKATA)
    assert from_us(level_times(escalation, 1, to_us(friday)).due_at) == \
        datetime(2025, 7, 14, 5, 0, tzinfo=UTC)


def test_the_unit_is_policy_versioned_and_divides_a_day() -> None:
    assert Policy().escalation.deadline_unit == timedelta(hours=1)
    assert Policy.default().escalation.deadline_unit == timedelta(hours=1)
    # Published before the field existed: exactly as decided then.
    old = {"version": 3, "escalation": {"levels": [{"owner_id": "cm-1", "sla": "PT3S"}]}}
    assert Policy.from_published(old).escalation.deadline_unit is None
    assert Policy.from_published({"version": 3}).escalation.deadline_unit is None
    now = Policy().model_dump(mode="json")
    assert now["escalation"]["deadline_unit"] == "PT1H"
    assert Policy.from_published(now).escalation.deadline_unit == timedelta(hours=1)
    unset = Policy.model_validate({"escalation": {"deadline_unit": None}})
    assert unset.model_dump(mode="json")["escalation"]["deadline_unit"] is None
    assert Policy.model_validate({"escalation": {"deadline_unit": "PT15M"}}) \
        .escalation.deadline_unit == timedelta(minutes=15)
    for bad in ("PT7M", "P2D", "PT0S", "PT7S"):
        with pytest.raises(ValidationError):
            Policy.model_validate({"escalation": {"deadline_unit": bad}})


def test_a_late_joiners_fallback_decision_is_on_the_hour() -> None:
    """The r2conf repro in the domain: two PT3S levels, p1 approved, p2 ties, p3 joins 1 s
    later; the fallback settles every member on a whole hour, and the timer's id names
    that hour, not p2's submission + 6 s."""
    d = Driver(policy=Policy.model_validate({"version": 4, "escalation": {
        "levels": [{"owner_id": "cm-1", "sla": "PT3S"}, {"owner_id": "dir-1", "sla": "PT3S"}],
        "on_final_breach": "precedence"}}), now=datetime(2025, 1, 6, 9, 17, 8, 250000, tzinfo=UTC))
    d.register("r1", "p-1")
    d.later(seconds=0.5)
    submitted = d.now
    [opened] = only(d.register("r2", "p-2"), DisputeOpened)
    assert opened.due_at == datetime(2025, 1, 6, 10, 0, tzinfo=UTC)
    d.later(seconds=1)
    d.register("r3", "p-3")
    d.fire_timers = False
    firings = due_timers(d.state, datetime(2025, 1, 6, 10, 0, tzinfo=UTC))
    assert [f.deadline for f in firings if f.kind == "dispute_deadline"] == \
        [datetime(2025, 1, 6, 10, 0, tzinfo=UTC)]
    assert all(str(to_us(submitted + timedelta(seconds=6))) not in f.timer_id for f in firings)
    d.fire_timers = True
    out = d.run_until(datetime(2025, 1, 6, 12, 0, tzinfo=UTC))
    [escalated] = only(out, DisputeEscalated)
    assert escalated.due_at == datetime(2025, 1, 6, 11, 0, tzinfo=UTC)
    [resolved] = only(out, DisputeResolved)
    assert resolved.dispute_id == dispute_id_for("r2")
    assert resolved.resolved_at == datetime(2025, 1, 6, 11, 0, tzinfo=UTC)
    settled = decisions(out)
    assert {e.registration_id for e in settled} >= {"r2", "r3"}
    for e in settled:
        assert e.decided_at == datetime(2025, 1, 6, 11, 0, tzinfo=UTC)
        # r1 keeps its own approval (and protection, from its own submission).
        if e.protected_until is not None and e.registration_id != "r1":
            assert e.protected_until - e.decided_at == d.policy.protection_period


def test_the_driver_pins_exact_deadlines_for_the_domain_tests() -> None:
    assert policy().escalation.deadline_unit is None
    assert policy(escalation={"levels": [{"owner_id": "a", "sla": "PT5S"}]}) \
        .escalation.deadline_unit is None
    assert policy(escalation={"deadline_unit": "PT1S"}).escalation.deadline_unit == \
        timedelta(seconds=1)


def _levels(version: int, unit: str | None) -> Policy:
    return Policy.model_validate({"version": version, "escalation": {
        "levels": [{"owner_id": "cm-1", "sla": "PT3S"}, {"owner_id": "dir-1", "sla": "PT3S"}],
        "on_final_breach": "precedence", "deadline_unit": unit}})


def _midpolicy(unit: str | None) -> tuple[datetime, list[DomainEvent], list[DomainEvent]]:
    """A dispute opens under a document without a unit (`null`); a document with `unit` is
    published; p-3 joins 1 s later under it; the fallback settles. Returns p-2's
    submission, p-3's join and what the timers did."""
    d = Driver(policy=_levels(4, None), now=datetime(2025, 1, 6, 9, 17, 8, 250000, tzinfo=UTC))
    d.register("r1", "p-1")
    d.later(seconds=0.5)
    submitted = d.now
    [opened] = only(d.register("r2", "p-2"), DisputeOpened)
    assert opened.due_at == submitted + timedelta(seconds=3)  # exact, as decided under null
    d.publish(_levels(5, unit))
    d.later(seconds=1)
    joined = d.register("r3", "p-3")
    return submitted, joined, d.run_until(submitted + timedelta(seconds=30))


def test_a_join_under_a_document_with_a_unit_moves_the_pending_deadline_onto_it() -> None:
    """Session 30: the dispute opened under `null` kept exact deadlines after PT2S was
    published, so p-3 (joining under it) read its fallback `decided_at` as p-2's
    submission + 6 s. The join under the unit moves the pending deadline onto the unit
    (decided by p-3's policy version), and the dispute keeps the unit for its next level."""
    submitted, joined, out = _midpolicy("PT2S")
    exact = submitted + timedelta(seconds=6)
    [join] = only(joined, DisputeJoined)
    assert join.policy_version == 5
    # 09:17:08.75 + 3 s = 09:17:11.75 -> 09:17:12, the next whole 2 s.
    assert join.due_at == datetime(2025, 1, 6, 9, 17, 12, tzinfo=UTC)
    [escalated] = only(out, DisputeEscalated)
    assert escalated.breached_deadline == join.due_at
    # The next level counts from the moved deadline and falls due on the unit too.
    assert escalated.due_at == datetime(2025, 1, 6, 9, 17, 16, tzinfo=UTC)
    [resolved] = only(out, DisputeResolved)
    assert resolved.resolved_at == escalated.due_at
    settled = decisions(out)
    assert {e.registration_id for e in settled} >= {"r2", "r3"}
    for e in settled:
        assert e.decided_at != exact and e.decided_at.microsecond == 0
    assert all(str(to_us(exact)) not in repr(e.to_data()) for e in out)


def test_a_moved_deadline_fires_under_its_own_timer_id_and_the_old_one_is_stale() -> None:
    d2 = Driver(policy=_levels(4, None), now=datetime(2025, 1, 6, 9, 17, 8, 250000, tzinfo=UTC))
    d2.register("r1", "p-1")
    d2.later(seconds=0.5)
    old_due = to_us(d2.now + timedelta(seconds=3))
    d2.register("r2", "p-2")
    d2.publish(_levels(5, "PT2S"))
    d2.later(seconds=1)
    d2.fire_timers = False
    d2.register("r3", "p-3")
    firings = [f for f in due_timers(d2.state, datetime(2025, 1, 6, 9, 18, tzinfo=UTC))
               if f.kind == "dispute_deadline"]
    assert [f.deadline for f in firings] == [datetime(2025, 1, 6, 9, 17, 12, tzinfo=UTC)]
    assert all(str(old_due) not in f.timer_id for f in firings)
    # A firing of the old deadline already in the log (the worker's clock ran ahead) finds
    # nothing due: the dispute is still open, at level 1.
    stale = TimerFired(timer_id=f"dispute_deadline:{dispute_id_for('r2')}:1:{old_due}",
                       kind="dispute_deadline", deadline=from_us(old_due),
                       account_key=firings[0].account_key, dispute_id=dispute_id_for("r2"),
                       level=1)
    assert not only(d2.feed(stale, from_us(old_due)), DisputeEscalated)
    assert d2.state.disputes[dispute_id_for("r2")].level == 1


def test_a_join_under_a_document_without_a_unit_decides_exactly_as_before() -> None:
    """Older logs: nobody joined under a document with a unit, so nothing moves."""
    submitted, joined, out = _midpolicy(None)
    [join] = only(joined, DisputeJoined)
    assert join.due_at is None
    [resolved] = only(out, DisputeResolved)
    assert resolved.resolved_at == submitted + timedelta(seconds=6)



def test_a_moved_deadline_survives_a_snapshot_and_decides_alike() -> None:
    """A state restored from a snapshot taken after the join keeps the moved deadline and
    the dispute's unit (`Dispute.unit_us`): its fallback falls where the live state's does."""
    d = Driver(policy=_levels(4, None), now=datetime(2025, 1, 6, 9, 17, 8, 250000, tzinfo=UTC))
    d.register("r1", "p-1")
    d.later(seconds=0.5)
    d.register("r2", "p-2")
    d.publish(_levels(5, "PT2S"))
    d.later(seconds=1)
    d.register("r3", "p-3")
    tp = TopicPartition("t.intake", 0)
    restored, _ = snapshots.decode(snapshots.encode(d.state, tp, 7), tp, 7)
    dispute = restored.disputes[dispute_id_for("r2")]
    assert dispute.unit_us == 2_000_000
    assert from_us(dispute.due_at) == datetime(2025, 1, 6, 9, 17, 12, tzinfo=UTC)
    live = d.run_until(datetime(2025, 1, 6, 9, 18, tzinfo=UTC))
    d.state = restored
    d.now = datetime(2025, 1, 6, 9, 17, 9, 750000, tzinfo=UTC)
    again = d.run_until(datetime(2025, 1, 6, 9, 18, tzinfo=UTC))
    assert [e.to_data() for e in again] == [e.to_data() for e in live]
    [resolved] = only(live, DisputeResolved)
    assert resolved.resolved_at == datetime(2025, 1, 6, 9, 17, 16, tzinfo=UTC)


def test_a_contest_carrying_on_a_dispute_under_a_unit_moves_its_deadlines_onto_it() -> None:
    """The other way into a dispute: p-3's contest under the PT2S document carries on the
    dispute p-2's contest opened under `null` (`carries_on`); the carried deadline and the
    next level fall on the unit, and the fallback with them."""
    d = Driver(policy=_levels(4, None), now=datetime(2025, 1, 6, 9, 17, 8, 250000, tzinfo=UTC))
    d.register("r1", "p-1")
    d.later(hours=30)  # past the tie window: r2 and r3 lose by first_submitted
    d.register("r2", "p-2")
    d.later(seconds=0.5)
    [first] = only(d.contest("r2", "p-2", "dsp-c1"), DisputeOpened)
    assert first.due_at == d.now + timedelta(seconds=3)  # exact, as decided under null
    d.later(seconds=1)
    d.register("r3", "p-3")
    d.publish(_levels(5, "PT2S"))
    d.later(seconds=1)
    [carried] = only(d.contest("r3", "p-3", "dsp-c2"), DisputeOpened)
    assert carried.carries_on == "dsp-c1"
    assert carried.due_at == datetime(2025, 1, 7, 15, 17, 12, tzinfo=UTC)  # from :11.75
    out = d.run_until(d.now + timedelta(seconds=30))
    [escalated] = only(out, DisputeEscalated)
    assert escalated.due_at == datetime(2025, 1, 7, 15, 17, 16, tzinfo=UTC)
    [resolved] = only(out, DisputeResolved)
    assert resolved.resolved_at == escalated.due_at
    assert all(e.decided_at.microsecond == 0 for e in decisions(out))
