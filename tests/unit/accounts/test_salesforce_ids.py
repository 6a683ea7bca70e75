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


def test_an_18_character_id_in_any_letter_case_is_read_as_salesforce_reads_it() -> None:
    # Rival review, session 24: upper- or lower-cased by a case-insensitive system.
    from shared.accounts.salesforce import salesforce_18_any_case

    for spelling in ("001HFGAI3F5DIG9QDA", "001hfgai3f5dig9qda", "001hFGAi3f5dig9qDa"):
        assert salesforce_18_any_case(spelling) == "001hFGAi3f5dig9QDA"
        assert salesforce_18(spelling) in (None, "001hFGAi3f5dig9QDA")  # session 23's rule
        assert canonical_crm_id(spelling, "salesforce_any_case") == "001hFGAi3f5dig9QDA"
    # The suffix decides the case: another suffix is another record, never this one.
    assert salesforce_18_any_case("001HFGAI3F5DIG9AAA") == "001hfgai3f5dig9AAA"
    # Not an id in any case: a suffix marking a digit upper case, or outside the alphabet.
    for raw in ("001HFGAI3F5DIG9QD9", "001hFGAi3f5dig9ZZZ", "001hFGAi3f5dig9-DA"):
        assert salesforce_18_any_case(raw) is None, raw
        assert canonical_crm_id(raw, "salesforce_any_case") == raw


def test_the_index_finds_an_upper_cased_id_only_under_salesforce_any_case() -> None:
    index = _index("001HFGAI3F5DIG9QDA")
    assert _crm_keys(index, "001hFGAi3f5dig9", "salesforce_any_case") == [
        "crm:001HFGAI3F5DIG9QDA"]
    assert _crm_keys(index, "001hFGAi3f5dig9", "salesforce") == []  # session 23 policies
    index = _index("001hFGAi3f5dig9")
    assert _crm_keys(index, "001hfgai3f5dig9qda", "salesforce_any_case") == [
        "crm:001hFGAi3f5dig9"]
    assert index.remove("crm:001hFGAi3f5dig9")
    upper = _index("001HFGAI3F5DIG9QDA")
    assert upper.remove("crm:001HFGAI3F5DIG9QDA")
    assert _crm_keys(upper, "001hFGAi3f5dig9", "salesforce_any_case") == []


def test_every_spelling_a_table_may_hold_is_asked() -> None:
    from shared.accounts.salesforce import crm_id_spellings

    spellings = crm_id_spellings("001hFGAi3f5dig9", "salesforce")
    assert {"001hFGAi3f5dig9", "001hFGAi3f5dig9QDA", "001hFGAi3f5dig9qda"} <= set(spellings)
    assert all(canonical_crm_id(s, "salesforce") == "001hFGAi3f5dig9QDA" for s in spellings)
    assert len(spellings) == 9
    loose = crm_id_spellings("001HFGAI3F5DIG9QDA", "salesforce_any_case")
    assert {"001hFGAi3f5dig9", "001hfgai3f5dig9qda", "001HFGAI3F5DIG9QDA"} <= set(loose)
    assert crm_id_spellings("001hFGAi3f5dig9", "exact") == ("001hFGAi3f5dig9",)
    assert crm_id_spellings("CRM-1", "salesforce_any_case") == ("CRM-1",)


def test_a_guid_is_one_crm_id_in_any_letter_case_under_any_case() -> None:
    """Session 27 rival review: a Dynamics 365 GUID in another letter case was another CRM
    id (another customer). Under `any_case` it is one id, canonical in lower case, found
    whichever case was filed; `salesforce_any_case` (older documents) compares it exactly."""
    from shared.accounts.salesforce import crm_id_spellings

    guid = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
    mixed = guid.lower().replace("f", "F", 1)
    assert canonical_crm_id(guid, "any_case") == guid.lower()
    assert canonical_crm_id(mixed, "any_case") == guid.lower()
    assert canonical_crm_id(guid, "salesforce_any_case") == guid
    assert canonical_crm_id("001hFGAi3f5dig9", "any_case") == "001hFGAi3f5dig9QDA"
    assert canonical_crm_id("3F2504E0-4F89-11D3-9A0C-0305E82C330", "any_case") == (
        "3F2504E0-4F89-11D3-9A0C-0305E82C330")  # not a GUID: exact
    assert crm_id_spellings(mixed, "any_case") == (
        mixed, guid.lower(), guid)
    index = AccountIndex()
    index.add(f"crm:{guid}", AccountIdentity(guid, None, None, None))
    for spelling in (guid.lower(), mixed, guid):
        found = index.match(AccountIdentity(spelling, None, None, None), 0.9,
                            crm_ids="any_case")
        assert [m.account_key for m in found] == [f"crm:{guid}"], spelling
        assert not different_customers(
            Identifiers(frozenset((spelling,))).canonical("any_case"),
            Identifiers(frozenset((guid,))).canonical("any_case"))
    assert index.match(AccountIdentity(guid.lower(), None, None, None), 0.9,
                       crm_ids="salesforce_any_case") == []
    assert index.remove(f"crm:{guid}")
    assert index.match(AccountIdentity(guid.lower(), None, None, None), 0.9,
                       crm_ids="any_case") == []


