"""Precedence and lifecycle at their edges, found by mutation testing (`make mutation`:
each test kills a mutant of `precedence.py` that changed a decision unnoticed) and by the
stateful property tests (the suspended partner's extension, invariant 4)."""

from __future__ import annotations

from datetime import timedelta

from adjudication_driver import START, Driver, decisions, policy


def test_rivals_exactly_one_tie_window_apart_are_still_tied() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(hours=24)  # the default tie window, to the microsecond
    [decision] = decisions(d.register("r2", "p-2"))
    assert (decision.status, decision.rule) == ("in_review", "tie")


def test_an_earlier_submission_outranks_a_later_one_that_reached_the_log_first() -> None:
    d = Driver()
    d.later(days=3)
    d.register("r1", "p-1")
    # Submitted three days before r1, decided after it (log order is not submission order).
    [decision] = decisions(d.register("r2", "p-2", at=START))
    assert (decision.status, decision.rule) == ("in_review", "first_submitted")
    assert d.status("r1") == "approved"


def test_tier_never_separates_a_partner_from_a_direct_opportunity_claim() -> None:
    d = Driver(policy=policy(precedence=["tier", "first_submitted"]))
    d.claim("c1", kind="opportunity", products=("analytics",))
    d.later(hours=1)
    [decision] = decisions(d.register("r1", "p-1", tier="platinum"))
    assert (decision.status, decision.rule) == ("in_review", "tie")


def test_tier_never_separates_a_direct_opportunity_claim_from_a_partner() -> None:
    d = Driver(policy=policy(precedence=["tier", "first_submitted"]))
    d.register("r1", "p-1", tier="platinum")
    d.later(hours=1)
    [decision] = decisions(d.claim("c1", kind="opportunity", products=("analytics",)), "c1")
    assert (decision.status, decision.rule) == ("in_review", "tie")


def test_a_rejection_names_the_strongest_rule_among_those_that_beat_it() -> None:
    d = Driver()
    d.register("r1", "p-1", products=("analytics",))  # the earliest, for analytics
    d.later(days=2)
    d.register("w1", "p-2", products=("storage",))
    d.later(hours=1)
    d.close("w1", "won")  # p-2 is the account's incumbent now
    d.later(hours=1)
    d.register("r2", "p-2", products=("storage",))  # the incumbent, for storage
    d.later(minutes=30)
    [decision] = decisions(d.register("r3", "p-3", products=("analytics", "storage")))
    # Beaten by r1 on first_submitted and by r2 on incumbent: incumbent ranks first.
    assert (decision.status, decision.rule) == ("rejected", "incumbent")
    assert {c.registration_id for c in decision.conflicts} == {"r1", "r2"}


def test_incumbency_won_under_a_linked_key_of_the_same_customer_counts() -> None:
    d = Driver()
    d.register("r1", "p-1", crm="C-1")
    d.later(hours=1)
    d.close("r1", "won")  # p-1 won the account, filed under dom:acme.com
    d.later(hours=1)
    d.register("r2", "p-2", crm="C-1")
    d.later(hours=1)
    # p-1 again, under the CRM key: the same customer (CRM id), another key.
    out = d.register("r3", "p-1", domain=None, crm="C-1", key="crm:C-1")
    [decision] = decisions(out, "r3")
    assert (decision.status, decision.rule) == ("in_review", "incumbent")
    assert timedelta(0) < d.now - START


def test_with_no_tie_window_one_microsecond_earlier_wins() -> None:
    d = Driver(policy=policy(tie_window="PT0S"))
    d.register("r1", "p-1")
    d.later(microseconds=1)
    [decision] = decisions(d.register("r2", "p-2"))
    assert (decision.status, decision.rule) == ("rejected", "first_submitted")


def test_two_tiers_the_policy_does_not_rank_do_not_separate_partners() -> None:
    d = Driver(policy=policy(precedence=["tier", "first_submitted"]))
    d.register("r1", "p-1", tier="bronze")  # neither tier is in tier_order: equal rank
    d.later(hours=1)
    [decision] = decisions(d.register("r2", "p-2", tier="copper"))
    assert (decision.status, decision.rule) == ("in_review", "tie")


def test_the_fallback_puts_the_earlier_submission_first_whatever_the_ids() -> None:
    d = Driver(policy=policy(escalation={"on_final_breach": "first_submitted"}))
    d.register("z1", "p-1")
    d.later(hours=1)  # within the tie window: a tie, which the fallback must still break
    d.register("a2", "p-2")
    out = d.run_until(d.now + timedelta(days=6))
    [resolved] = [e for e in out if type(e).__name__ == "DisputeResolved"]
    assert resolved.approved_ids == ("z1",)
    assert (d.status("z1"), d.status("a2")) == ("approved", "rejected")


def test_the_fallback_breaks_a_tie_to_the_microsecond_by_id() -> None:
    d = Driver(policy=policy(escalation={"on_final_breach": "first_submitted"}))
    d.register("b1", "p-1")
    d.register("a1", "p-2")  # the same instant, the same standing
    out = d.run_until(d.now + timedelta(days=6))
    [resolved] = [e for e in out if type(e).__name__ == "DisputeResolved"]
    assert resolved.approved_ids == ("a1",)


def test_a_suspended_partner_keeps_its_protection_but_cannot_extend_it() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(days=80)  # inside the extension window
    d.partner("p-1", "suspended")
    out = d.extend("r1")
    [refused] = [e for e in out if type(e).__name__ == "RegistrationActionRejected"]
    assert refused.reason == "partner_inactive"
    assert not [e for e in out if type(e).__name__ == "ProtectionExtended"]
    assert d.status("r1") == "approved"
