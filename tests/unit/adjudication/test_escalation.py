"""The escalation ladder: business-time SLAs, reminders, escalation, final breach, timers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from adjudication_driver import Driver, decisions, only, policy

from services.adjudication.domain import (
    DecisionContext,
    decide,
    dispute_id_for,
    due_timers,
    next_deadline,
)
from services.adjudication.domain.escalation import add_business_time, business_length_us
from services.adjudication.domain.instants import from_us, to_us
from shared.events import (
    DisputeEscalated,
    DisputeOpened,
    DisputeReminderDue,
    DisputeResolved,
    DisputeSlaBreached,
    TimerFired,
)
from shared.policy import BusinessCalendar

NY = ZoneInfo("America/New_York")
US_CALENDAR = {"timezone": "America/New_York", "working_days": [1, 2, 3, 4, 5],
               "hours": "09:00-17:00", "holidays": "US"}


def business(start: datetime, sla: str, calendar: dict[str, object] | None) -> datetime:
    cal = BusinessCalendar.model_validate(calendar) if calendar else None
    from shared.policy import parse_duration

    return from_us(add_business_time(to_us(start), business_length_us(parse_duration(sla), cal),
                                     cal))


def test_sla_skips_a_holiday_and_the_weekend_in_the_calendar_timezone() -> None:
    # Thursday 3 July 2025, 16:00 in New York; Friday 4 July is Independence Day.
    start = datetime(2025, 7, 3, 16, 0, tzinfo=NY)
    due = business(start, "PT2H", US_CALENDAR)
    assert due == datetime(2025, 7, 7, 10, 0, tzinfo=NY)


def test_an_sla_day_is_a_working_day() -> None:
    start = datetime(2025, 7, 11, 16, 0, tzinfo=NY)  # Friday
    assert business(start, "P1D", US_CALENDAR) == datetime(2025, 7, 14, 16, 0, tzinfo=NY)


def test_time_before_opening_counts_from_opening_and_ends_at_closing() -> None:
    start = datetime(2025, 7, 8, 6, 0, tzinfo=NY)
    assert business(start, "PT8H", US_CALENDAR) == datetime(2025, 7, 8, 17, 0, tzinfo=NY)


def test_business_time_follows_daylight_saving_changes() -> None:
    cal = {"timezone": "Europe/Berlin", "hours": "09:00-17:00"}
    # Friday 28 March 2025 16:00 CET; clocks go forward on Sunday 30 March.
    start = datetime(2025, 3, 28, 15, 0, tzinfo=UTC)
    due = business(start, "PT2H", cal)
    assert due == datetime(2025, 3, 31, 8, 0, tzinfo=UTC)  # 10:00 CEST


def test_null_calendar_runs_24x7() -> None:
    start = datetime(2025, 7, 4, 23, 0, tzinfo=UTC)
    assert business(start, "PT2H", None) == datetime(2025, 7, 5, 1, 0, tzinfo=UTC)


def calendar_driver(**escalation: object) -> Driver:
    settings: dict[str, object] = {
        "calendar": US_CALENDAR,
        "levels": [{"owner_id": "cm-1", "sla": "PT2H"}, {"owner_id": "dir-1", "sla": "PT4H"}],
        "reminder_before": "PT1H",
    }
    settings.update(escalation)
    return Driver(policy=policy(escalation=settings),
                  now=datetime(2025, 7, 3, 15, 0, tzinfo=NY))


def open_tie(d: Driver) -> DisputeOpened:
    d.register("r1", "p-1")
    d.later(minutes=30)
    [opened] = only(d.register("r2", "p-2"), DisputeOpened)
    return opened


def test_dispute_deadline_and_reminder_are_in_business_time() -> None:
    d = calendar_driver()
    opened = open_tie(d)  # opened Thursday 15:30 New York
    assert opened.due_at == datetime(2025, 7, 7, 9, 30, tzinfo=NY)
    assert opened.reminder_at == datetime(2025, 7, 3, 16, 30, tzinfo=NY)


def test_reminder_then_escalation_then_final_breach_fallback() -> None:
    d = calendar_driver()
    open_tie(d)
    out = d.run_until(datetime(2025, 7, 3, 18, 0, tzinfo=NY))
    [reminder] = only(out, DisputeReminderDue)
    assert (reminder.level, reminder.owner_id) == (1, "cm-1")
    out = d.run_until(datetime(2025, 7, 7, 9, 29, tzinfo=NY))
    assert only(out, DisputeEscalated) == []
    out = d.run_until(datetime(2025, 7, 7, 9, 30, tzinfo=NY))
    [escalated] = only(out, DisputeEscalated)
    assert (escalated.from_level, escalated.to_level, escalated.owner_id) == (1, 2, "dir-1")
    assert escalated.due_at == datetime(2025, 7, 7, 13, 30, tzinfo=NY)
    out = d.run_until(datetime(2025, 7, 8, tzinfo=NY))
    assert [r.level for r in only(out, DisputeReminderDue)] == [2]
    [resolved] = only(out, DisputeResolved)
    assert (resolved.outcome, resolved.awarded_registration_id) == (
        "final_breach_fallback", "r1")
    assert {(x.registration_id, x.status, x.rule) for x in decisions(out)} == {
        ("r1", "approved", "final_breach_fallback"), ("r2", "rejected", "final_breach_fallback")}


def test_fractional_reminder_falls_at_that_share_of_the_sla() -> None:
    d = calendar_driver(reminder_before=0.25)
    opened = open_tie(d)  # Thursday 15:30, SLA 2 working hours: a quarter left at 17:00
    assert opened.reminder_at == datetime(2025, 7, 3, 17, 0, tzinfo=NY)
    d2 = calendar_driver(reminder_before="PT8H")  # longer than the SLA: midpoint
    assert open_tie(d2).reminder_at == datetime(2025, 7, 3, 16, 30, tzinfo=NY)


def test_final_breach_keep_open_leaves_the_dispute_with_the_last_owner() -> None:
    d = calendar_driver(on_final_breach="keep_open")
    open_tie(d)
    out = d.run_until(datetime(2025, 7, 9, tzinfo=NY))
    [breached] = only(out, DisputeSlaBreached)
    assert (breached.level, breached.owner_id) == (2, "dir-1")
    assert only(out, DisputeResolved) == []
    pending = due_timers(d.state, datetime(2026, 1, 1, tzinfo=UTC))
    # r1's expiry (rolled on by dispute_grace while the dispute is open); the dispute has none
    assert [t.kind for t in pending] == ["protection_expiry"]
    out = d.resolve(dispute_id_for("r2"), "award", actor="dir-1", registration_id="r2")
    assert only(out, DisputeResolved)[0].level == 2


def test_escalated_owner_takes_over_the_right_to_act() -> None:
    d = Driver(policy=policy(escalation={
        "levels": [{"owner_id": "cm-1", "sla": "PT5S"}, {"owner_id": "dir-1", "sla": "PT5S"}]}))
    open_tie(d)
    d.run_until(d.now + timedelta(seconds=6))
    assert only(d.resolve(dispute_id_for("r2"), "co_sell", actor="cm-1"), DisputeResolved) == []
    assert only(d.resolve(dispute_id_for("r2"), "co_sell", actor="dir-1"), DisputeResolved)


def test_stale_and_duplicate_timer_firings_change_nothing() -> None:
    d = Driver(policy=policy(escalation={
        "levels": [{"owner_id": "cm-1", "sla": "PT5S"}, {"owner_id": "dir-1", "sla": "PT50S"}]}))
    d.fire_timers = False
    open_tie(d)
    late = d.now + timedelta(seconds=7)
    [deadline, reminder] = sorted(due_timers(d.state, late), key=lambda t: t.kind)
    assert deadline.kind == "dispute_deadline" and deadline.level == 1
    first = d.feed(deadline, late)
    assert [type(e).__name__ for e in first] == ["DisputeReminderDue", "DisputeEscalated"]
    # The level started at the missed deadline, not when the late firing was noticed.
    assert only(first, DisputeEscalated)[0].due_at == deadline.deadline + timedelta(seconds=50)
    assert d.feed(deadline, late) == []  # duplicate
    assert d.feed(reminder, late) == []  # stale: already handled on the way
    d.resolve(dispute_id_for("r2"), "co_sell", actor="dir-1")
    stale = TimerFired(timer_id="x", kind="dispute_deadline", deadline=late, account_key="k",
                       dispute_id=dispute_id_for("r2"), level=2)
    assert d.feed(stale, late + timedelta(minutes=5)) == []


def test_any_later_event_carries_the_clock_past_a_deadline() -> None:
    d = Driver(policy=policy(escalation={"levels": [{"owner_id": "cm-1", "sla": "PT5S"}],
                                         "on_final_breach": "first_submitted"}))
    d.fire_timers = False
    open_tie(d)
    d.later(seconds=30)
    out = d.register("r9", "p-9", domain="other.com")
    names = [type(e).__name__ for e in out]
    assert names.index("DisputeResolved") < names.index("RegistrationDecided")


def test_due_timers_lists_firings_keyed_by_account_and_next_deadline_points_at_them() -> None:
    d = Driver(policy=policy(escalation={"levels": [{"owner_id": "cm-1", "sla": "PT5S"}]}))
    d.fire_timers = False
    open_tie(d)
    nxt = next_deadline(d.state)
    assert nxt is not None and nxt == d.now + timedelta(seconds=2, milliseconds=500)
    firings = due_timers(d.state, d.now + timedelta(seconds=5))
    assert [f.kind for f in firings] == ["dispute_reminder", "dispute_deadline"]
    assert {f.account_key for f in firings} == {"dom:acme.com"}
    assert len({f.timer_id for f in firings}) == 2
    assert due_timers(d.state, d.now) == []
    _, out = decide(d.state, firings[1], DecisionContext("t", d.now + timedelta(seconds=9)))
    assert only(out, DisputeResolved)
