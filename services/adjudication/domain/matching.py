"""Which active registrations and claims a new one collides with.

A collision needs the same customer and an overlapping scope. The customer is matched by
its facts through the partition's `AccountIndex` (exact CRM id or domain, fuzzy name within
a country), not by account key: that is how two keys the edge handed out concurrently for
one customer are still caught here (see DESIGN.md, "the cross-key race"). Keys already
known to be linked count as the same customer too. Name matches inside the policy's review
band come back with `confident=False`: possible duplicates for a person to judge.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.adjudication.domain.state import AdjudicationState, Entry
from shared.accounts import AccountIdentity
from shared.policy import Policy

_KEY_EVIDENCE = {"crm": "crm_account_id", "dom": "domain", "name": "name"}


@dataclass(frozen=True, slots=True)
class Collision:
    entry: Entry
    matched_by: str
    score: float
    confident: bool


def key_evidence(account_key: str) -> str:
    """What an account key was derived from: the evidence two entries under it share."""
    return _KEY_EVIDENCE.get(account_key.partition(":")[0], "domain")


def is_exclusive(entry: Entry, policy: Policy) -> bool:
    """Claims are always exclusive; a registration is when its motion is."""
    return entry.motion == "direct" or policy.is_exclusive(entry.motion)


def overlaps(a: frozenset[str] | None, b: frozenset[str] | None, policy: Policy) -> bool:
    """Whether two scopes overlap: always under `account` scope, else by products
    (no products, or a named-account claim, means the whole account)."""
    if policy.scope == "account" or a is None or b is None:
        return True
    return not a.isdisjoint(b)


def find_collisions(
    state: AdjudicationState, new: Entry, identity: AccountIdentity | None, policy: Policy
) -> list[Collision]:
    """Active entries at the same customer whose scope overlaps `new`'s, in a stable order:
    the new entry's own key first, then keys by strength of evidence."""
    evidence: dict[str, tuple[str, float, bool]] = {
        new.account_key: (key_evidence(new.account_key), 1.0, True)
    }
    if identity is not None and not identity.is_empty():
        for match in state.index.match(
            identity, policy.match.name_threshold, policy.match.review_band
        ):
            if match.account_key not in evidence:
                evidence[match.account_key] = (match.matched_by, match.score, match.confident)
    for key in list(evidence):
        matched_by, score, confident = evidence[key]
        for linked in state.links.get(key, ()):
            if linked not in evidence and confident:
                evidence[linked] = (matched_by, score, True)
    found: list[Collision] = []
    for key, (matched_by, score, confident) in evidence.items():
        for entry in state.active_under(key):
            if entry is new or not overlaps(new.products, entry.products, policy):
                continue
            found.append(Collision(entry, matched_by, score, confident))
    return found