def test_a_crm_id_in_another_spacing_hyphenation_or_case_is_one_id_under_any_spelling() -> None:
    """Session 28: a non-Salesforce CRM id copied by hand ("CRM 00123", "crm-00123") was
    another CRM id -- different CRM ids are different customers, so a rival reformatting
    the holder's id was approved beside it, unseen. Under `any_spelling` (the new default)
    separators and case do not count for such ids; a Salesforce id keeps its case-sensitive
    15; older documents (`any_case`) compare such ids exactly, so their logs replay as
    they decided."""
    from shared.accounts.salesforce import crm_id_spellings

    spellings = ("CRM 00123", "crm-00123", "CRM00123", "Crm_00123", "crm.00123")
    for spelling in spellings:
        assert canonical_crm_id(spelling, "any_spelling") == "crm00123"
        assert canonical_crm_id(spelling, "any_case") == spelling
    guid = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
    assert canonical_crm_id(guid, "any_spelling") == canonical_crm_id(
        guid.lower().replace("-", ""), "any_spelling")
    # Salesforce ids: the 15 stay case-sensitive (two records), the 18 as before.
    assert canonical_crm_id("001hFGAi3f5dig9", "any_spelling") == "001hFGAi3f5dig9QDA"
    assert canonical_crm_id("001HFGAi3f5dig9", "any_spelling") != "001hFGAi3f5dig9QDA"
    assert canonical_crm_id("001HFGAI3F5DIG9QDA", "any_spelling") == "001hFGAi3f5dig9QDA"
    assert crm_id_spellings("crm-00123", "any_spelling") == ("crm-00123", "crm00123",
                                                             "CRM00123")
    index = AccountIndex()
    index.add("crm:CRM 00123", AccountIdentity("CRM 00123", None, None, None))
    index.add("crm:001hFGAi3f5dig9", AccountIdentity("001hFGAi3f5dig9", None, None, None))
    for spelling in spellings:
        found = index.match(AccountIdentity(spelling, None, None, None), 0.9,
                            crm_ids="any_spelling")
        assert [m.account_key for m in found] == ["crm:CRM 00123"], spelling
        assert not different_customers(
            Identifiers(frozenset((spelling,))).canonical("any_spelling"),
            Identifiers(frozenset(("CRM 00123",))).canonical("any_spelling"))
    assert index.match(AccountIdentity("crm-00123", None, None, None), 0.9,
                       crm_ids="any_case") == []
    assert index.match(AccountIdentity("001HFGAi3f5dig9", None, None, None), 0.9,
                       crm_ids="any_spelling") == []
    assert index.remove("crm:CRM 00123")
    assert index.match(AccountIdentity("crm00123", None, None, None), 0.9,
                       crm_ids="any_spelling") == []


def test_policy_documents_keep_the_crm_id_rule_they_were_published_with() -> None:
    from shared.policy import Policy

    assert Policy.default().match.crm_ids == "any_spelling"
    published = Policy.default().model_dump(mode="json")
    published["match"]["crm_ids"] = "any_case"
    assert Policy.from_published(published).match.crm_ids == "any_case"
    published["match"].pop("crm_ids")
    assert Policy.from_published(published).match.crm_ids == "exact"


def test_a_full_width_salesforce_id_and_a_braced_guid_are_one_id_under_any_spelling() -> None:
    """Session 29, found by `SpellingRules`: `any_spelling` folded width only for ids that
    are no Salesforce id, so "001hFGAi3f5dig9" typed in full width (as an input method types
    it) was squeezed and case-folded -- "001hfgai3f5dig9", another customer than the
    holder's 001hFGAi3f5dig9 -- and a GUID in braces, as Dynamics 365's client API
    (`getId()`) gives it, kept its braces: another customer than the bare GUID."""
    holder = canonical_crm_id("001hFGAi3f5dig9", "any_spelling")
    for spelling in ("\uff10\uff10\uff11hFGAi3f5dig9",
                     "".join(chr(ord(c) + 0xFEE0) for c in "001hFGAi3f5dig9QDA")):
        assert canonical_crm_id(spelling, "any_spelling") == holder, spelling
    # Full width keeps the 15's case: another case is another record.
    assert canonical_crm_id("\uff10\uff10\uff11HFGAi3f5dig9", "any_spelling") != holder
    guid = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
    for spelling in ("{" + guid + "}", "{" + guid.lower() + "}", "{ " + guid + " }"):
        assert canonical_crm_id(spelling, "any_spelling") == \
            canonical_crm_id(guid, "any_spelling"), spelling
    assert not different_customers(
        Identifiers(frozenset({"{" + guid + "}"})).canonical("any_spelling"),
        Identifiers(frozenset({guid.lower()})).canonical("any_spelling"))
    # Braces around anything else are part of it.
    assert canonical_crm_id("{CRM-1}", "any_spelling") != canonical_crm_id("CRM-1",
                                                                           "any_spelling")
    # The index finds the full-width id under `any_spelling` only: documents saying
    # `any_case` compared it as another id, and their logs replay as they decided.
    wide = "\uff10\uff10\uff11hFGAi3f5dig9"
    for filed, asked in ((wide, "001hFGAi3f5dig9"), ("001hFGAi3f5dig9", wide)):
        index = AccountIndex()
        index.add("crm:" + filed, AccountIdentity(filed, None, None, None))
        query = AccountIdentity(asked, None, None, None)
        assert [m.account_key for m in index.match(query, 0.9, crm_ids="any_spelling")] \
            == ["crm:" + filed]
        assert index.match(query, 0.9, crm_ids="any_case") == []
