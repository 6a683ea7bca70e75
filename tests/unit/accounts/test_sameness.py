"""The one rule of "the same customer" (shared/accounts/sameness.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.accounts import AccountMatch, Identifiers, different_customers, sort_out


def ids(crm: tuple[str, ...] = (), domains: tuple[str, ...] = ()) -> Identifiers:
    return Identifiers(frozenset(crm), frozenset(domains))


def test_different_crm_ids_are_always_different_customers() -> None:
    assert different_customers(ids(("1",), ("acme.com",)), ids(("2",), ("acme.com",)))


def test_different_domains_are_different_customers_unless_a_crm_id_joins_them() -> None:
    assert different_customers(ids(domains=("acme.com",)), ids(domains=("acme.io",)))
    assert different_customers(ids(("1",), ("acme.com",)), ids(domains=("acme.io",)))
    assert not different_customers(ids(("1",), ("acme.com",)), ids(("1",), ("acme.io",)))


def test_where_one_side_lacks_an_identifier_nothing_is_decided() -> None:
    assert not different_customers(ids(), ids(("1",), ("acme.com",)))
    assert not different_customers(ids(("1",)), ids(domains=("acme.com",)))


def test_a_name_never_matches_a_customer_with_another_domain() -> None:
    query = ids(domains=("acme.io",))
    by_name = AccountMatch("name:US:acme", "name", 1.0, True)
    found = sort_out(query, [by_name], {"name:US:acme": ids(domains=("acme.com",))}.__getitem__)
    assert found.same == () and found.possible == ()


def test_a_name_may_join_a_customer_without_identifiers() -> None:
    query = ids(domains=("acme.io",))
    by_name = AccountMatch("name:US:acme", "name", 1.0, True)
    found = sort_out(query, [by_name], lambda key: Identifiers())
    assert [m.account_key for m in found.same] == ["name:US:acme"]


def test_a_name_only_query_never_bridges_two_customers() -> None:
    matches = [AccountMatch("dom:acme.io", "name", 1.0, True),
               AccountMatch("dom:acme.com", "name", 1.0, True)]
    found = sort_out(Identifiers(), matches, Identifiers.of_key)
    assert [m.account_key for m in found.same] == ["dom:acme.com"]
    assert [(m.account_key, m.confident) for m in found.possible] == [("dom:acme.io", False)]


def test_the_anchor_customer_counts_like_the_query() -> None:
    by_name = AccountMatch("dom:acme.io", "name", 1.0, True)
    found = sort_out(Identifiers(), [by_name], Identifiers.of_key,
                     anchor=ids(domains=("acme.com",)))
    assert found.same == ()


def _valid(carried: Identifiers) -> bool:
    """One customer: at most one CRM id; several domains only joined by one."""
    return len(carried.crm_ids) <= 1 and (len(carried.domains) <= 1 or bool(carried.crm_ids))


_IDS = st.builds(ids, st.tuples() | st.tuples(st.sampled_from("12")),
                 st.lists(st.sampled_from(["a.com", "b.com"]), max_size=2).map(tuple)
                 ).filter(_valid)


@given(_IDS, _IDS)
def test_different_customers_is_symmetric(a: Identifiers, b: Identifiers) -> None:
    assert different_customers(a, b) == different_customers(b, a)


@given(_IDS, st.lists(st.tuples(st.sampled_from(["k1", "k2", "k3", "k4"]), _IDS,
                                st.sampled_from(["crm_account_id", "domain", "name"])),
                      max_size=6))
def test_the_customer_taken_in_is_always_one_customer(
    query: Identifiers, rows: list[tuple[str, Identifiers, str]]
) -> None:
    known: dict[str, Identifiers] = {}
    matches = []
    for key, carried, by in rows:
        known.setdefault(key, carried)
        matches.append(AccountMatch(key, by, 1.0, True))  # type: ignore[arg-type]
    found = sort_out(query, matches, known.__getitem__)
    union = query
    for match in found.same:
        assert not different_customers(query, known[match.account_key])
        union = union | known[match.account_key]
    assert union == found.customer and _valid(union)
    assert found == sort_out(query, list(reversed(matches)), known.__getitem__)
