"""The decide shortcuts (one index look-up per registration, `matching.Lookup.filed`; the
cool-off's `_may_reach_let_go`; no `sort_out` when only the own key matched,
`matching._only_own`) only skip work: on any stream, decisions are those of the
long way (asking the index again after filing, always sorting out the customer), and a
snapshot/restore mid-stream changes nothing (architecture invariant 3).

Accounts are drawn from a tiny alphabet so that registrations share CRM ids, domains and
names under other keys, names sit at the review band's edges, keys link, and the same
partner re-files a customer it let go under another key."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from contextlib import ExitStack
from datetime import timedelta
from typing import Any
from unittest import mock

from adjudication_driver import Driver, decisions, policy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.adjudication.domain import AdjudicationState, cooloff, disputes, matching, outcomes
from services.adjudication.domain import adjudicate as adjudicate_module
from services.adjudication.domain.state import Entry
from shared.accounts import AccountIdentity
from shared.events import ConflictEvidence, RegistrationWithdrawn
from shared.policy import Policy

# "acme" vs "acne" scores 0.75; "acme corp" normalises to "acme"; "acme group" / "acme
# groups" 0.95; "blue acme" and "acme blue" are the same tokens.
NAMES = ["Acme", "Acme Corp", "Acne", "Acme Group", "Acme Groups", "Blue Acme", "Acme Blue",
         "Globex", None]
DOMAINS = ["acme.com", "acme.io", "globex.com", None]
CRMS = ["C1", "C2", None]
COUNTRIES = ["US", "DE", None]
PARTNERS = ["p-1", "p-2"]

register = st.tuples(
    st.just("register"), st.sampled_from(PARTNERS), st.sampled_from(NAMES),
    st.sampled_from(DOMAINS), st.sampled_from(CRMS), st.sampled_from(COUNTRIES),
    st.sampled_from(["auto", "name", "crm", "dom-other"]),
    st.sampled_from([("analytics",), ("crm",)]),
)
withdraw = st.tuples(st.just("withdraw"), st.integers(0, 30))
later = st.tuples(st.just("later"), st.integers(1, 40))
months = st.tuples(st.just("later"), st.just(1000))  # past retention: entries forgotten
ops_strategy = st.lists(st.one_of(register, register, withdraw, later, months), min_size=1,
                        max_size=30)


def _key(mode: str, name: str | None, domain: str | None, crm: str | None,
         country: str | None) -> str | None:
    identity = AccountIdentity.from_raw(crm_account_id=crm, domain=domain, name=name,
                                        country=country)
    if mode == "name" and identity.name and identity.country:
        return f"name:{identity.country}:{identity.name.replace(' ', '-')}"
    if mode == "crm" and crm:
        return f"crm:{crm}"
    if mode == "dom-other":
        return "dom:other.com"  # filed under a domain key it does not carry
    if identity.domain:
        return f"dom:{identity.domain}"
    if identity.crm_account_id:
        return f"crm:{identity.crm_account_id}"
    if identity.name and identity.country:
        return f"name:{identity.country}:{identity.name.replace(' ', '-')}"
    return None


def _run(ops: list[tuple[Any, ...]], pol: Policy, restore_at: int | None) -> list[str]:
    driver = Driver(policy=pol)
    registered: list[tuple[str, str, str]] = []
    for i, op in enumerate(ops):
        if restore_at == i:
            driver.state = pickle.loads(pickle.dumps(driver.state))
        if op[0] == "register":
            _, partner, name, domain, crm, country, mode, products = op
            key = _key(mode, name, domain, crm, country)
            if key is None:
                continue
            rid = f"r{i}"
            driver.register(rid, partner, domain=domain, name=name, country=country, crm=crm,
                            key=key, products=products)
            registered.append((rid, partner, key))
        elif op[0] == "withdraw" and registered:
            rid, partner, key = registered[op[1] % len(registered)]
            driver.feed(RegistrationWithdrawn(registration_id=rid, partner_id=partner,
                                              account_key=key, withdrawn_at=driver.now))
        elif op[0] == "later":
            driver.later(hours=op[1] * 3)
    driver.run_until(driver.now + timedelta(days=1))
    kept = Counter(entry.account_key for entry in driver.state.entries.values())
    assert driver.state.filed == dict(kept)  # per-key counts: exact, never negative
    return [e.model_dump_json() for e in driver.log]


class _Checked(matching.Lookup):
    """`Lookup.filed`, checked against asking the index again right after the filing."""

    state: AdjudicationState
    policy: Policy
    raw_name: str | None

    def filed(self, account_key: str) -> matching.Lookup:
        derived = super().filed(account_key)
        asked = matching.lookup(self.state, self.identity, self.policy, self.raw_name)
        assert (derived.exact, derived.names) == (asked.exact, asked.names), account_key
        return derived


def _checked(state: AdjudicationState, identity: AccountIdentity,
             pol: Policy, raw_name: str | None = None) -> matching.Lookup:
    real = matching.lookup(state, identity, pol, raw_name)
    found = _Checked(real.identity, real.exact, real.names)
    object.__setattr__(found, "state", state)
    object.__setattr__(found, "policy", pol)
    object.__setattr__(found, "raw_name", raw_name)
    return found


_cooling, _find_collisions = cooloff.cooling, adjudicate_module.find_collisions


def _long_way(ops: list[tuple[Any, ...]], pol: Policy) -> list[str]:
    """Before the shortcuts: the cool-off and collisions ask the index themselves (no
    `asked`), so the customer is always sorted out, even when only the new entry's own
    key matched (`matching._only_own`)."""
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(matching, "_only_own", lambda *_: False))
        stack.enter_context(mock.patch.object(
            cooloff, "cooling", lambda *a, **_: _cooling(*a[:5])))
        stack.enter_context(mock.patch.object(
            adjudicate_module, "find_collisions", lambda *a, **_: _find_collisions(*a[:5])))
        return _run(ops, pol, None)


POLICIES = [
    policy(),
    policy(match={"name_threshold": 0.95, "review_band": 0.2}),
    policy(match={"name_threshold": 0.75, "review_band": 0.0, "name_only": "decide"}),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_strategy, which=st.integers(0, len(POLICIES) - 1),
       restore=st.integers(0, 30))
def test_decide_shortcuts_decide_as_the_long_way_also_after_a_restore(
    ops: list[tuple[Any, ...]], which: int, restore: int
) -> None:
    pol = POLICIES[which]
    slow = _long_way(ops, pol)
    with mock.patch.object(adjudicate_module, "lookup", _checked):
        assert _run(ops, pol, None) == slow
    assert _run(ops, pol, restore) == slow


def test_cooloff_bars_a_refiling_whose_let_go_entry_is_reached_only_through_a_link() -> None:
    # p-1 names the customer by name only; p-2's registration at acme.com with the same
    # name links the two keys. p-1 withdraws, then files the domain alone: its key has no
    # let-go entry and its account matches none by itself -- only the link reaches r1.
    driver = Driver(policy=policy(match={"name_only": "decide"}))
    driver.register("r1", "p-1", domain=None, name="Acme", country="US", key="name:US:acme")
    driver.later(hours=1)
    driver.register("r2", "p-2", domain="acme.com", name="Acme", country="US")
    assert driver.state.links.get("dom:acme.com") == ("name:US:acme",)
    driver.later(hours=1)
    driver.feed(RegistrationWithdrawn(registration_id="r1", partner_id="p-1",
                                      account_key="name:US:acme", withdrawn_at=driver.now))
    driver.later(hours=1)
    out = driver.register("r3", "p-1", domain="acme.com", name=None, country="US")
    assert [(d.status, d.rule) for d in decisions(out)] == [
        ("rejected", "reregistration_cooloff")]


def test_own_key_evidence_prefers_a_domain_to_a_name_matched_in_the_loose_index() -> None:
    # Under a non-domain key, a registration with a domain and a name is matched twice
    # (the domain among all accounts, the name among non-domain keys): both score 1.0 on
    # its own key, and the domain is the stronger evidence.
    driver = Driver()
    driver.register("r1", "p-1", domain="acme.com", name="Acme", country="US", crm="C1",
                    key="crm:C1")
    driver.later(hours=1)
    out = driver.register("r2", "p-2", domain="acme.com", name="Acme", country="US",
                          key="crm:C1")
    assert [(c.registration_id, c.matched_by) for c in decisions(out)[0].conflicts] == [
        ("r1", "domain")]


def _file_everything(self: AdjudicationState, account_key: str,
                     identity: AccountIdentity) -> None:
    """Before the loose index held names only: it filed each non-domain key's CRM id and
    domain too (never looked up there)."""
    if self._indexed.get(account_key) == identity:
        return
    self._indexed[account_key] = identity
    self.index.add(account_key, identity)
    if not account_key.startswith("dom:"):
        self.loose_index.add(account_key, identity)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_strategy, which=st.integers(0, len(POLICIES) - 1))
@example(ops=[  # a name filed under a CRM key, then matched by a registration with a domain
    ("register", "p-1", "Acme", None, "C1", "US", "crm", ("analytics",)), ("later", 1),
    ("register", "p-2", "Acme Corp", "acme.io", None, "US", "auto", ("analytics",))],
    which=0)
def test_the_loose_index_decides_alike_holding_names_only(
    ops: list[tuple[Any, ...]], which: int
) -> None:
    pol = POLICIES[which]
    with mock.patch.object(AdjudicationState, "index_account", _file_everything):
        everything = _run(ops, pol, None)
    assert _run(ops, pol, None) == everything


class _LongFellows:
    """`outcomes.Fellows` the long way: each decision's evidence built afresh."""

    def __init__(self, members: list[Entry], state: AdjudicationState) -> None:
        self.members = members
        self.state = state

    def of(self, i: int) -> list[ConflictEvidence]:
        decided = self.members[i]
        return [outcomes.fellow_evidence(self.state, m, decided.account_key, decided)
                for m in self.members if m is not decided]


