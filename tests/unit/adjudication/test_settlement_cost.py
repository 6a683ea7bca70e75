"""A settlement's evidence about members under keys not linked to the decided one's
(`outcomes.unlinked_match`, invariant 6) costs per key and per distinct item, not per
pair of decisions (session 27, issue 16: a chained review of 378 members on 348 keys spent
~2.3 s of CPU building it, ~138,000 items of which ~9,600 distinct, each pair asking both
keys' customers and names again: the decide cost per registration at 500,000 active rose
to 2.2 x the cost at 10,000).

The answer is held to the long way (`fellow_evidence` per pair), and the pair score to the
index's scan as it was written before `AccountIndex.filed_names` (with session 27's
country rule: one country in common, or one side's unknown)."""

from __future__ import annotations

from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz

from services.adjudication.domain import outcomes
from services.adjudication.domain.state import AdjudicationState, Entry
from shared.accounts import AccountIdentity, AccountIndex, Identifiers
from shared.accounts.index import UNKNOWN_COUNTRY, _ordinals, _values
from shared.policy import Policy


def _member(i: int, key: str) -> Entry:
    return Entry(id=f"r{i:03}", account_key=key, party_type="partner", party_id=f"p-{i % 7}",
                 kind="registration", motion="resell", products=None, submitted_at=i,
                 tier="gold", policy_version=1, status="in_review", evidence=None)


def _chained_review(k: int) -> tuple[AdjudicationState, list[Entry]]:
    """k members on k keys of k companies with their own domains, named alike (a review
    chained by possible duplicates): every pair is two customers by identifiers."""
    state = AdjudicationState()
    members = []
    for i in range(k):
        key = f"dom:acme{i}.com"
        state.index_account(key, AccountIdentity(None, f"acme{i}.com", f"acme group {i % 9}",
                                                 "US" if i % 4 else "DE"))
        members.append(_member(i, key))
    return state, members


def test_a_chained_review_asks_each_key_once_and_builds_each_item_once() -> None:
    k = 40
    state, members = _chained_review(k)
    long_way = [[outcomes.fellow_evidence(state, m, d.account_key, d).model_dump_json()
                 for m in members if m is not d] for d in members]
    asked: list[str] = []
    customer = AdjudicationState.customer

    def counted(self: AdjudicationState, key: str) -> Identifiers:
        asked.append(key)
        return customer(self, key)

    built = mock.Mock(wraps=outcomes._evidence)
    with mock.patch.object(AdjudicationState, "customer", counted), \
            mock.patch.object(outcomes, "_evidence", built):
        fellows = outcomes.Fellows(members, state)
        found = [fellows.of(i) for i in range(k)]
    assert [[e.model_dump_json() for e in row] for row in found] == long_way
    distinct = {e.model_dump_json() for row in found for e in row}
    # Before: both customers asked per pair of keys (2 * 40 * 39 = 3,120 calls) and an
    # item built per decision and member (40 * 39 = 1,560).
    assert len(asked) <= k
    assert built.call_count <= len(distinct) + 2 * k  # + each `mine`'s plain list


_NAMES = st.sampled_from(["acme", "acme group", "acne", "globex", "acme groups", "blue acme",
                          "zeta"])
_KEYS = st.sampled_from(["k:a", "k:b", "k:c", "k:d"])


def _scanned(index: AccountIndex, a: str, b: str, known_country: bool = False) -> float:
    """`AccountIndex.name_score` as written before `filed_names` (countries per pair)."""
    oa, ob = index._ordinal.get(a), index._ordinal.get(b)
    if oa is None or ob is None:
        return 0.0

    def filed_in(name: str, ordinal: int) -> set[str]:
        return {country for country, names in index._countries.items()
                if (owner := names.owners.get(name)) is not None
                and ordinal in _ordinals(owner)}

    best = 0.0
    for sa in sorted(_values(index._names_of[oa])):
        for sb in sorted(_values(index._names_of[ob])):
            score = fuzz.ratio(sa, sb) / 100.0
            if score <= best:
                continue
            in_a, in_b = filed_in(sa, oa), filed_in(sb, ob)
            if known_country:
                if (in_a & in_b) - {UNKNOWN_COUNTRY}:
                    best = score
            elif not in_a.isdisjoint(in_b) or (in_a and in_b and (
                    UNKNOWN_COUNTRY in in_a or UNKNOWN_COUNTRY in in_b)):
                best = score
    return best


