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