def _settled_the_long_way(ops: list[tuple[Any, ...]], pol: Policy) -> list[str]:
    """Before the settlement memos: each decision of a settlement builds the evidence of
    every other member afresh, and each pair weighed asks for both keys' customers."""
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(outcomes, "Fellows", _LongFellows))
        stack.enter_context(mock.patch.object(
            disputes, "_customer", lambda state, key, customers: state.customer(key)))
        return _run(ops, pol, None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_strategy, which=st.integers(0, len(POLICIES) - 1))
def test_settlements_decide_as_the_long_way(ops: list[tuple[Any, ...]], which: int) -> None:
    pol = POLICIES[which]
    assert _run(ops, pol, None) == _settled_the_long_way(ops, pol)


def test_a_fallback_settlement_names_every_other_member_as_the_long_way_does() -> None:
    # Four partners tie on one customer under two keys (its domain's, its CRM id's): one
    # dispute of four, settled by the final-breach fallback, whose four decisions each
    # name the three others.
    ops: list[tuple[Any, ...]] = [
        ("register", "p-1", "Acme", "acme.com", "C1", "US", "auto", ("analytics",)),
        ("register", "p-2", "Acme", "acme.com", "C1", "US", "crm", ("analytics",)),
        ("register", "p-3", "Acme", "acme.com", "C1", "US", "auto", ("analytics",)),
        ("register", "p-4", "Acme", "acme.com", "C1", "US", "crm", ("analytics",)),
        ("later", 1000),
    ]
    pol = POLICIES[0]
    fast = _run(ops, pol, None)
    assert fast == _settled_the_long_way(ops, pol)
    resolved = [found for found in map(json.loads, fast)
                if found.get("outcome") == "final_breach_fallback"]
    assert [len(found["registration_ids"]) for found in resolved] == [4]
    named = [len(found["conflicts"]) for found in map(json.loads, fast)
             if found.get("rule") == "final_breach_fallback" and "conflicts" in found]
    assert named == [3, 3, 3, 3]


