"""Salesforce ids: one id in its 15- and 18-character spellings is one CRM id under
`match.crm_ids: salesforce` (session 23, rival review), and nothing else is merged."""

from __future__ import annotations

import pytest

from shared.accounts import AccountIdentity, AccountIndex
from shared.accounts.salesforce import canonical_crm_id, salesforce_18, salesforce_suffix
from shared.accounts.sameness import Identifiers, different_customers

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def documented_suffix(id15: str) -> str:
    """Salesforce's published recipe, written out independently: reverse each 5-character
    chunk, read upper-case letters as 1 and everything else as 0, a binary number."""
    out = ""
    for i in range(0, 15, 5):
        bits = "".join("1" if c.isupper() else "0" for c in reversed(id15[i:i + 5]))
        out += _ALPHABET[int(bits, 2)]
    return out


@pytest.mark.parametrize("id15", ["001A000001Bf5dI", "001hFGAi3f5dig9", "0015000000VALDt",
                                  "00Q000000000000", "a0BZZZZZZZZZZZZ"])
def test_the_18_character_form_is_the_15_plus_the_documented_checksum(id15: str) -> None:
    assert salesforce_suffix(id15) == documented_suffix(id15)
    assert salesforce_18(id15) == id15 + documented_suffix(id15)
    assert salesforce_18(id15 + documented_suffix(id15).lower()) == id15 + documented_suffix(id15)


def test_published_examples() -> None:
    assert salesforce_18("001A000001Bf5dI") == "001A000001Bf5dIIAR"
    assert salesforce_18("001hFGAi3f5dig9") == "001hFGAi3f5dig9QDA"
    assert salesforce_18("001hFGAi3f5dig9qda") == "001hFGAi3f5dig9QDA"  # suffix: any case


@pytest.mark.parametrize("raw", ["001hFGAi3f5dig9QDB", "001A000001Bf5dIAAA", "CRM-1",
                                 "001hFGAi3f5dig", "001hFGAi3f5dig9Q", "001hFGAi3f5dig9-DA",
                                 "ACME-000000000001"])
def test_anything_else_is_not_a_salesforce_id_and_compares_exactly(raw: str) -> None:
    assert salesforce_18(raw) is None
    assert canonical_crm_id(raw, "salesforce") == raw


def test_case_still_matters_in_the_15_character_form() -> None:
    assert salesforce_18("001hfgai3f5dig9") != salesforce_18("001hFGAi3f5dig9")


def _index(*crm_ids: str) -> AccountIndex:
    index = AccountIndex()
    for crm in crm_ids:
        index.add(f"crm:{crm}", AccountIdentity(crm, None, "turner ltd", "GB"))
    return index


def _crm_keys(index: AccountIndex, crm: str, mode: str) -> list[str]:
    return [m.account_key for m in index.match(AccountIdentity(crm, None, None, None), 0.9,
                                               crm_ids=mode)  # type: ignore[arg-type]
            if m.matched_by == "crm_account_id"]


def test_either_spelling_finds_the_account_filed_under_the_other() -> None:
    index = _index("001hFGAi3f5dig9")
    assert _crm_keys(index, "001hFGAi3f5dig9QDA", "salesforce") == ["crm:001hFGAi3f5dig9"]
    assert _crm_keys(index, "001hFGAi3f5dig9qda", "salesforce") == ["crm:001hFGAi3f5dig9"]
    index = _index("001hFGAi3f5dig9qda")
    assert _crm_keys(index, "001hFGAi3f5dig9", "salesforce") == ["crm:001hFGAi3f5dig9qda"]
    # `exact` (older policies): two spellings, two CRM ids.
    assert _crm_keys(index, "001hFGAi3f5dig9", "exact") == []


def test_an_invalid_checksum_is_not_merged() -> None:
    index = _index("001hFGAi3f5dig9")
    assert _crm_keys(index, "001hFGAi3f5dig9QDB", "salesforce") == []
    assert different_customers(
        Identifiers.of_key("crm:001hFGAi3f5dig9").canonical("salesforce"),
        Identifiers.of_key("crm:001hFGAi3f5dig9QDB").canonical("salesforce"))


def test_removing_an_account_forgets_its_other_spelling() -> None:
    index = _index("001hFGAi3f5dig9")
    assert index.remove("crm:001hFGAi3f5dig9")
    assert _crm_keys(index, "001hFGAi3f5dig9QDA", "salesforce") == []


def test_identifiers_in_both_spellings_are_one_customer_under_salesforce_only() -> None:
    a = Identifiers(frozenset({"001hFGAi3f5dig9"}), frozenset({"turner.co.uk"}))
    b = Identifiers(frozenset({"001hFGAi3f5dig9QDA"}), frozenset())
    assert different_customers(a, b)
    assert not different_customers(a.canonical("salesforce"), b.canonical("salesforce"))
    assert a.canonical("exact") is a
