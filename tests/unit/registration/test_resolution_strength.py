"""Which key wins when an identity matches several: found by mutation testing
(`make mutation`) of `resolution.py`."""

from __future__ import annotations

from services.registration.domain.intake import identity_of
from services.registration.domain.resolution import choose
from shared.accounts import AccountMatch, Identifiers


def test_the_best_scoring_confident_name_match_chooses_the_key() -> None:
    identity = identity_of("Acme Global Systems", None, "US", None)
    weaker = AccountMatch("name:US:acme-global-system", "name", 0.92, True)
    stronger = AccountMatch("name:US:acme-global-systems", "name", 1.0, True)
    for matches in ([weaker, stronger], [stronger, weaker]):
        resolution = choose(identity, matches)
        assert resolution.account_key == stronger.account_key
        assert resolution.matched == stronger and not resolution.is_new
        assert [a.account_key for a in resolution.aliases] == [weaker.account_key]


def test_a_new_account_keeps_its_possible_duplicates_in_order_of_strength() -> None:
    identity = identity_of("Acme", None, "US", None)
    near = [AccountMatch("name:US:acmee", "name", 0.81, False),
            AccountMatch("name:US:acmes", "name", 0.86, False)]
    resolution = choose(identity, near)
    assert resolution.is_new and resolution.aliases == ()
    assert [m.account_key for m in resolution.possible_duplicates] == [
        "name:US:acmes", "name:US:acmee"]


def test_a_key_matched_twice_is_one_alias_and_never_a_possible_duplicate() -> None:
    identity = identity_of("Acme", "acme.com", "US", "crm-1")
    matches = [AccountMatch("crm:crm-1", "crm_account_id", 1.0, True),
               AccountMatch("dom:acme.com", "domain", 1.0, True),
               AccountMatch("dom:acme.com", "name", 0.95, True),
               AccountMatch("dom:acme.com", "name", 0.85, False)]
    resolution = choose(identity, matches)
    assert [a.account_key for a in resolution.aliases] == ["dom:acme.com"]
    assert resolution.possible_duplicates == ()


def test_a_name_under_another_crm_id_is_judged_with_the_domains_of_the_key_it_resolves_to(
) -> None:
    """Rival 3 (session 26): the edge asks whether both sides carry domains of the
    customer its identifier match already made up, as the adjudicator (with its key's
    customer) and a settlement do: the key crm:FAKE-9 carries a throwaway domain, so the
    holder's name at zorblax.com is two domains apart, not a possible duplicate; without
    that domain it is one (a made-up CRM id does not walk past the holder)."""
    identity = identity_of("Zorblax", None, "US", "FAKE-9")
    matches = [AccountMatch("crm:FAKE-9", "crm_account_id", 1.0, True),
               AccountMatch("crm:ACC-1001", "name", 1.0, True)]
    holder = Identifiers(frozenset({"ACC-1001"}), frozenset({"zorblax.com"}))
    for rival_domains, expected in ((frozenset({"throwaway.io"}), []),
                                    (frozenset(), ["crm:ACC-1001"])):
        known = {"crm:FAKE-9": Identifiers(frozenset({"FAKE-9"}), rival_domains),
                 "crm:ACC-1001": holder}
        resolution = choose(identity, matches, known.__getitem__)
        assert resolution.account_key == "crm:FAKE-9"
        assert [m.account_key for m in resolution.possible_duplicates] == expected
