"""A country-less name is weighed with both readings of its spelling (session 30,
`countryless_readings`): "Acme Robotics Corp (UK)" given without a country is "acme
robotics" (any country qualifier dropped), and matched nothing against a US holder filed
under that very spelling ("acme robotics corp uk": a qualifier naming another country is
part of the name), which the same newcomer giving US matched exactly. DESIGN.md "Session
30 rival review"."""

from __future__ import annotations

from adjudication_driver import Driver, decisions, policy

from shared.accounts import AccountIdentity, AccountIndex, normalize_name

_SPELLING = "Acme Robotics Corp (UK)"


def _holder() -> Driver:
    d = Driver(policy=policy(tie_window="PT0S"))
    d.register("r1", "p-1", domain=None, name=_SPELLING, country="US", crm="CRM-1")
    d.later(hours=1)
    return d


def test_a_countryless_newcomer_meets_a_holder_of_its_spelling_with_a_foreign_qualifier(
) -> None:
    d = _holder()
    [decided] = decisions(d.register("r2", "p-2", domain=None, name=_SPELLING, country=None,
                                     crm="CRM-2"), "r2")
    assert decided.status != "approved" or decided.rule != "no_conflict", decided
    assert "r1" in [c.registration_id for c in decided.conflicts], decided


def test_the_same_newcomer_giving_the_holder_s_country_is_met_as_before() -> None:
    d = _holder()
    [decided] = decisions(d.register("r2", "p-2", domain=None, name=_SPELLING, country="US",
                                     crm="CRM-2"), "r2")
    assert "r1" in [c.registration_id for c in decided.conflicts], decided


def test_a_uk_newcomer_is_not_the_us_holder_s_customer() -> None:
    """The "(UK)" subsidiary filed in the US and a UK company's "Acme Robotics" filed in
    GB are two customers: nothing joins them (each gave its country)."""
    d = _holder()
    [decided] = decisions(d.register("r2", "p-2", domain=None, name="Acme Robotics Ltd",
                                     country="GB", crm="CRM-2"), "r2")
    assert (decided.status, decided.rule) == ("approved", "no_conflict"), decided


def test_the_index_weighs_both_readings_never_confidently() -> None:
    index = AccountIndex()
    index.add("k-us", AccountIdentity(None, None, normalize_name(_SPELLING, "US"), "US"))
    index.add("k-gb", AccountIdentity(None, None, normalize_name("Zeta Ltd", "GB"), "GB"))
    asked = AccountIdentity(None, None, normalize_name(_SPELLING), None)
    assert index.match(asked, 0.9) == []  # the dropped reading alone: the gap
    [found] = index.match(asked, 0.9, raw_name=_SPELLING)
    assert (found.account_key, found.score, found.confident, found.any_country) == (
        "k-us", 1.0, False, True)
    # With a country the query is read as that country reads it: no other readings.
    us = AccountIdentity(None, None, normalize_name(_SPELLING, "US"), "US")
    assert [m.account_key for m in index.match(us, 0.9, raw_name=_SPELLING)] == ["k-us"]
