"""`AccountIndex.remove`: an index that added and removed accounts answers exactly as one
that only ever added the accounts still in it, whatever the order (the adjudicator's state
forgets accounts, and replay and snapshots must not care how it got there)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.accounts import AccountIdentity, AccountIndex

WORDS = ("acme", "global", "solutions", "acmee", "globex", "initech", "umbrella", "group",
         "systems", "initec", "hooli", "stark")


def _identity(rng: random.Random) -> AccountIdentity:
    name = " ".join(rng.sample(WORDS, rng.choice((1, 2, 2, 3))))
    return AccountIdentity.from_raw(
        name=name if rng.random() < 0.9 else None,
        country=rng.choice(("US", "DE")),
        domain=f"{rng.choice(WORDS)}{rng.randrange(4)}.com" if rng.random() < 0.5 else None,
        crm_account_id=f"CRM-{rng.randrange(6)}" if rng.random() < 0.3 else None,
    )


def _answers(index: AccountIndex, queries: list[AccountIdentity], budget_keys: list[str]
             ) -> list[object]:
    out: list[object] = [len(index)]
    for q in queries:
        out.append(index.match(q, 0.9, 0.2))
        out.append(index.resolve(q, 0.9))
    for key in budget_keys:
        out.append((key in index, index.identifiers(key)))
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), budget=st.sampled_from((2, 5, 4000)))
def test_an_index_that_forgot_answers_as_one_that_never_knew(seed: int, budget: int) -> None:
    rng = random.Random(seed)
    keys = [f"k{i}" for i in range(12)]
    filed: dict[str, list[AccountIdentity]] = {}
    index = AccountIndex(candidate_budget=budget)
    for _ in range(rng.randrange(10, 60)):
        key = rng.choice(keys)
        if key in filed and rng.random() < 0.3:
            assert index.remove(key)
            del filed[key]
        else:
            identity = _identity(rng)
            index.add(key, identity)
            filed.setdefault(key, []).append(identity)
    assert not index.remove("never-added")
    # The same surviving facts, added fresh and in another order.
    fresh = AccountIndex(candidate_budget=budget)
    items = [(k, i) for k, ids in filed.items() for i in ids]
    rng.shuffle(items)
    for key, identity in items:
        fresh.add(key, identity)
    queries = [_identity(rng) for _ in range(25)] + [i for _, i in items[:10]]
    assert _answers(index, queries, keys) == _answers(fresh, queries, keys)


def test_a_removed_account_is_found_by_nothing_and_a_shared_name_stays_with_its_other_owner(
) -> None:
    index = AccountIndex()
    acme = AccountIdentity.from_raw(name="Acme Global", country="US", domain="acme.com",
                                    crm_account_id="CRM-1")
    index.add("dom:acme.com", acme)
    index.add("name:US:acme-global", AccountIdentity.from_raw(name="Acme Global", country="US"))
    assert index.remove("dom:acme.com")
    assert "dom:acme.com" not in index and len(index) == 1
    assert [m.account_key for m in index.match(acme, 0.9)] == ["name:US:acme-global"]
    assert index.remove("name:US:acme-global")
    assert index.match(acme, 0.9) == [] and len(index) == 0
    # Slots are reused, and a re-added account carries only its new facts.
    index.add("dom:acme.com", AccountIdentity.from_raw(domain="acme.com"))
    assert index.match(acme, 0.9)[0].matched_by == "domain"
    assert not index.identifiers("dom:acme.com").crm_ids


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_a_crowded_token_answers_the_same_after_removals_whatever_its_postings_shape(
        seed: int) -> None:
    """Postings of one blocking key are a string, an exact-size tuple, then (past 32 names)
    a growing list; removals walk back down. An index that added 40-70 names sharing
    "systems" and removed some answers as a fresh index holding the rest."""
    rng = random.Random(seed)
    index, fresh = AccountIndex(), AccountIndex()
    names = {f"k{i}": AccountIdentity.from_raw(
        name=f"{rng.choice(WORDS)}{i} systems", country="US",
        domain=f"d{i}.com" if rng.random() < 0.5 else None) for i in range(rng.randrange(40, 70))}
    for key, identity in names.items():
        index.add(key, identity)
    removed = set(rng.sample(sorted(names), rng.randrange(1, len(names))))
    for key in sorted(removed):
        assert index.remove(key)
    for key, identity in names.items():
        if key not in removed:
            fresh.add(key, identity)
    queries = [*names.values(), AccountIdentity.from_raw(name="acme systems", country="US")]
    assert _answers(index, queries, sorted(names)) == _answers(fresh, queries, sorted(names))


def test_a_domain_keyed_account_keeps_one_copy_of_its_key_and_domain() -> None:
    """Memory: the domain is filed in key form, so `dom:x`'s key string is the only copy;
    `key` hands callers that same string (the adjudicator's entries keep it)."""
    index = AccountIndex()
    key = "".join(["dom:", "acme.com"])  # a fresh string, as decoded from an event
    index.add(key, AccountIdentity.from_raw(name="Acme", country="US", domain="acme.com"))
    assert index.key("".join(["dom:", "acme.com"])) is key
    assert index.key("dom:unknown.com") == "dom:unknown.com"
    assert index.identifiers(key).domains == frozenset({"acme.com"})
    assert [m.matched_by for m in index.match(AccountIdentity.from_raw(domain="acme.com"),
                                              0.9)] == ["domain"]
    held = [k for k in index._by_domain if k == key]
    assert held and held[0] is key
