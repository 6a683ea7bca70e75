"""Disputes: outcomes, who may act, refusals the API maps to 403/404/409, contests, moot."""

from __future__ import annotations

from decimal import Decimal

from adjudication_driver import Driver, decisions, only

from services.adjudication.domain import dispute_id_for
from shared.events import (
    DisputeAcknowledgementRecorded,
    DisputeActionRejected,
    DisputeJoined,
    DisputeOpened,
    DisputeReminderDue,
    DisputeResolved,
)


def tie() -> Driver:
    d = Driver()
    d.register("r1", "p-1")
    d.later(hours=1)
    d.register("r2", "p-2")
    d.later(hours=1)
    return d


def status_of(out: list, rid: str) -> tuple[str, str]:  # type: ignore[type-arg]
    [decision] = decisions(out, rid)
    return decision.status, decision.rule


def test_award_approves_the_winner_and_rejects_the_rest() -> None:
    d = tie()
    out = d.resolve(dispute_id_for("r2"), "award", registration_id="r2")
    [resolved] = only(out, DisputeResolved)
    assert (resolved.outcome, resolved.awarded_registration_id, resolved.resolved_by) == (
        "award", "r2", "cm-1")
    assert status_of(out, "r2") == ("approved", "dispute_resolution")
    assert status_of(out, "r1") == ("rejected", "dispute_resolution")
    assert decisions(out, "r2")[0].protected_until is not None
    assert d.status("r1") == "rejected"


def test_split_approves_everyone_named_with_their_credit_percent() -> None:
    d = tie()
    out = d.resolve(dispute_id_for("r2"), "split", splits={"r1": 60, "r2": 40})
    credit = {x.registration_id: (x.status, x.credit_percent) for x in decisions(out)}
    assert credit == {"r1": ("approved", Decimal(60)), "r2": ("approved", Decimal(40))}


def test_split_not_summing_to_100_is_refused() -> None:
    d = tie()
    out = d.resolve(dispute_id_for("r2"), "split", splits={"r1": 60, "r2": 30})
    [refused] = only(out, DisputeActionRejected)
    assert refused.reason == "invalid_resolution"
    assert d.state.disputes[dispute_id_for("r2")].status == "open"


def test_split_naming_an_outsider_is_refused() -> None:
    d = tie()
    out = d.resolve(dispute_id_for("r2"), "split", splits={"r1": 50, "zz": 50})
    assert only(out, DisputeActionRejected)[0].reason == "invalid_resolution"


def test_co_sell_approves_every_member() -> None:
    d = tie()
    out = d.resolve(dispute_id_for("r2"), "co_sell")
    assert {x.status for x in decisions(out)} == {"approved"}
    assert only(out, DisputeResolved)[0].approved_ids == ("r2", "r1")


def test_reject_all_rejects_every_member() -> None:
    d = tie()
    out = d.resolve(dispute_id_for("r2"), "reject_all")
    assert {x.status for x in decisions(out)} == {"rejected"}
    assert d.state.active_count() == 0


def test_acting_on_a_resolved_dispute_is_refused_as_already_resolved() -> None:
    d = tie()
    d.resolve(dispute_id_for("r2"), "co_sell")
    dispute = dispute_id_for("r2")
    for out in (d.resolve(dispute, "reject_all"), d.acknowledge(dispute, "cm-1")):
        [refused] = only(out, DisputeActionRejected)
        assert refused.reason == "already_resolved"
        assert decisions(out) == []


def test_only_the_assigned_owner_or_an_admin_may_act() -> None:
    d = tie()
    refusals = d.resolve(dispute_id_for("r2"), "reject_all", actor="dir-1")
    [refused] = only(refusals, DisputeActionRejected)
    assert (refused.reason, refused.action) == ("not_assigned", "resolve")
    [refused] = only(d.acknowledge(dispute_id_for("r2"), "someone"), DisputeActionRejected)
    assert refused.reason == "not_assigned"
    out = d.resolve(dispute_id_for("r2"), "reject_all", actor="root", role="admin")
    assert only(out, DisputeResolved)[0].actor_role == "admin"


def test_unknown_dispute_is_refused() -> None:
    d = tie()
    assert only(d.resolve("nope", "co_sell"), DisputeActionRejected)[0].reason == (
        "unknown_dispute")


def test_distinct_is_only_for_possible_duplicate_reviews() -> None:
    d = tie()
    assert only(d.resolve(dispute_id_for("r2"), "distinct"), DisputeActionRejected)[0].reason == (
        "invalid_resolution")


