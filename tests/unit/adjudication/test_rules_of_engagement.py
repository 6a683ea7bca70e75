"""The first decision on a registration or claim: precedence, scope, motions, duplicates."""

from __future__ import annotations

from datetime import timedelta

from adjudication_driver import Driver, decisions, only, policy

from shared.events import DisputeOpened, RegistrationDecided


def test_first_registration_is_approved_and_protected_for_the_protection_period() -> None:
    d = Driver()
    [decision] = decisions(d.register("r1"))
    assert decision.status == "approved"
    assert decision.rule == "no_conflict"
    assert decision.policy_version == 4
    assert decision.protected_until == d.now + timedelta(days=90)
    assert decision.scope_products == ("analytics",)
    assert "(no_conflict, policy v4)" in decision.explanation


def test_later_rival_is_rejected_by_first_submitted() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(days=3)
    [decision] = decisions(d.register("r2", "p-2", tier="platinum"))
    assert decision.status == "rejected"
    assert decision.rule == "first_submitted"
    assert decision.explanation == (
        "Rejected: the account acme.com is protected by another partner's registration "
        "submitted 3 days earlier (first_submitted, policy v4)."
    )
    [conflict] = decision.conflicts
    assert (conflict.registration_id, conflict.matched_by, conflict.score) == ("r1", "domain", 1.0)


def test_rivals_within_the_tie_window_with_equal_standing_open_a_dispute() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(hours=2)
    out = d.register("r2", "p-2")
    [decision] = decisions(out)
    assert (decision.status, decision.rule) == ("in_review", "tie")
    [opened] = only(out, DisputeOpened)
    assert opened.reason == "tie"
    assert opened.registration_ids == ("r2", "r1")
    assert (opened.level, opened.owner_id) == (1, "cm-1")
    assert opened.due_at == d.now + timedelta(days=2)
    assert d.status("r1") == "approved"  # never taken away automatically


def test_higher_tier_rejects_a_later_lower_tier_rival_within_the_tie_window() -> None:
    d = Driver()
    d.register("r1", "p-1", tier="platinum")
    d.later(hours=1)
    [decision] = decisions(d.register("r2", "p-2", tier="silver"))
    assert (decision.status, decision.rule) == ("rejected", "tier")
    assert "higher tier" in decision.explanation


def test_challenger_beating_an_approved_registration_opens_a_dispute_not_a_takeover() -> None:
    d = Driver()
    d.register("r1", "p-1", tier="silver")
    d.later(hours=1)
    out = d.register("r2", "p-2", tier="platinum")
    [decision] = decisions(out)
    assert (decision.status, decision.rule) == ("in_review", "tier")
    assert only(out, DisputeOpened)[0].reason == "challenger"
    assert d.status("r1") == "approved"


def test_precedence_order_comes_from_the_policy() -> None:
    d = Driver(policy=policy(precedence=["tier", "first_submitted"]))
    d.register("r1", "p-1", tier="silver")
    d.later(days=5)
    [decision] = decisions(d.register("r2", "p-2", tier="platinum"))
    assert (decision.status, decision.rule) == ("in_review", "tier")


def test_same_partner_same_scope_is_a_duplicate() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(days=1)
    [decision] = decisions(d.register("r2", "p-1"))
    assert (decision.status, decision.rule) == ("rejected", "duplicate")
    assert decision.conflicts[0].registration_id == "r1"


def test_account_product_scope_lets_disjoint_products_coexist() -> None:
    d = Driver()
    d.register("r1", "p-1", products=("analytics",))
    d.later(days=1)
    [other] = decisions(d.register("r2", "p-2", products=("storage",)))
    assert (other.status, other.rule) == ("approved", "no_conflict")
    d.later(days=2)
    [overlap] = decisions(d.register("r3", "p-3", products=("storage", "analytics")))
    assert overlap.status == "rejected"
    assert {c.registration_id for c in overlap.conflicts} == {"r1", "r2"}


def test_account_scope_makes_any_products_collide() -> None:
    d = Driver(policy=policy(scope="account"))
    d.register("r1", "p-1", products=("analytics",))
    d.later(days=2)
    [decision] = decisions(d.register("r2", "p-2", products=("storage",)))
    assert (decision.status, decision.rule) == ("rejected", "first_submitted")


