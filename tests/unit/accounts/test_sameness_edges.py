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
    assert [(m.account_key, m.confident) for m in found.possible] == [("crm:2", False)]
