"""Invariant 6 in settlements: evidence about a member that identifiers call another
customer names what the two really share, never a key's form.

Two members of one dispute under different keys whose identifiers differ (two domains, two
CRM ids) met only as a possible duplicate a person was asked about -- through a third
registration's name, or a name under another CRM id (session 26). Before, a settlement's
decision named such a member `matched_by: domain` (or `crm_account_id`), confident, from
the decided one's key form: a domain match between two different domains. On the mixed
workload 106 such items in 73 of 46,434 decisions; found by `TestElsewhereRecentRules`
once the name-under-another-CRM-id review made the pair common."""

from __future__ import annotations

from adjudication_workload import generate, workload_policies

from services.adjudication.domain import (
    AdjudicationState,
    DecisionContext,
    decide,
    policy_version_of,
)
from shared.accounts.sameness import different_customers
from shared.events import RegistrationDecided


def test_a_settlement_never_says_domain_or_crm_between_two_customers_that_share_neither(
) -> None:
    log, _ = generate(40_000, seed=3, n_accounts=1600)
    policies = workload_policies()
    state = AdjudicationState()
    checked = 0
    for i, (event, at) in enumerate(log, 1):
        version = policy_version_of(event)
        context = DecisionContext(f"e{i}", at, policies[version] if version is not None else None)
        for out in decide(state, event, context)[1]:
            if not isinstance(out, RegistrationDecided) or out.rule != "dispute_resolution":
                continue
            for c in out.conflicts:
                if c.account_key is None or out.account_key is None:
                    continue
                # Right after the settlement: what the two keys' customers share, for two
                # that identifiers call different customers.
                mine, theirs = state.customer(out.account_key), state.customer(c.account_key)
                if not different_customers(mine, theirs):
                    continue
                checked += 1
                if c.matched_by == "name":
                    assert not c.confident, f"{out.registration_id}: {c}"
                    continue
                shared = (mine.domains & theirs.domains if c.matched_by == "domain"
                          else mine.crm_ids & theirs.crm_ids)
                assert shared and not c.confident, (
                    f"{out.registration_id} at {out.account_key} says matched_by "
                    f"{c.matched_by} (confident: {c.confident}) with {c.registration_id} at "
                    f"{c.account_key}: shared {sorted(shared)}")
    assert checked > 20  # settlements naming another customer's members (on main: 106)
