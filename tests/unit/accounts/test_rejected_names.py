"""The names a rejected filing brought are taken back (`AccountIndex.new_name_forms` /
`unfile_names`, policy `match.rejected_names`; DESIGN.md, "A rejected filing adds no names
that join customers")."""

from __future__ import annotations

from shared.accounts import AccountIdentity, AccountIndex, normalize_name
from shared.policy import Policy


def test_only_the_names_a_filing_brought_are_taken_back() -> None:
    index = AccountIndex()
    held = normalize_name("Beta Systems", "US")
    index.add("dom:beta.com", AccountIdentity(None, "beta.com", held, "US"))
    both = normalize_name("Beta Systems dba Alpha Robotics", "US")
    fresh = index.new_name_forms("dom:beta.com", both, "US")
    assert fresh == (normalize_name("Alpha Robotics", "US"),)
    index.add("dom:beta.com", AccountIdentity(None, "beta.com", both, "US"))
    alpha = AccountIdentity(None, None, normalize_name("Alpha Robotics", "US"), "US")
    assert [m.account_key for m in index.match(alpha, 0.9)] == ["dom:beta.com"]
    index.unfile_names("dom:beta.com", fresh, "US")
    assert index.match(alpha, 0.9) == []
    # The key's own name stays, in every country it was filed in.
    beta = AccountIdentity(None, None, held, "US")
    assert [m.account_key for m in index.match(beta, 0.9)] == ["dom:beta.com"]
    assert [n for n, _ in index.filed_names("dom:beta.com")] == [held]


def test_a_name_filed_elsewhere_for_the_key_stays_among_its_names() -> None:
    index = AccountIndex()
    name = normalize_name("Alpha Robotics", None)
    index.add("crm:1", AccountIdentity("1", None, name, "DE"))
    fresh = index.new_name_forms("crm:1", name, None)
    assert fresh == (name,)
    index.add("crm:1", AccountIdentity("1", None, name, None))
    index.unfile_names("crm:1", fresh, None)
    assert index.filed_names("crm:1") == ((name, frozenset({"DE"})),)


def test_documents_published_before_the_option_keep_rejected_names_filed() -> None:
    assert Policy().match.rejected_names == "unfiled"
    assert Policy.from_published({"version": 3}).match.rejected_names == "filed"
    assert Policy.from_published(
        {"version": 4, "match": {"crm_ids": "any_spelling"}}).match.rejected_names == "filed"
    assert Policy.from_published(
        {"version": 5, "match": {"rejected_names": "unfiled"}}).match.rejected_names == "unfiled"


def test_giving_the_country_to_a_name_the_key_has_without_one_is_not_taken_back() -> None:
    """Session 30 rival review: a holder that filed its name without a country gives the
    country by filing again (rejected as its own duplicate); that name in that country
    stays, so it holds against namesakes giving the country. A new form in that filing
    is still taken back, and so is a name given in a country the key has not filed it
    without one."""
    index = AccountIndex()
    quiet = normalize_name("Gamma Works", None)
    index.add("crm:7", AccountIdentity("7", None, quiet, None))
    both = normalize_name("Gamma Works dba Delta Labs", "US")
    assert index.new_name_forms("crm:7", both, "US") == (
        normalize_name("Gamma Works", "US"), normalize_name("Delta Labs", "US"))
    assert index.taken_back_if_rejected("crm:7", both, "US") == (
        normalize_name("Delta Labs", "US"),)
    assert index.taken_back_if_rejected("crm:7", quiet, None) == ()
    index.add("crm:8", AccountIdentity("8", None, quiet, "DE"))
    assert index.taken_back_if_rejected("crm:8", quiet, "US") == (quiet,)


def test_giving_the_country_beside_another_key_s_name_there_is_taken_back() -> None:
    """Session 30 second rival review: a name the key has without a country (which holds
    nothing there) given a country where another key already has it joins that holder's
    name to the key unweighed; a rejected filing is no evidence, so it is taken back. In a
    country where nobody has it, giving the country stays (the first round's rule)."""
    index = AccountIndex()
    quiet = normalize_name("Gamma Works", None)
    index.add("crm:7", AccountIdentity("7", None, quiet, None))
    index.add("name:DE:gamma-works", AccountIdentity(None, None, quiet, "DE"))
    assert index.taken_back_if_rejected("crm:7", quiet, "DE") == (quiet,)
    assert index.taken_back_if_rejected("crm:7", quiet, "US") == ()
    index.add("crm:7", AccountIdentity("7", None, quiet, "US"))
    assert index.taken_back_if_rejected("crm:7", quiet, "US") == ()
