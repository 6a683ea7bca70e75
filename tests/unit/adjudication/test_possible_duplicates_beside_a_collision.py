"""Rule 7 (session 22): a possible duplicate next to a confident collision joins its dispute.

A newcomer R that collides confidently with an approved C1 goes to a person; when R is also
a possible duplicate of another approved C2 (here R carries C1's CRM id on C2's domain:
same domain, different CRM id), C2 used to ride along as evidence only. An award to R then
rejected C1 but left C2 approved: R and C2 held the same domain's customer and no person
ever decided between them. Now C2 is a member (flagged, the dispute's reason the
collision's), so the person's settlement covers it; a settlement, a person's or the
final-breach fallback's, weighs it against R alone. Each test drives the real `decide`
through the worker-like driver.
"""

from __future__ import annotations

from typing import Any

from adjudication_driver import Driver, decisions, only, policy

from shared.events import DisputeJoined, DisputeOpened, DisputeResolved


def _collision_beside_a_possible_duplicate(**overrides: Any) -> tuple[Driver, str]:
    """c2 (001SOY at soylent.com) and c1 (CRM-R, no domain) approved, two customers; r
    (CRM-R at soylent.com, a tier above c1) beats c1 by tier and is c2's possible
    duplicate. Returns the driver and the dispute's id. (c1 has its own name: under the
    same name with no domain it would be c2's possible duplicate itself, session 26.)"""
    d = Driver(policy=policy(**overrides))
    [c2] = decisions(d.register("c2", "p-2", domain="soylent.com", name="Soylent Corp",
                                crm="001SOY", key="crm:001SOY", tier="gold"))
    d.later(days=2)
    [c1] = decisions(d.register("c1", "p-1", domain=None, name="Soylent Foods", crm="CRM-R",
                                key="crm:CRM-R", tier="silver"))
    assert (c2.status, c1.status) == ("approved", "approved")
    d.later(minutes=1)
    out = d.register("r", "p-3", domain="soylent.com", name="Soylent Corp", crm="CRM-R",
                     key="crm:CRM-R", tier="platinum")
    [decided] = decisions(out, "r")
    assert (decided.status, decided.rule, decided.flags) == (
        "in_review", "tier", ("possible_duplicate",))
    [opened] = only(out, DisputeOpened)
    return d, opened.dispute_id


def test_a_possible_duplicate_beside_a_collision_joins_its_dispute_flagged() -> None:
    d, dispute_id = _collision_beside_a_possible_duplicate()
    [opened] = only(d.log, DisputeOpened)
    assert set(opened.registration_ids) == {"r", "c1", "c2"}
    assert opened.reason == "challenger"  # the collision's reason, not a review's
    confident = {e.registration_id: e.confident for e in opened.evidence}
    assert confident == {"c1": True, "c2": False}
    assert d.state.disputes[dispute_id].flagged == (("c2", "r"),)
    assert d.status("c2") == "approved"  # joining takes nothing away


def test_award_to_the_newcomer_takes_away_its_possible_duplicate_too() -> None:
    d, dispute_id = _collision_beside_a_possible_duplicate()
    out = d.resolve(dispute_id, "award", registration_id="r")
    [resolved] = only(out, DisputeResolved)
    assert resolved.approved_ids == ("r",)
    assert set(resolved.rejected_ids) == {"c1", "c2"}
    assert (d.status("r"), d.status("c1"), d.status("c2")) == (
        "approved", "rejected", "rejected")


def test_award_to_the_collision_keeps_the_possible_duplicate_it_is_separated_from() -> None:
    # c1 (CRM-R) and c2 (001SOY) are different customers by identifiers, none shared: an
    # award to c1 cannot take c2 away; r loses.
    d, dispute_id = _collision_beside_a_possible_duplicate()
    d.resolve(dispute_id, "award", registration_id="c1")
    assert (d.status("r"), d.status("c1"), d.status("c2")) == (
        "rejected", "approved", "approved")


def test_award_to_the_possible_duplicate_rejects_the_newcomer() -> None:
    d, dispute_id = _collision_beside_a_possible_duplicate()
    d.resolve(dispute_id, "award", registration_id="c2")
    assert (d.status("r"), d.status("c1"), d.status("c2")) == (
        "rejected", "approved", "approved")


def test_distinct_is_still_refused_on_the_collision() -> None:
    d, dispute_id = _collision_beside_a_possible_duplicate()
    d.resolve(dispute_id, "distinct")
    assert d.state.disputes[dispute_id].status == "open"
    assert (d.status("r"), d.status("c1"), d.status("c2")) == (
        "in_review", "approved", "approved")