@settings(max_examples=300, deadline=None)
@given(members=st.lists(st.tuples(
    st.sampled_from(["dom:acme.com", "crm:C1", "name:US:acme", "dom:acme.io"]),
    st.sampled_from([None, ("name", 0.93), ("name", 0.97), ("domain", 1.0),
                     ("crm_account_id", 1.0)]),
    st.sampled_from(["p-1", "p-2", "rep-1"])), min_size=1, max_size=8),
    links=st.lists(st.tuples(
        st.sampled_from([("crm:C1", "dom:acme.com"), ("name:US:acme", "dom:acme.com"),
                         ("crm:C1", "dom:acme.io"), ("name:US:acme", "crm:C1")]),
        st.sampled_from([("name", 0.93), ("domain", 1.0), ("crm_account_id", 1.0)])),
        max_size=3))
def test_fellows_is_member_evidence_for_every_decision_of_a_settlement(
    members: list[tuple[str, tuple[str, float] | None, str]],
    links: list[tuple[tuple[str, str], tuple[str, float]]],
) -> None:
    state = AdjudicationState()
    for (alias, canonical), (matched_by, score) in links:  # members' keys linked by ...
        state.link(alias, canonical, matched_by, score, "r-link", 0)
    entries = [Entry(id=f"r{i}", account_key=key, party_type="direct" if party == "rep-1"
                     else "partner", party_id=party, kind="registration", motion="resell",
                     products=None, submitted_at=i, tier="gold", policy_version=1,
                     status="in_review", evidence=evidence)
               for i, (key, evidence, party) in enumerate(members)]
    fellows = outcomes.Fellows(entries, state)  # one per settlement, asked by each decision
    for i, decided in enumerate(entries):
        expected = [outcomes.fellow_evidence(state, m, decided.account_key, decided)
                    for m in entries if m is not decided]
        found = fellows.of(i)
        assert [e.model_dump_json() for e in found] == [
            e.model_dump_json() for e in expected]