@settings(max_examples=300, deadline=None)
@given(filed=st.lists(st.tuples(_KEYS, _NAMES, st.sampled_from(["US", "DE", "FR", None])),
                      max_size=12),
       removed=st.lists(_KEYS, max_size=2))
def test_name_score_is_the_scan_and_symmetric(filed: list[tuple[str, str, str | None]],
                                              removed: list[str]) -> None:
    index = AccountIndex()
    for key, name, country in filed:
        index.add(key, AccountIdentity(None, None, name, country))
    for key in removed:
        index.remove(key)
    for a in ("k:a", "k:b", "k:c", "k:d", "k:none"):
        for b in ("k:a", "k:b", "k:c", "k:d", "k:none"):
            for known in (False, True):
                assert index.name_score(a, b, known) == _scanned(index, a, b, known)
                assert index.name_score(a, b, known) == index.name_score(b, a, known)


_MIXED_KEYS = {
    # key: (crm id, domain, name, country) filed under it; None: not filed here (a copy's)
    "dom:acme.com": (None, "acme.com", "acme group", "US"),
    "crm:C1": ("C1", "acme.io", "acme groups", "US"),
    "dom:acme.io": (None, "acme.io", "acme grp", "US"),
    "crm:C2": ("C2", None, "acme group", "DE"),
    "dom:globex.com": ("C2", "globex.com", "globex", "DE"),
    "name:acme group": (None, None, "acme group", "US"),
    "name:acne": (None, None, "acne", None),
    "name:zeta": (None, None, "zeta", "FR"),
    "dom:copy.com": None,
    "crm:C9": None,
}


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(st.sampled_from(sorted(_MIXED_KEYS)), min_size=4, max_size=9),
       versions=st.lists(st.sampled_from([1, 2]), min_size=9, max_size=9),
       evidence=st.lists(st.sampled_from([None, ("name", 0.9), ("domain", 1.0)]),
                         min_size=9, max_size=9),
       links=st.lists(st.tuples(st.sampled_from(sorted(_MIXED_KEYS)),
                                st.sampled_from(sorted(_MIXED_KEYS))), max_size=2))
def test_a_settlement_weighs_keys_sharing_identifiers_linked_or_unfiled_as_the_long_way(
        keys: list[str], versions: list[int], evidence: list[tuple[str, float] | None],
        links: list[tuple[str, str]]) -> None:
    """`Fellows` weighs the pairs of keys that share no CRM id or domain from per-key
    facts (session 28); every other pair (a shared identifier, a link, a copy's key not
    filed here), under either `name_only` setting, still as `fellow_evidence` does."""
    state = AdjudicationState()
    state.remember_policy(Policy.model_validate({"version": 1}))
    state.remember_policy(Policy.model_validate({"version": 2,
                                                 "match": {"name_only": "decide"}}))
    for key, facts in _MIXED_KEYS.items():
        if facts is not None:
            state.index_account(key, AccountIdentity(*facts))
    for a, b in links:
        state.link(a, b, "name", 0.9)
    members = [Entry(id=f"r{i}", account_key=key, party_type="partner", party_id=f"p{i}",
                     kind="registration", motion="resell", products=None, submitted_at=i,
                     tier="gold", policy_version=versions[i], status="in_review",
                     evidence=evidence[i])
               for i, key in enumerate(keys)]
    long_way = [[outcomes.fellow_evidence(state, m, d.account_key, d).model_dump_json()
                 for m in members if m is not d] for d in members]
    fellows = outcomes.Fellows(members, state)
    assert [[e.model_dump_json() for e in fellows.of(i)]
            for i in range(len(members))] == long_way
