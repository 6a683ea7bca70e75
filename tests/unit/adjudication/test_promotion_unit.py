"""`promotion_unit`: a promotion caused by the owner's expiry takes effect on the next whole
unit, not at the expiry, which is the owner's approval + `protection_period` to the
microsecond (session 30, confidentiality). Until then the line keeps the account: a
newcomer queues behind it (`promotion_pending`). Older documents read null and promote at
the expiry, as decided; replay and snapshots carry the pending promotion (`releasing`)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from adjudication_workload import generate, workload_policies
from test_determinism import serialized

from services.adjudication import snapshots
from services.adjudication.domain import (
    AdjudicationState,
    DecisionContext,
    decide,
    policy_version_of,
)
from shared.eventlog import TopicPartition
from shared.events import DomainEvent, ProtectionEnded, RegistrationDecided, TimerFired
from shared.policy import Policy
from tests.unit.adjudication.adjudication_driver import Driver, decisions, only, policy

HOUR = timedelta(hours=1)
# r1 is approved at an odd moment: its expiry is that moment + 90 days, to the microsecond.
ODD = datetime(2025, 1, 6, 9, 17, 23, 456789, tzinfo=UTC)


def _line(**overrides: Any) -> Driver:
    """r1 (p-1) approved at ODD; r2 (p-2) rejected first_submitted a day later, in its line."""
    overrides = {"promotion_unit": "PT1H", "release_window": "P100D", **overrides}
    d = Driver(policy=policy(**overrides), now=ODD)
    d.register("r1", "p-1")
    d.later(days=1, minutes=3, seconds=7)
    d.register("r2", "p-2")
    assert d.status("r2") == "rejected"
    return d


def _expiry(d: Driver) -> datetime:
    until = d.state.entries["r1"].protected_until
    assert until is not None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=until)


def _next_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0) + HOUR


def test_a_promotion_after_an_expiry_takes_effect_on_the_next_whole_hour() -> None:
    d = _line()
    expiry = _expiry(d)
    assert expiry == ODD + timedelta(days=90)
    at_expiry = d.run_until(expiry + timedelta(minutes=10))
    [ended] = only(at_expiry, ProtectionEnded)
    assert (ended.registration_id, ended.ended_at) == ("r1", expiry)  # r1's own moment
    assert decisions(at_expiry, "r2") == []  # not at the rival's expiry
    assert d.status("r2") == "rejected"
    hour = _next_hour(expiry)
    assert decisions(d.run_until(hour - timedelta(microseconds=1)), "r2") == []
    # The worker's firing is on the hour, its id too.
    [due] = [f for f in _due(d, hour) if f.kind == "release_promotion"]
    assert due.deadline == hour and due.registration_id == "r1"
    assert due.timer_id.endswith(f":{_us(hour)}")
    out = d.run_until(hour)
    [promoted] = decisions(out, "r2")
    assert (promoted.status, promoted.rule) == ("approved", "promoted_on_release")
    assert promoted.decided_at == hour
    assert promoted.protected_until == hour + timedelta(days=90)
    # Nothing the promoted partner reads of it is finer than the hour.
    for moment in (promoted.decided_at, promoted.protected_until):
        assert moment == moment.replace(minute=0, second=0, microsecond=0)
    assert d.state.releasing == {}


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _due(d: Driver, moment: datetime) -> list[TimerFired]:
    from services.adjudication.domain.timers import due_timers
    return due_timers(d.state, moment)


def test_a_newcomer_between_the_expiry_and_the_promotion_queues_behind_the_line() -> None:
    d = _line()
    expiry = _expiry(d)
    d.run_until(expiry + timedelta(minutes=5))
    d.now = expiry + timedelta(minutes=5)
    # p-3 registers the customer in the gap: the account is free of r1 but not yet r2's.
    [queued] = decisions(d.register("r3", "p-3", tier="platinum"), "r3")
    assert (queued.status, queued.rule) == ("rejected", "promotion_pending")
    assert queued.conflicts == ()  # names no one (r1 has ended), no time
    assert "next in line" in queued.explanation
    out = d.run_until(_next_hour(expiry))
    assert [(e.status, e.rule) for e in decisions(out, "r2")] == [
        ("approved", "promoted_on_release")]
    assert decisions(out, "r3") == []  # r2 keeps its place: r3 waits behind it
    assert d.status("r3") == "rejected"


def test_a_newcomer_in_the_gap_takes_the_account_only_when_the_line_before_it_cannot() -> None:
    d = _line()
    expiry = _expiry(d)
    d.run_until(expiry + timedelta(minutes=1))
    d.now = expiry + timedelta(minutes=1)
    d.register("r3", "p-3")
    d.later(minutes=1)
    d.partner("p-2", "exited")  # r2's partner leaves in the gap: it is promoted no more
    out = d.run_until(_next_hour(expiry))
    assert decisions(out, "r2") == []
    [promoted] = decisions(out, "r3")
    assert (promoted.status, promoted.rule) == ("approved", "promoted_on_release")
    assert promoted.decided_at == _next_hour(expiry)


def test_a_stronger_newcomer_in_the_gap_still_queues_behind_the_waiter() -> None:
    """Under tier-first precedence a platinum newcomer would be ahead of the gold r2 in
    r1's line; arriving after the expiry, it comes after the line that was waiting."""
    d = _line(precedence=("tier", "first_submitted"))
    expiry = _expiry(d)
    d.run_until(expiry + timedelta(minutes=2))
    d.now = expiry + timedelta(minutes=2)
    [queued] = decisions(d.register("r3", "p-3", tier="platinum"), "r3")
    assert queued.rule == "promotion_pending"
    out = d.run_until(_next_hour(expiry))
    assert [e.registration_id for e in decisions(out)] == ["r2"]


