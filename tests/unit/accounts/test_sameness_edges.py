"""Edges of the same-customer rule that a mutation run showed were not pinned down."""

from __future__ import annotations

from shared.accounts import AccountMatch, Identifiers, sort_out


def ids(crm: tuple[str, ...] = (), domains: tuple[str, ...] = ()) -> Identifiers:
    return Identifiers(frozenset(crm), frozenset(domains))


def test_a_crm_key_carries_its_crm_id_whole_even_with_a_colon() -> None:
    assert Identifiers.of_key("crm:42") == ids(("42",))
    assert Identifiers.of_key("crm:emea:42") == ids(("emea:42",))
    assert Identifiers.of_key("dom:acme.com") == ids(domains=("acme.com",))
    assert Identifiers.of_key("name:US:acme") == ids()


def test_joining_identifiers_keeps_both_kinds_from_either_side() -> None:
    both = ids(("1",), ("acme.com",))
    assert ids(("1",)) | ids(domains=("acme.com",)) == both
    assert ids(domains=("acme.com",)) | ids(("1",)) == both
    assert ids(("1",), ("acme.com",)) | ids(("1",), ("acme.io",)) == \
        ids(("1",), ("acme.com", "acme.io"))
    assert ids() | both == both
    assert both | ids() == both


def test_identifiers_are_truthy_when_either_kind_is_present() -> None:
    assert ids(("1",))
    assert ids(domains=("acme.com",))
    assert not ids()


def test_an_anchor_of_another_customer_is_not_merged_into_the_query() -> None:
    query = ids(domains=("acme.io",))
    found = sort_out(query, [], Identifiers.of_key, anchor=ids(domains=("acme.com",)))
    assert found.customer == query
    joined = sort_out(query, [], Identifiers.of_key, anchor=ids(("1",)))
    assert joined.customer == ids(("1",), ("acme.io",))


def test_a_repeated_match_does_not_stop_the_walk() -> None:
    query = ids(("1",), ("acme.com",))
    matches = [AccountMatch("crm:1", "crm_account_id", 1.0, True),
               AccountMatch("crm:1", "domain", 1.0, True),
               AccountMatch("name:US:acme", "name", 1.0, True)]
    known = {"crm:1": ids(("1",), ("acme.com",)), "name:US:acme": ids()}
    found = sort_out(query, matches, known.__getitem__)
    assert [m.account_key for m in found.same] == ["crm:1", "name:US:acme"]


def test_another_customers_match_does_not_stop_the_walk() -> None:
    query = ids(("1",), ("acme.com",))
    matches = [AccountMatch("crm:2", "domain", 1.0, True),
               AccountMatch("name:US:other", "name", 1.0, True),
               AccountMatch("name:US:acme", "name", 1.0, True)]
    known = {"crm:2": ids(("2",), ("acme.com",)), "name:US:other": ids(("3",)),
             "name:US:acme": ids()}
    found = sort_out(query, matches, known.__getitem__)
    assert [m.account_key for m in found.same] == ["name:US:acme"]
    # name:US:other is another customer (CRM id 3), but only the CRM ids differ and it has
    # no domain to compare: a person sees it (rival review session 26).
    assert [(m.account_key, m.confident) for m in found.possible] == [
        ("crm:2", False), ("name:US:other", False)]


def test_a_settlement_separates_by_the_same_rule_the_intake_reviews_by() -> None:
    """`separate_customers` and `sort_out` share `for_a_person` (session 26): two CRM ids
    with no domains on both sides are separate unless their names match confidently."""
    from shared.accounts import for_a_person, separate_customers
    crm1, crm2 = ids(("1",)), ids(("2",))
    assert separate_customers(crm1, crm2)
    assert separate_customers(crm1, crm2, lambda: False)
    assert not separate_customers(crm1, crm2, lambda: True)
    with_dom = ids(("2",), ("b.com",))
    assert not separate_customers(crm1, with_dom, lambda: True)
    # Two domains: a name never sends them to a person.
    assert separate_customers(ids(("1",), ("a.com",)), with_dom, lambda: True)
    assert not for_a_person(ids((), ("a.com",)), ids((), ("b.com",)), "name", True)
    assert for_a_person(crm1, crm2, "name", True)
    assert not for_a_person(crm1, crm2, "name", False)
