"""Edges of promotion on release (release.let_go) a mutation run left open."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.unit.adjudication.adjudication_driver import Driver, decisions, policy


def line_behind_r1(**overrides: Any) -> Driver:
    d = Driver(policy=policy(**overrides))
    d.register("r1", "p-1", tier="platinum")
    d.later(days=3)
    d.register("r2", "p-2", tier="gold")
    d.later(days=2)
    d.register("r3", "p-3", tier="platinum")
    assert d.status("r2") == d.status("r3") == "rejected"
    return d


def test_the_owners_policy_decides_promotion_not_a_later_one() -> None:
    d = line_behind_r1()
    d.publish(policy(version=5, on_release="free", protection_period="P10D"))
    d.register("rx", "p-9", domain="other.com", name="Other Inc")  # v5 is now in force
    out = d.withdraw("r1")
    [promoted] = decisions(out, "r2")
    assert (promoted.status, promoted.rule) == ("approved", "promoted_on_release")
    # A fresh protection period of the policy r2 was decided under (v4), not v5's.
    assert promoted.protected_until == d.now + d.policies[4].protection_period
    assert "(promoted_on_release, policy v4)" in promoted.explanation


def test_a_loser_decided_exactly_at_the_window_start_is_still_in_line() -> None:
    d = line_behind_r1(release_window="P30D")
    r2_decided = d.now - timedelta(days=2)
    d.later(days=28)
    assert d.now - timedelta(days=30) == r2_decided
    out = d.withdraw("r1")
    assert [e.status for e in decisions(out, "r2")] == ["approved"]
    assert decisions(out, "r3") == []


def test_a_promotion_names_the_owner_it_replaces_with_its_own_evidence() -> None:
    d = line_behind_r1()
    out = d.withdraw("r1")
    [promoted] = decisions(out, "r2")
    [ev] = promoted.conflicts
    assert (ev.registration_id, ev.party_id, ev.account_key) == ("r1", "p-1", None)
    assert ev.matched_by == "domain"


def test_a_promotion_filed_under_the_owners_key_by_name_says_name() -> None:
    d = Driver()
    d.register("r1", "p-1", tier="platinum")
    d.later(days=3)
    [lost] = decisions(d.register("r2", "p-2", tier="gold", domain=None, key="dom:acme.com"))
    assert lost.status == "rejected" and lost.conflicts[0].matched_by == "name"
    out = d.withdraw("r1")
    [promoted] = decisions(out, "r2")
    assert promoted.rule == "promoted_on_release"
    [ev] = promoted.conflicts
    assert (ev.registration_id, ev.account_key, ev.matched_by) == ("r1", None, "name")


def test_a_non_exclusive_registration_does_not_block_promotion() -> None:
    d = line_behind_r1()
    [ref] = decisions(d.register("r4", "p-4", motion="referral"))
    assert ref.status == "approved"
    out = d.withdraw("r1")
    assert [e.rule for e in decisions(out, "r2")] == ["promoted_on_release"]


def test_a_blocked_candidate_does_not_stop_the_line() -> None:
    d = Driver()
    d.register("r1", "p-1", products=("a", "b"))
    d.later(days=2)
    d.register("r2", "p-2", products=("a", "c"))
    d.later(days=2)
    d.register("r3", "p-3", products=("b",))
    assert d.status("r2") == d.status("r3") == "rejected"
    assert decisions(d.register("r4", "p-4", products=("c",)))[0].status == "approved"
    out = d.withdraw("r1")
    assert decisions(out, "r2") == []  # r4 holds c
    assert [e.rule for e in decisions(out, "r3")] == ["promoted_on_release"]


def test_a_name_only_promotion_under_its_own_key_says_name() -> None:
    # r2 has no domain: it opened its own name key and lost to r1 by name; promoted after r1
    # ends, its evidence must still say how it matched (by name), not r1's key form.
    d = Driver(policy=policy(match={"name_threshold": 0.9, "review_band": 0.1,
                                    "name_only": "decide"}))
    d.register("r1", "p-1", tier="platinum")
    d.later(days=3)
    [lost] = decisions(d.register("r2", "p-2", tier="gold", domain=None))
    assert (lost.account_key, lost.conflicts[0].matched_by) == ("name:US:Acme Corp", "name")
    [promoted] = decisions(d.withdraw("r1"), "r2")
    assert promoted.rule == "promoted_on_release"
    [ev] = promoted.conflicts
    assert (ev.registration_id, ev.matched_by) == ("r1", "name")
