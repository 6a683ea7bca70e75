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
from typing import Final

from services.adjudication.domain.state import AdjudicationState, Entry
from shared.accounts import (
    AccountIdentity,
    AccountMatch,
    Identifiers,
    Sorted,
    different_customers,
    match_order,
    sort_out,
    strength,
)
from shared.policy import Policy

_KEY_EVIDENCE = {"crm": "crm_account_id", "dom": "domain", "name": "name"}


@dataclass(frozen=True, slots=True)
class Collision:
    entry: Entry
    matched_by: str
    score: float
    confident: bool
    via_link: bool = False
    """Found under a key linked to the matched one, not by the account's own facts."""


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


def _lookups(
    state: AdjudicationState, identity: AccountIdentity, policy: Policy,
    raw_name: str | None = None,
) -> tuple[list[AccountMatch], list[AccountMatch]]:
    threshold, band = policy.match.name_threshold, policy.match.review_band
    crm_ids, countryless = policy.match.crm_ids, policy.match.countryless_names
    if not identity.domain or not identity.name:
        return state.index.match(identity, threshold, band, crm_ids, countryless,
                                 raw_name), []
    # With a domain, a name can only match an account whose key is not a domain (a dom: key
    # carries its domain: any other is a different customer, see sameness), so names are
    # looked up among those alone: the common case then costs two exact look-ups instead
    # of a fuzzy search.
    exact = state.index.match(
        AccountIdentity(identity.crm_account_id, identity.domain, None, None), threshold, band,
        crm_ids,
    )
    names = state.loose_index.match(
        AccountIdentity(None, None, identity.name, identity.country), threshold, band,
        countryless=countryless, raw_name=raw_name,
    )
    return exact, names


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the partition's index answers for an identity (`_lookups`: the full index's
    matches, then the loose index's name matches). A registration is matched once, before
    its own facts are filed (`own_key_evidence` needs that), and `filed` derives the answer
    after filing them instead of asking the index again: filing `identity` under a key only
    adds that key's own matches (its CRM id, domain and name, each scoring 1.0), so the
    other accounts' matches are those already found."""

    identity: AccountIdentity
    exact: list[AccountMatch]
    names: list[AccountMatch]

    @property
    def matches(self) -> list[AccountMatch]:
        return self.exact + self.names

    def filed(self, account_key: str) -> Lookup:
        """The answer once `identity` is filed under `account_key` (`index_account`)."""
        identity = self.identity
        if identity.is_empty():
            return self
        split = bool(identity.domain and identity.name)
        own: list[AccountMatch] = []
        if identity.crm_account_id:
            own.append(AccountMatch(account_key, "crm_account_id", 1.0, True))
        elif identity.domain:
            own.append(AccountMatch(account_key, "domain", 1.0, True))
        elif identity.name and identity.country:
            own.append(AccountMatch(account_key, "name", 1.0, True))
        exact = _with(self.exact, own)
        names = self.names
        if split and not account_key.startswith("dom:"):
            # Its name, filed in the loose index: confident in its own country, across
            # countries when it has none (`AccountIndex.match`).
            known = identity.country is not None
            names = _with(names, [AccountMatch(account_key, "name", 1.0, known, not known)])
        return Lookup(identity, exact, names)


def _with(matches: list[AccountMatch], own: list[AccountMatch]) -> list[AccountMatch]:
    """`matches` with `own` (one match of one key) kept as `AccountIndex.match` keeps an
    account's strongest evidence, in the index's order."""
    if not own:
        return matches
    mine = own[0]
    if not matches:
        return own
    if len(matches) == 1 and matches[0].account_key == mine.account_key:
        # The key had matched already (a known account, most registrations): the
        # stronger of the two, as the walk below keeps it.
        return matches if strength(matches[0]) >= strength(mine) else own
    kept: list[AccountMatch] = []
    for match in matches:
        if match.account_key == mine.account_key:
            if strength(match) >= strength(mine):
                mine = match
        else:
            kept.append(match)
    kept.append(mine)
    kept.sort(key=match_order)
    return kept


def lookup(state: AdjudicationState, identity: AccountIdentity, policy: Policy,
           raw_name: str | None = None) -> Lookup:
    """Ask the index once for `identity` (nothing to ask for an empty one). `raw_name`:
    the name as filed, which a query without a country is also weighed by as each
    country reads it (`countryless_readings`)."""
    if identity.is_empty():
        return Lookup(identity, [], [])
    return Lookup(identity, *_lookups(state, identity, policy, raw_name))


def _matches(
    state: AdjudicationState, identity: AccountIdentity, policy: Policy
) -> list[AccountMatch]:
    exact, names = _lookups(state, identity, policy)
    return exact + names


_RANK = {"crm_account_id": 2, "domain": 1, "name": 0}
_NOTHING: Final = Sorted((), (), Identifiers())


def _same(a: AccountIdentity, b: AccountIdentity) -> bool:
    """`a == b`, the common case (the very object asked about) without comparing fields."""
    return a is b or a == b


def own_key_evidence(
    state: AdjudicationState, account_key: str, identity: AccountIdentity, policy: Policy,
    asked: Lookup | None = None,
) -> tuple[str, float] | None:
    """How `identity` matches the customer already filed under its own key (call it before
    the identity is indexed there): the strongest confident match, CRM id over domain over
    name. An account filed under a `dom:` key by its name is matched by name, not by that
    domain. None when it matches nothing there (it opens the key). `asked`: the index's
    answer for `identity` already asked (`lookup`)."""
    best: AccountMatch | None = None
    if not identity.is_empty():
        matches = asked.matches if asked is not None and _same(asked.identity, identity) \
            else _matches(state, identity, policy)
        for match in matches:
            if match.account_key == account_key and match.confident and (
                    best is None or (_RANK[match.matched_by], match.score)
                    > (_RANK[best.matched_by], best.score)):
                best = match
    return (best.matched_by, best.score) if best is not None else None


