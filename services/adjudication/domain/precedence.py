"""The precedence rules that tell two colliding parties apart, walked in the policy's order.

Each rule answers +1 (the challenger R wins), -1 (the existing C wins) or 0 (this rule does
not separate them); the first non-zero answer decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cmp_to_key
from typing import Final

from services.adjudication.domain.instants import span_us
from services.adjudication.domain.state import AdjudicationState, Entry
from shared.policy import Policy

Rule = Callable[[AdjudicationState, Entry, Entry, Policy], int]


def _direct_named_account(state: AdjudicationState, r: Entry, c: Entry, policy: Policy) -> int:
    # A direct named-account claim beats a partner; it says nothing between two direct
    # claims or between two partners.
    r_named = r.kind == "named_account"
    c_named = c.kind == "named_account"
    if r_named and c.party_type == "partner":
        return 1
    if c_named and r.party_type == "partner":
        return -1
    return 0


def _incumbent(state: AdjudicationState, r: Entry, c: Entry, policy: Policy) -> int:
    # Evaluated at R's submission: the moment the question was asked.
    at = r.submitted_at
    since = at - span_us(policy.incumbency_window)
    # The customer, not the key: a win recorded under a key linked to R's or C's (the same
    # customer, shared/accounts/sameness.py) counts, in a deterministic order.
    keys = tuple(dict.fromkeys((*state.cluster(r.account_key), *state.cluster(c.account_key))))
    r_inc = state.won_within(keys, r.incumbency_party, since, at)
    c_inc = state.won_within(keys, c.incumbency_party, since, at)
    if r_inc == c_inc:
        return 0
    return 1 if r_inc else -1


def _first_submitted(state: AdjudicationState, r: Entry, c: Entry, policy: Policy) -> int:
    gap = r.submitted_at - c.submitted_at
    if abs(gap) <= span_us(policy.tie_window):
        return 0
    return -1 if gap > 0 else 1


def _strictly_first(r: Entry, c: Entry) -> int:
    """first_submitted with the tie window ignored (the fallback's last word)."""
    if r.submitted_at == c.submitted_at:
        return 0
    return 1 if r.submitted_at < c.submitted_at else -1


def _tier(state: AdjudicationState, r: Entry, c: Entry, policy: Policy) -> int:
    # Tiers rank partners (by the deciding policy's tier_order); a direct claim has none,
    # so tier cannot separate it.
    if r.party_type != "partner" or c.party_type != "partner" or r.tier == c.tier:
        return 0
    r_rank, c_rank = policy.tier_rank(r.tier), policy.tier_rank(c.tier)
    if r_rank == c_rank:
        return 0
    return 1 if r_rank < c_rank else -1


RULES: Final[dict[str, Rule]] = {
    "direct_named_account": _direct_named_account,
    "incumbent": _incumbent,
    "first_submitted": _first_submitted,
    "tier": _tier,
}


def compare(state: AdjudicationState, r: Entry, c: Entry, policy: Policy) -> tuple[int, str]:
    """(+1 R wins | -1 C wins | 0 nothing separates them, the rule that decided or "tie")."""
    for name in policy.precedence:
        verdict = RULES[name](state, r, c, policy)
        if verdict:
            return verdict, name
    return 0, "tie"


def in_line(
    state: AdjudicationState, entries: Sequence[Entry], policy: Policy, *,
    by_precedence: bool = True,
) -> list[Entry]:
    """`entries` best first when no person decides (the final-breach fallback, promotion on
    release), in a stable, total order: the policy's precedence as adjudication walks it;
    where it finds nothing between two (a tie: the tie window is not left undecided), the
    earlier submission, then the id. `by_precedence=False`: submission alone, then id.

    The rules are walked as adjudication walks them, so the order never contradicts a
    decision already made: a registration rejected by first_submitted that contests stays
    behind the one it lost to, whatever its tier."""
    names = policy.precedence if by_precedence else ()

    def order(a: Entry, b: Entry) -> int:
        for name in names:
            verdict = RULES[name](state, a, b, policy)
            if verdict:
                return -verdict
        verdict = _strictly_first(a, b)
        if verdict:
            return -verdict
        return -1 if a.id < b.id else (1 if a.id > b.id else 0)

    base = sorted(entries, key=lambda e: (e.submitted_at, e.id))
    return sorted(base, key=cmp_to_key(order))


def rule_rank(policy: Policy, rule: str) -> int:
    try:
        return policy.precedence.index(rule)
    except ValueError:
        return len(policy.precedence)