def test_acknowledgement_is_recorded_once_and_silences_the_reminder() -> None:
    d = tie()
    [ack] = only(d.acknowledge(dispute_id_for("r2"), "cm-1"), DisputeAcknowledgementRecorded)
    assert (ack.level, ack.owner_id) == (1, "cm-1")
    assert only(d.acknowledge(dispute_id_for("r2"), "cm-1"), DisputeActionRejected)[0].reason == (
        "already_acknowledged")
    out = d.run_until(d.now.replace(day=d.now.day + 1, hour=23))
    assert only(out, DisputeReminderDue) == []


def test_a_third_rival_joins_the_open_dispute() -> None:
    d = tie()
    out = d.register("r3", "p-3")
    [joined] = only(out, DisputeJoined)
    assert joined.dispute_id == dispute_id_for("r2")
    assert joined.added_ids == ("r3",)
    assert joined.registration_ids == ("r2", "r1", "r3")
    assert only(out, DisputeOpened) == []
    assert decisions(out, "r3")[0].dispute_id == dispute_id_for("r2")


def test_withdrawn_challenger_makes_the_dispute_moot() -> None:
    d = tie()
    out = d.withdraw("r2", "p-2")
    [resolved] = only(out, DisputeResolved)
    assert resolved.outcome == "moot"
    assert d.status("r1") == "approved"


def test_withdrawn_defender_leaves_the_challenger_approved() -> None:
    d = tie()
    out = d.withdraw("r1", "p-1")
    assert only(out, DisputeResolved)[0].outcome == "moot"
    assert status_of(out, "r2") == ("approved", "no_conflict")


def test_partner_contests_its_rejection_and_wins_by_award() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(days=3)
    d.register("r2", "p-2")
    out = d.contest("r2", "p-2", "dsp-c1")
    [opened] = only(out, DisputeOpened)
    assert (opened.dispute_id, opened.reason) == ("dsp-c1", "contested")
    assert set(opened.registration_ids) == {"r1", "r2"}
    assert status_of(out, "r2") == ("in_review", "contested")
    out = d.resolve("dsp-c1", "award", registration_id="r2")
    assert status_of(out, "r2") == ("approved", "dispute_resolution")
    assert status_of(out, "r1") == ("rejected", "dispute_resolution")


def test_contest_refusals() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(days=3)
    d.register("r2", "p-2")
    assert only(d.contest("r2", "p-9"), DisputeActionRejected)[0].reason == "not_party"
    assert only(d.contest("r1", "p-1"), DisputeActionRejected)[0].reason == "not_disputable"
    assert only(d.contest("rx", "p-1"), DisputeActionRejected)[0].reason == (
        "unknown_registration")
    d.contest("r2", "p-2", "dsp-c1")
    assert only(d.contest("r2", "p-2", "dsp-c2"), DisputeActionRejected)[0].reason == (
        "already_disputed")


def test_a_dispute_id_reveals_none_of_its_registrations() -> None:
    # Partners see dispute ids; a competitor's registration id must not show through.
    d = tie()
    dispute = dispute_id_for("r2")
    assert dispute in d.state.disputes
    assert "r1" not in dispute and "r2" not in dispute
    assert "reg_01jd2v9a1b2c" not in dispute_id_for("reg_01jd2v9a1b2c")
    assert dispute == dispute_id_for("r2")  # deterministic: a replay opens the same one


def test_a_contest_that_carries_on_an_open_dispute_names_it_in_a_field() -> None:
    """p-3 (silver) loses to p-1 (gold) by tier; p-4 (gold) then ties with p-1 and a
    dispute opens over them. p-3's contest opens a dispute that carries on that one's
    level and deadlines: its opening says which one in `carries_on` (the partner view
    reads its deadlines by that field, not by the sentence). A fresh opening carries none,
    and is written without the field, byte for byte as before."""
    d = Driver()
    d.register("r1", "p-1")
    d.later(minutes=10)
    d.register("r3", "p-3", tier="silver")
    assert d.status("r3") == "rejected"
    d.later(minutes=10)
    [fresh] = only(d.register("r4", "p-4"), DisputeOpened)
    assert fresh.carries_on is None and "carries_on" not in fresh.to_data()
    d.later(minutes=10)
    [opened] = only(d.contest("r3", "p-3", "dsp-c1"), DisputeOpened)
    assert opened.carries_on == fresh.dispute_id
    assert opened.due_at == fresh.due_at  # its deadlines are the older dispute's
    assert opened.to_data()["carries_on"] == fresh.dispute_id
    # As the log holds it, and as an event written before the field existed reads.
    assert DisputeOpened.model_validate(opened.to_data()) == opened
    old = {k: v for k, v in opened.to_data().items() if k != "carries_on"}
    assert DisputeOpened.model_validate(old).carries_on is None