def test_non_exclusive_motions_never_collide_with_exclusive_owners() -> None:
    d = Driver()
    d.register("r1", "p-1", motion="resell")
    d.later(days=1)
    [referral] = decisions(d.register("r2", "p-2", motion="referral"))
    assert (referral.status, referral.rule) == ("approved", "non_exclusive")
    [influence] = decisions(d.register("r3", "p-3", motion="influence"))
    assert (influence.status, influence.rule) == ("approved", "non_exclusive")
    d.later(days=1)
    [late] = decisions(d.register("r4", "p-4", motion="resell"))
    assert late.rule == "first_submitted"
    assert [c.registration_id for c in late.conflicts] == ["r1"]


def test_influence_claim_twice_by_the_same_partner_is_a_duplicate() -> None:
    d = Driver()
    d.register("r1", "p-1", motion="influence")
    [again] = decisions(d.register("r2", "p-1", motion="influence"))
    assert (again.status, again.rule) == ("rejected", "duplicate")


def test_policy_can_make_referral_exclusive() -> None:
    d = Driver(policy=policy(exclusive_motions=["resell", "referral"]))
    d.register("r1", "p-1", motion="resell")
    d.later(days=2)
    [decision] = decisions(d.register("r2", "p-2", motion="referral"))
    assert decision.rule == "first_submitted"


def test_direct_named_account_claim_beats_a_later_partner() -> None:
    d = Driver()
    [claim] = decisions(d.claim("c1"))
    assert (claim.status, claim.rule, claim.protected_until) == ("approved", "no_conflict", None)
    d.later(days=1)
    [decision] = decisions(d.register("r1", "p-1"))
    assert (decision.status, decision.rule) == ("rejected", "direct_named_account")
    assert decision.conflicts[0].party_type == "direct"
    assert "named account of the direct sales team" in decision.explanation


def test_named_account_claim_against_an_approved_partner_opens_a_dispute() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(days=1)
    out = d.claim("c1")
    [claim] = decisions(out)
    assert (claim.status, claim.rule) == ("in_review", "direct_named_account")
    assert d.status("r1") == "approved"
    assert only(out, DisputeOpened)[0].registration_ids == ("c1", "r1")


def test_direct_opportunity_claim_competes_by_first_submitted() -> None:
    d = Driver()
    d.claim("c1", kind="opportunity", products=("analytics",))
    d.later(days=2)
    [decision] = decisions(d.register("r1", "p-1", products=("analytics",)))
    assert (decision.status, decision.rule) == ("rejected", "first_submitted")
    assert "a direct opportunity claim" in decision.explanation
    [other] = decisions(d.register("r2", "p-2", products=("storage",)))
    assert other.status == "approved"


def test_suspended_or_exited_partner_is_rejected_partner_inactive() -> None:
    d = Driver()
    [suspended] = decisions(d.register("r1", "p-1", status="suspended"))
    assert (suspended.status, suspended.rule) == ("rejected", "partner_inactive")
    d.partner("p-2", "exited")
    [exited] = decisions(d.register("r2", "p-2", status="active"))
    assert (exited.status, exited.rule) == ("rejected", "partner_inactive")
    [onboarding] = decisions(d.register("r3", "p-3", status="onboarding"))
    assert onboarding.status == "approved"


def test_rejection_names_the_strongest_rule_among_all_that_beat_it() -> None:
    d = Driver()
    d.register("r1", "p-1", products=("a",))
    d.claim("c1", kind="named_account", at=d.now)  # direct claim in dispute with r1
    d.later(days=3)
    [decision] = decisions(d.register("r2", "p-2", products=("a",)))
    assert decision.rule == "direct_named_account"
    assert {c.registration_id for c in decision.conflicts} == {"r1", "c1"}


def test_same_submission_logged_twice_is_decided_once() -> None:
    d = Driver()
    first = d.register("r1", "p-1")
    again = d.register("r1", "p-1")
    assert len(decisions(first)) == 1
    assert decisions(again) == []


def test_every_decision_is_a_registration_or_claim_decision_with_rule_and_version() -> None:
    d = Driver()
    d.register("r1")
    for e in d.log:
        assert isinstance(e, RegistrationDecided)
        assert e.rule and e.policy_version == 4


def test_each_registration_is_decided_by_the_policy_version_stamped_on_it() -> None:
    d = Driver()
    d.register("r1", "p-1", tier="silver")
    d.publish(policy(version=5, precedence=["tier", "first_submitted"]))
    d.later(days=5)
    [decision] = decisions(d.register("r2", "p-2", tier="platinum"))
    assert (decision.rule, decision.policy_version) == ("tier", 5)
    assert "policy v5" in decision.explanation
