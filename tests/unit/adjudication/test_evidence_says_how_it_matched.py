"""Evidence names the identifier that really matched (issue 12: a name-only registration
filed under `dom:acme.com` was said to match "by domain, score 1.0"). Found by the stateful
property tests (invariant 6)."""

from __future__ import annotations

from adjudication_driver import Driver, decisions, policy


def test_a_name_only_registration_filed_under_a_domain_key_is_matched_by_name() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="acme.com", name="Acme Corp")
    d.later(days=3)
    [decision] = decisions(d.register("r2", "p-2", domain=None, name="ACME Corp.",
                                      key="dom:acme.com"))
    assert decision.rule == "first_submitted"
    [conflict] = decision.conflicts
    assert (conflict.registration_id, conflict.matched_by) == ("r1", "name")
    assert conflict.score >= 0.9


def test_another_domain_of_the_customer_is_matched_by_its_crm_id() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="acme.com", crm="C-1")
    d.later(days=3)
    [decision] = decisions(d.register("r2", "p-2", domain="acme.io", crm="C-1",
                                      key="dom:acme.com"))
    [conflict] = decision.conflicts
    assert (conflict.matched_by, conflict.score) == ("crm_account_id", 1.0)


def test_the_same_domain_is_still_matched_by_domain() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(days=3)
    [decision] = decisions(d.register("r2", "p-2"))
    [conflict] = decision.conflicts
    assert (conflict.matched_by, conflict.score) == ("domain", 1.0)


def test_a_settled_dispute_names_the_name_match_on_both_sides() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="acme.com", name="Acme Corp")
    d.later(hours=2)
    out = d.register("r2", "p-2", domain=None, name="Acme Corp", key="dom:acme.com")
    [opened] = [e for e in out if type(e).__name__ == "DisputeOpened"]
    settled = d.resolve(opened.dispute_id, "award", registration_id="r1")
    for rid, other in (("r1", "r2"), ("r2", "r1")):
        [decision] = decisions(settled, rid)
        [conflict] = decision.conflicts
        assert (conflict.registration_id, conflict.matched_by) == (other, "name")


def test_a_contest_names_the_crm_id_that_joined_the_customer() -> None:
    d = Driver()
    d.register("r1", "p-1", domain="acme.com", crm="C-1", tier="platinum")
    d.later(days=3)
    d.register("r2", "p-2", domain="acme.io", crm="C-1", key="dom:acme.com")  # rejected
    [decision] = decisions(d.contest("r2", "p-2"), "r2")
    assert decision.status == "in_review"
    [conflict] = decision.conflicts
    assert (conflict.registration_id, conflict.matched_by) == ("r1", "crm_account_id")


def test_a_contest_decision_names_the_policy_version_it_carries() -> None:
    d = Driver()
    d.register("r1", "p-1", tier="platinum")
    d.later(days=3)
    d.register("r2", "p-2")  # rejected under v4
    d.publish(policy(version=5))
    [decision] = decisions(d.contest("r2", "p-2"), "r2")
    assert decision.rule == "contested"
    assert f"(contested, policy v{decision.policy_version})" in decision.explanation