def test_another_customer_or_a_referral_in_the_gap_is_decided_as_ever() -> None:
    d = _line()
    expiry = _expiry(d)
    d.run_until(expiry + timedelta(minutes=2))
    d.now = expiry + timedelta(minutes=2)
    [other] = decisions(d.register("rx", "p-3", domain="other.com", name="Other Inc"), "rx")
    assert (other.status, other.rule) == ("approved", "no_conflict")
    [referral] = decisions(d.register("rr", "p-4", motion="referral"), "rr")
    assert (referral.status, referral.rule) == ("approved", "non_exclusive")


def test_an_expiry_on_the_unit_promotes_at_once() -> None:
    d = Driver(policy=policy(promotion_unit="PT1H", release_window="P100D"))  # at 09:00
    d.register("r1", "p-1")
    d.later(days=2)
    d.register("r2", "p-2")
    expiry = _expiry(d)
    out = d.run_until(expiry)
    [promoted] = decisions(out, "r2")
    assert promoted.decided_at == expiry and d.state.releasing == {}


def test_a_withdrawal_still_promotes_at_once() -> None:
    d = _line()
    d.later(days=2, minutes=11)
    [promoted] = decisions(d.withdraw("r1"), "r2")
    assert promoted.decided_at == d.now  # the owner's act, not its approval + the period


def test_without_a_unit_the_promotion_is_at_the_expiry_exactly_as_before() -> None:
    d = _line(promotion_unit=None)
    expiry = _expiry(d)
    out = d.run_until(expiry)
    [promoted] = decisions(out, "r2")
    assert promoted.decided_at == expiry


def test_policy_documents_keep_their_meaning() -> None:
    assert Policy().promotion_unit == HOUR
    old = Policy().model_dump(mode="json")
    del old["promotion_unit"]
    assert Policy.from_published(old).promotion_unit is None
    assert Policy.from_published({"version": 3}).promotion_unit is None
    now = Policy().model_dump(mode="json")
    assert now["promotion_unit"] == "PT1H"
    assert Policy.from_published(now).promotion_unit == HOUR
    assert Policy.model_validate({"promotion_unit": "PT15M"}).promotion_unit == \
        timedelta(minutes=15)
    for bad in ("PT7M", "P2D", "PT0S"):
        with pytest.raises(ValueError, match="promotion_unit"):
            Policy.model_validate({"promotion_unit": bad})


# --- replay and snapshots, on the workload with a unit -------------------------------------

_UNIT_POLICIES = {v: p.model_copy(update={"promotion_unit": HOUR})
                  for v, p in workload_policies().items()}


def _decide_all(state: AdjudicationState, log: list[tuple[DomainEvent, datetime]], start: int
                ) -> list[DomainEvent]:
    out: list[DomainEvent] = []
    for i, (event, at) in enumerate(log[start:], start + 1):
        version = policy_version_of(event)
        context = DecisionContext(f"e{i}", at,
                                  _UNIT_POLICIES[version] if version is not None else None)
        out += decide(state, event, context)[1]
    return out


def test_the_workload_with_a_unit_replays_identically_and_through_snapshots() -> None:
    log, _ = generate(6000, seed=23)
    recorded = _decide_all(AdjudicationState(), log, 0)
    rules = Counter(e.rule for e in recorded if isinstance(e, RegistrationDecided))
    assert rules["promotion_pending"] > 0 and rules["promoted_on_release"] > 0
    assert serialized(_decide_all(AdjudicationState(), log, 0)) == serialized(recorded)
    # Cut where a promotion is pending (`releasing`) and elsewhere.
    probe = AdjudicationState()
    pending: list[int] = []
    for i in range(len(log)):
        _decide_all(probe, log[i:i + 1], 0)
        if probe.releasing and len(pending) < 3 and (not pending or i > pending[-1] + 500):
            pending.append(i + 1)
    assert pending
    tp = TopicPartition("t.intake", 3)
    for cut in (*pending, 2500, len(log) - 1):
        whole = AdjudicationState()
        head = _decide_all(whole, log[:cut], 0)
        restored, _ = snapshots.decode(snapshots.encode(whole, tp, cut), tp, cut)
        assert restored.releasing == whole.releasing
        assert serialized(head + _decide_all(restored, log, cut)) == serialized(recorded), cut


def test_the_line_is_remembered_until_its_promotion() -> None:
    """A rejected entry is kept one protection period: with a period shorter than the unit
    (seconds, as the e2e test), the waiter was forgotten in the gap and nobody promoted."""
    start = datetime(2025, 1, 6, 9, 0, 0, 500000, tzinfo=UTC)
    d = Driver(policy=policy(protection_period="PT4S", tie_window="PT0.5S",
                             reregistration_cooloff=None, promotion_unit="PT10S"), now=start)
    d.register("r1", "p-1")
    d.later(seconds=1)
    d.register("r2", "p-2")
    d.later(seconds=4)
    d.run_until(d.now)
    assert d.status("r1") == "expired" and d.status("r2") == "rejected"
    [queued] = decisions(d.register("r3", "p-3"), "r3")
    assert queued.rule == "promotion_pending"
    out = d.run_until(d.now + timedelta(seconds=6))
    [promoted] = decisions(out)
    assert (promoted.registration_id, promoted.rule) == ("r2", "promoted_on_release")
    assert promoted.decided_at == start.replace(microsecond=0) + timedelta(seconds=10)
