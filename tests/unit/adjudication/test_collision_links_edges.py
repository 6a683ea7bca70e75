"""Edges of find_collisions' link-following that a mutation run left open."""

from __future__ import annotations

from shared.events import AccountsLinked
from tests.unit.adjudication.adjudication_driver import Driver, decisions, only, policy


def _acme_corp_linked_to_acme_com() -> Driver:
    d = Driver(policy=policy(match={"name_only": "decide"}))
    d.register("r1", "p-1", domain="acme.com", name="Acme Corp", country="US")
    d.later(hours=1)
    out = d.register("r2", "p-2", domain=None, name="Acme Corp", country="US",
                     key="name:US:acme")
    assert [(x.account_key, x.canonical_key) for x in only(out, AccountsLinked)] == [
        ("name:US:acme", "dom:acme.com")]
    d.later(days=2)
    return d


def test_a_confident_match_brings_in_the_entries_under_its_linked_keys() -> None:
    d = _acme_corp_linked_to_acme_com()
    [decision] = decisions(d.register("r4", "p-4", domain="acme.com", name="Zeta Holdings",
                                      crm="Z", key="crm:Z"))
    assert (decision.status, decision.rule) == ("rejected", "first_submitted")
    assert [(c.registration_id, c.account_key, c.matched_by, c.confident)
            for c in decision.conflicts] == [
        ("r1", "dom:acme.com", "domain", True), ("r2", "name:US:acme", "domain", True)]


def test_a_key_reached_only_through_a_link_is_not_linked_again_directly() -> None:
    d = _acme_corp_linked_to_acme_com()
    out = d.register("r4", "p-4", domain="acme.com", name="Zeta Holdings", crm="Z",
                     key="crm:Z",
                     motion="referral")
    assert [(x.account_key, x.canonical_key) for x in only(out, AccountsLinked)] == [
        ("crm:Z", "dom:acme.com")]