def find_collisions(
    state: AdjudicationState, new: Entry, identity: AccountIdentity | None, policy: Policy,
    own_evidence: tuple[str, float] | None = None, asked: Lookup | None = None,
) -> list[Collision]:
    """Active entries at the same customer whose scope overlaps `new`'s (see `_evidence`).
    `asked`: the index's current answer for `identity`, if already asked."""
    found_entries: list[Collision] = []
    review_names = policy.match.name_only == "review"
    for key, (matched_by, score, confident, via_link) in _evidence(
            state, new, identity, policy, review_names, own_evidence, asked).items():
        for entry in state.active_under(key):
            if entry is new or not overlaps(new.products, entry.products, policy,
                                            state.policy(entry.policy_version)):
                continue
            found_entries.append(Collision(entry, matched_by, score, confident, via_link))
    return found_entries


def evidence_keys(
    state: AdjudicationState, new: Entry, identity: AccountIdentity | None, policy: Policy,
    review_names: bool, own_evidence: tuple[str, float] | None = None,
    asked: Lookup | None = None,
) -> list[str]:
    """The keys `find_collisions` looks under for confident collisions (same evidence, same
    `review_names`): `new`'s customer as its rivals are weighed against it."""
    return [key for key, (_, _, confident, _) in _evidence(
        state, new, identity, policy, review_names, own_evidence, asked).items() if confident]


def customer_keys(
    state: AdjudicationState, new: Entry, identity: AccountIdentity | None, policy: Policy,
    asked: Lookup | None = None,
) -> list[str]:
    """Every key that is confidently `new`'s customer by the same rule `find_collisions`
    uses (its own key and links, and keys its account matched): e.g. for the cool-off,
    which must not be dodged by filing the same customer under another key. A name match
    counts here whatever `match.name_only` says: that option keeps a name from deciding
    between *rivals*; the same partner re-filing its own customer is not a rival."""
    return [key for key, (_, _, confident, _)
            in _evidence(state, new, identity, policy, asked=asked).items() if confident]


def _only_own(matches: list[AccountMatch], account_key: str) -> bool:
    """Whether every match is of `account_key` (about half the calls on the mixed
    workload: a known account that matched nothing else). `_evidence` then skips
    `sort_out`: the new entry's own key is in its evidence already, not via a link, so
    whatever `sort_out` answers adds nothing (test_decide_shortcuts_differential.py holds
    it to always sorting out)."""
    for match in matches:  # noqa: SIM110 (a loop: no generator made per call)
        if match.account_key != account_key:
            return False
    return True


def _evidence(
    state: AdjudicationState, new: Entry, identity: AccountIdentity | None, policy: Policy,
    review_names: bool = False, own_evidence: tuple[str, float] | None = None,
    asked: Lookup | None = None,
) -> dict[str, tuple[str, float, bool, bool]]:
    """Active entries at the same customer whose scope overlaps `new`'s, in a stable order:
    the new entry's own key (and the keys linked to it) first, then keys by strength of
    evidence, each followed by the keys linked to it.

    Whether a matched key is the same customer is `shared.accounts.sameness.sort_out`
    against the customer of `new`'s key (its cluster's identifiers) and `identity`: a
    name never joins a customer carrying other identifiers, directly or through links."""
    own = state.cluster(new.account_key)
    query = Identifiers.of(identity) if identity is not None else Identifiers()
    anchor = state.customer(new.account_key)
    if query and len(own) > 1 and different_customers(
            query.canonical(policy.match.crm_ids), anchor.canonical(policy.match.crm_ids)):
        # The key's links join identifiers other than this account's: not followed.
        own = own[:1]
        anchor = state.index.identifiers(new.account_key)
    kind, score = own_evidence or (key_evidence(new.account_key), 1.0)
    evidence: dict[str, tuple[str, float, bool, bool]] = {
        key: (kind, score, True, key != new.account_key) for key in own
    }
    if own_evidence is None and len(own) > 1:
        # It opened its key: it shares its identifiers with no one there, so the keys
        # linked to it are its customer only through the links (a key linked by a name,
        # by that name), not by the form of its own key (invariant 6).
        paths = state.link_paths(new.account_key)
        for key in own[1:]:
            evidence[key] = (*paths[key], True, True)
    if identity is not None and (identity.name or not identity.is_empty()):
        # A name without a country is asked too (weighed against every country's names,
        # never confidently): no filing is that alone, but the names a promoted or
        # contested filing's rejection took back may be (`release.brought_back`).
        matches = asked.matches if asked is not None and _same(asked.identity, identity) \
            else _matches(state, identity, policy)
        found = _NOTHING if _only_own(matches, new.account_key) else sort_out(
            query, matches, state.customer, anchor, review_names, policy.match.crm_ids)
        for match in (*found.same, *found.possible):
            known = evidence.get(match.account_key)
            if known is not None:
                if known[3] and match.confident:  # linked already, and shown again directly
                    evidence[match.account_key] = (*known[:3], False)
                continue
            evidence[match.account_key] = (match.matched_by, match.score, match.confident,
                                           False)
            if not match.confident:
                continue
            for linked in state.cluster(match.account_key)[1:]:
                if linked not in evidence:
                    evidence[linked] = (match.matched_by, match.score, True, True)
    for key, matched_by, score in state.suspects.get(new.id, ()):
        # Reported by the edge from another partition as possibly this customer.
        evidence.setdefault(key, (matched_by, score, False, False))
    return evidence