def test_final_breach_fallback_weighs_a_flagged_member_against_its_newcomer_only() -> None:
    # The fallback's precedence takes c2 first (the earliest on soylent.com), then r would
    # overlap it and c1 too. r, c2's possible duplicate, loses to it; c1 stood beside c2
    # before and is not weighed against it, so it keeps its approval.
    d, _ = _collision_beside_a_possible_duplicate(
        escalation={"on_final_breach": "precedence"})
    d.later(days=30)
    out = d.run_until(d.now)
    [resolved] = only(out, DisputeResolved)
    assert resolved.outcome == "final_breach_fallback"
    assert set(resolved.approved_ids) == {"c2", "c1"}
    assert resolved.rejected_ids == ("r",)
    [kept] = decisions(out, "c1")
    assert kept.status == "approved"
    assert "not weighed against this one" in kept.explanation


def test_final_breach_fallback_that_takes_the_newcomer_takes_its_possible_duplicate() -> None:
    # By tier first (r is platinum, c2 gold, c1 silver) the fallback takes r: c1 loses to
    # it, and so does c2, r's possible duplicate on soylent.com, the one automatic take-over
    # the policy chose (before, c2 stayed approved beside r: two owners of one domain).
    d, _ = _collision_beside_a_possible_duplicate(
        precedence=["tier", "first_submitted"], escalation={"on_final_breach": "precedence"})
    d.later(days=30)
    out = d.run_until(d.now)
    [resolved] = only(out, DisputeResolved)
    assert resolved.approved_ids == ("r",)
    assert set(resolved.rejected_ids) == {"c1", "c2"}


def test_a_flagged_member_disputes_with_no_one_once_its_newcomer_leaves() -> None:
    # r withdraws: c1 and c2 stood side by side before and are not weighed against each
    # other, so the dispute is moot and both keep their approvals.
    d, _ = _collision_beside_a_possible_duplicate()
    out = d.withdraw("r", "p-3")
    [resolved] = only(out, DisputeResolved)
    assert resolved.outcome == "moot"
    assert (d.status("c1"), d.status("c2")) == ("approved", "approved")


def test_a_flagged_member_drawn_in_confidently_is_weighed_by_the_fallback() -> None:
    # r2 (001SOY: c2's customer, confidently) outranks c2 by tier and joins the dispute:
    # c2 is no longer there only as r's possible duplicate, so the fallback weighs it like
    # any other member (first_submitted: c2 is the earliest and wins its customer's scope).
    d, dispute_id = _collision_beside_a_possible_duplicate(
        precedence=["tier", "first_submitted"],
        escalation={"on_final_breach": "first_submitted"})
    out = d.register("r2", "p-4", domain="soylent.com", name="Soylent Corp", crm="001SOY",
                     key="crm:001SOY", tier="platinum")
    [joined] = only(out, DisputeJoined)
    assert joined.dispute_id == dispute_id and "r2" in joined.added_ids
    assert d.state.disputes[dispute_id].flagged == ()
    d.later(days=30)
    out = d.run_until(d.now)
    [resolved] = only(out, DisputeResolved)
    assert "c2" in resolved.approved_ids
    assert {"r", "r2"} <= set(resolved.rejected_ids)


def test_a_collision_without_possible_duplicates_opens_the_same_dispute_as_before() -> None:
    d = Driver()
    d.register("c1", "p-1", domain=None, name="Soylent Corp", crm="CRM-R", key="crm:CRM-R",
               tier="silver")
    d.later(minutes=1)
    out = d.register("r", "p-3", domain="soylent.com", name="Soylent Corp", crm="CRM-R",
                     key="crm:CRM-R", tier="platinum")
    [opened] = only(out, DisputeOpened)
    assert opened.registration_ids == ("r", "c1")
    assert all(e.confident for e in opened.evidence)
    assert d.state.disputes[opened.dispute_id].flagged == ()


def test_a_second_newcomer_beside_the_flagged_member_is_weighed_against_it_too() -> None:
    # r3 (CRM-Q at soylent.com) collides with c3 (CRM-Q) and is c2's possible duplicate
    # while c2 already sits in r's dispute only as r's: c3's collision joins that dispute
    # and c2 is now weighed against r and r3 both, so an award to r3 takes it away.
    d, dispute_id = _collision_beside_a_possible_duplicate()
    d.later(days=1)
    d.register("c3", "p-5", domain=None, name="Soylent Labs", crm="CRM-Q", key="crm:CRM-Q",
               tier="silver")
    d.later(minutes=1)
    out = d.register("r3", "p-6", domain="soylent.com", name="Soylent Corp", crm="CRM-Q",
                     key="crm:CRM-Q", tier="platinum")
    [decided] = decisions(out, "r3")
    assert (decided.status, decided.flags) == ("in_review", ("possible_duplicate",))
    assert d.state.entries["r3"].dispute_id == dispute_id  # joined r's dispute
    assert ("c2", "r3") in d.state.disputes[dispute_id].flagged
    d.resolve(dispute_id, "award", registration_id="r3")
    assert (d.status("r3"), d.status("c2")) == ("approved", "rejected")
