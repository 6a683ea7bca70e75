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
from shared.accounts import AccountIdentity, AccountMatch
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


def held_exclusively(state: AdjudicationState, entry: Entry) -> bool:
    """Whether an entry already decided holds (or seeks) exclusive protection, judged by
    the policy it was decided under: a later policy never changes an existing protection
    (DESIGN.md, "A policy edit never changes an existing protection")."""
    return is_exclusive(entry, state.policy(entry.policy_version))


def overlaps(a: frozenset[str] | None, b: frozenset[str] | None, policy: Policy,
             other: Policy | None = None) -> bool:
    """Whether two scopes overlap: always when either side's policy (`policy`, and the
    existing entry's own `other`) says `account` scope, else by products (no products, or
    a named-account claim, means the whole account). Symmetric: a protection granted on the
    whole account stays whole-account after the policy narrows the scope."""
    if policy.scope == "account" or (other is not None and other.scope == "account") \
            or a is None or b is None:
        return True
    return not a.isdisjoint(b)


def different_identifiers(identity: AccountIdentity, account_key: str) -> bool:
    """Whether `identity` and the account under `account_key` carry different identifiers of
    the same kind (two registrable domains, two CRM ids): then they are different customers
    however alike their names are. A name decides only where an identifier is missing;
    otherwise "Acme Systems" (acme.com) and "Acne Systems" (acne.io) would be flagged as one
    customer, and every such pair would chain unrelated accounts into one review."""
    kind, _, value = account_key.partition(":")
    if kind == "dom" and identity.domain:
        return identity.domain != value
    if kind == "crm" and identity.crm_account_id:
        return identity.crm_account_id != value
    return False


def _matches(
    state: AdjudicationState, identity: AccountIdentity, policy: Policy
) -> list[AccountMatch]:
    threshold, band = policy.match.name_threshold, policy.match.review_band
    if not identity.domain or not identity.name:
        return state.index.match(identity, threshold, band)
    # With a domain, a name can only match an account whose key is not a domain (any other
    # domain would be a different customer), so names are looked up among those alone: the
    # common case then costs two exact look-ups instead of a fuzzy search.
    exact = state.index.match(
        AccountIdentity(identity.crm_account_id, identity.domain, None, None), threshold, band
    )
    names = state.loose_index.match(
        AccountIdentity(None, None, identity.name, identity.country), threshold, band
    )
    return exact + names


def find_collisions(
    state: AdjudicationState, new: Entry, identity: AccountIdentity | None, policy: Policy
) -> list[Collision]:
    """Active entries at the same customer whose scope overlaps `new`'s, in a stable order:
    the new entry's own key first, then keys by strength of evidence."""
    evidence: dict[str, tuple[str, float, bool]] = {
        new.account_key: (key_evidence(new.account_key), 1.0, True)
    }
    if identity is not None and not identity.is_empty():
        for match in _matches(state, identity, policy):
            if match.account_key in evidence:
                continue
            if match.matched_by == "name" and different_identifiers(identity, match.account_key):
                continue
            evidence[match.account_key] = (match.matched_by, match.score, match.confident)
    for key in list(evidence):
        matched_by, score, confident = evidence[key]
        for linked in state.links.get(key, ()):
            if linked not in evidence and confident:
                evidence[linked] = (matched_by, score, True)
    found: list[Collision] = []
    for key, (matched_by, score, confident) in evidence.items():
        for entry in state.active_under(key):
            if entry is new or not overlaps(new.products, entry.products, policy,
                                            state.policy(entry.policy_version)):
                continue
            found.append(Collision(entry, matched_by, score, confident))
    return found
