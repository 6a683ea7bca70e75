"""A registration asks the account index once: the answer after its own facts are filed is
derived (`matching.Lookup.filed`), and must be what the index itself would answer."""

from __future__ import annotations

from typing import Any

import pytest
from adjudication_workload import generate, workload_policies

from services.adjudication.domain import AdjudicationState, DecisionContext, decide, matching
from services.adjudication.domain import adjudicate as adjudicate_module
from services.adjudication.domain.decide import policy_version_of


@pytest.mark.parametrize(("seed", "n_accounts"), [(3, 300), (8, 2500)])
def test_derived_answer_after_filing_equals_asking_the_index_again(
    monkeypatch: pytest.MonkeyPatch, seed: int, n_accounts: int
) -> None:
    log, _ = generate(6000, seed=seed, n_accounts=n_accounts)
    policies = workload_policies()
    state = AdjudicationState()
    checked: list[int] = [0, 0]
    real_lookup = matching.lookup

    def checking_lookup(st: AdjudicationState, identity: Any, policy: Any,
                        raw_name: str | None = None) -> matching.Lookup:
        before = real_lookup(st, identity, policy, raw_name)

        class Checked(matching.Lookup):
            def filed(self, account_key: str) -> matching.Lookup:
                derived = before.filed(account_key)
                # Called right after the identity was filed: ask the index again.
                asked = real_lookup(st, identity, policy, raw_name)
                assert (derived.exact, derived.names) == (asked.exact, asked.names), account_key
                checked[0] += 1
                checked[1] += any(m.account_key == account_key for m in derived.matches)
                return derived

        return Checked(before.identity, before.exact, before.names)

    monkeypatch.setattr(adjudicate_module, "lookup", checking_lookup)
    for i, (event, at) in enumerate(log):
        version = policy_version_of(event)
        decide(state, event, DecisionContext(
            f"e{i}", at, policies[version] if version is not None else None))
    assert checked[0] > 2000  # registrations and claims were checked
    assert checked[1] == checked[0]  # and the filed key is always part of the answer
