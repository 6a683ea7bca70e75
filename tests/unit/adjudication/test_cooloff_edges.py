"""Edges of the re-registration cool-off (cooloff.cooling) a mutation run left open."""

from __future__ import annotations

from tests.unit.adjudication.adjudication_driver import Driver, decisions, policy


def _rule(d: Driver, rid: str, partner: str = "p-1", **kw: object) -> str:
    [decided] = decisions(d.register(rid, partner, **kw))  # type: ignore[arg-type]
    return str(decided.rule)


def test_a_non_exclusive_registration_is_never_cooled_off() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(days=1)
    d.withdraw("r1")
    assert _rule(d, "r2", motion="referral") != "reregistration_cooloff"
    assert d.status("r2") != "rejected"


def test_another_partners_ended_registration_does_not_hide_ones_own() -> None:
    d = Driver()
    d.register("r1", "p-2")
    d.later(days=1)
    d.withdraw("r1", "p-2")  # p-2's ended entry is remembered first
    assert _rule(d, "r2", "p-1") == "no_conflict"
    d.later(days=1)
    d.withdraw("r2", "p-1")
    assert _rule(d, "r3", "p-1") == "reregistration_cooloff"


def test_a_disjoint_ended_registration_does_not_hide_an_overlapping_one() -> None:
    d = Driver()
    d.register("r1", "p-1", products=("a",))
    d.register("r2", "p-1", products=("b",))
    d.later(days=1)
    d.withdraw("r1")
    d.withdraw("r2")
    [again] = decisions(d.register("r3", "p-1", products=("b",)))
    assert again.rule == "reregistration_cooloff"
    assert [c.registration_id for c in again.conflicts] == ["r2"]


def test_the_cooloff_lifts_exactly_when_it_ends() -> None:
    d = Driver(policy=policy(reregistration_cooloff="P10D"))
    d.register("r1", "p-1")
    d.later(days=1)
    d.withdraw("r1")
    d.later(days=10, microseconds=-1)
    assert _rule(d, "r2") == "reregistration_cooloff"
    d.later(microseconds=1)
    assert _rule(d, "r3") == "no_conflict"


def test_of_two_cooloffs_lifting_together_the_first_ended_is_named() -> None:
    d = Driver()
    d.register("r1", "p-1", products=("a",))
    d.register("r2", "p-1", products=("b",))
    d.later(days=1)
    d.withdraw("r1")
    d.withdraw("r2")
    [again] = decisions(d.register("r3", "p-1", products=("a", "b")))
    assert again.rule == "reregistration_cooloff"
    assert [c.registration_id for c in again.conflicts] == ["r1"]


def test_the_cooloff_is_that_of_the_policy_the_ended_registration_was_decided_under() -> None:
    d = Driver(policy=policy(reregistration_cooloff="P10D"))
    d.register("r1", "p-1")
    d.later(days=1)
    d.withdraw("r1")
    d.publish(policy(version=5, reregistration_cooloff="P30D"))
    d.later(days=11)
    assert _rule(d, "r2") == "no_conflict"


def test_an_account_scope_protection_cools_off_every_product_after_the_policy_narrows() -> None:
    d = Driver(policy=policy(scope="account"))
    d.register("r1", "p-1", products=("a",))
    d.later(days=1)
    d.withdraw("r1")
    d.publish(policy(version=5, scope="account_product"))
    assert _rule(d, "r2", products=("b",)) == "reregistration_cooloff"


def test_an_account_scope_policy_cools_off_an_ended_product_protection() -> None:
    d = Driver()
    d.register("r1", "p-1", products=("a",))
    d.later(days=1)
    d.withdraw("r1")
    d.publish(policy(version=5, scope="account"))
    assert _rule(d, "r2", products=("b",)) == "reregistration_cooloff"
