"""A filing rejected at its decision has the names it brought taken back (session 29,
`match.rejected_names: unfiled`); once its rejection is undone -- promoted after the holder
it lost to ended, or approved by its contest -- they are its customer's names again
(`AdjudicationState.activate`; DESIGN.md "Session 29 second rival review")."""

from __future__ import annotations

from adjudication_driver import Driver, decisions, policy

from shared.accounts import AccountIdentity, normalize_name


def _trade_name_holders(d: Driver) -> list[str]:
    trade = AccountIdentity(None, None, normalize_name("Widget Labs", "US"), "US")
    return [m.account_key for m in d.state.index.match(trade, 0.9)]


def _driver() -> Driver:
    d = Driver(policy=policy(tie_window="PT0S"))
    d.register("r1", "p-1", name="Acme Corp")
    d.later(hours=1)
    d.register("r2", "p-2", name="Acme Corp dba Widget Labs")
    assert d.status("r2") == "rejected"
    assert _trade_name_holders(d) == []  # taken back: it held nothing
    return d


def test_a_promoted_filing_s_names_are_filed_again() -> None:
    d = _driver()
    d.later(hours=1)
    d.withdraw("r1")
    assert d.status("r2") == "approved"  # next in line (`promote_next`)
    assert _trade_name_holders(d) == ["dom:acme.com"]
    d.later(hours=1)
    out = d.register("r3", "p-3", domain=None, name="Widget Labs")
    [decided] = decisions(out, "r3")
    assert decided.status != "approved", decided
    assert "r2" in [c.registration_id for c in decided.conflicts], decided


def test_a_contested_filing_s_names_are_filed_again_while_a_person_decides() -> None:
    d = _driver()
    d.later(hours=1)
    d.contest("r2", "p-2")
    assert d.status("r2") == "in_review"
    assert _trade_name_holders(d) == ["dom:acme.com"]


def _trade_name_held_meanwhile() -> Driver:
    """r2's "Acme Corp dba Widget Labs" rejected, Widget Labs taken back; p-3 then holds
    Widget Labs by name alone (nobody's name then: approved)."""
    d = _driver()
    d.later(hours=1)
    [decided] = decisions(d.register("r3", "p-3", domain=None, name="Widget Labs"), "r3")
    assert (decided.status, decided.rule) == ("approved", "no_conflict"), decided
    d.later(hours=1)
    return d


def test_a_promotion_weighs_the_names_it_brings_back() -> None:
    """Session 30 rival review: promoted outright, r2 filed Widget Labs again beside r3's
    (two holders nobody weighed together). A person now decides, r3 in the dispute."""
    d = _trade_name_held_meanwhile()
    out = d.withdraw("r1")
    [decided] = decisions(out, "r2")
    assert (decided.status, decided.rule) == ("in_review", "possible_duplicate"), decided
    assert [c.registration_id for c in decided.conflicts] == ["r3"]
    assert d.state.entries["r3"].dispute_id == d.state.entries["r2"].dispute_id
    assert d.status("r3") == "approved"


def test_a_promotion_beside_a_confident_holder_of_the_names_is_blocked() -> None:
    """A name that decides (`match.name_only: decide`): the holder of the names brought
    back is the same customer, exclusive and another party's -- nothing active may
    overlap a promoted one, so r2 stays rejected and its names stay taken back."""
    d = Driver(policy=policy(tie_window="PT0S", match={"name_only": "decide"}))
    d.register("r1", "p-1", name="Acme Corp")
    d.later(hours=1)
    d.register("r2", "p-2", name="Acme Corp dba Widget Labs")
    d.later(hours=1)
    d.register("r3", "p-3", domain=None, name="Widget Labs")
    assert (d.status("r2"), d.status("r3")) == ("rejected", "approved")
    d.later(hours=1)
    d.withdraw("r1")
    assert d.status("r2") == "rejected"
    assert _trade_name_holders(d) == ["name:US:Widget Labs"]


def test_a_contest_weighs_the_names_it_brings_back() -> None:
    """A contest weighed r1 alone; the award approved r2 and filed Widget Labs again
    beside r3's. r3 is now in the contest's dispute (a possible duplicate)."""
    d = _trade_name_held_meanwhile()
    d.contest("r2", "p-2")
    assert d.status("r2") == "in_review"
    assert d.state.entries["r3"].dispute_id == d.state.entries["r2"].dispute_id


def test_a_promotion_weighs_names_taken_back_without_a_country() -> None:
    """The rejected "Acme Corp dba Widget Labs" gave no country: the names it brings back
    are a name alone, which no filing is, and the promotion asked nothing by them (an
    "empty" identity). Left out, the country still weighs a name against every country's
    (`match.countryless_names`): r3's Widget Labs (US) is a possible duplicate."""
    d = Driver(policy=policy(tie_window="PT0S"))
    d.register("r1", "p-1", name="Acme Corp")
    d.later(hours=1)
    d.register("r2", "p-2", name="Acme Corp dba Widget Labs", country=None)
    d.later(hours=1)
    d.register("r3", "p-3", domain=None, name="Widget Labs")
    assert (d.status("r2"), d.status("r3")) == ("rejected", "approved")
    d.later(hours=1)
    [decided] = decisions(d.withdraw("r1"), "r2")
    assert (decided.status, decided.rule) == ("in_review", "possible_duplicate"), decided
    assert [c.registration_id for c in decided.conflicts] == ["r3"]
