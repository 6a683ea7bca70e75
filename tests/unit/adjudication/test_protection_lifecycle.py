"""Protection after approval: expiry, extensions, withdrawal, CRM close, incumbency, exits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from adjudication_driver import Driver, decisions, only, policy

from shared.events import (
    DisputeOpened,
    DisputeResolved,
    ProtectionEnded,
    ProtectionExtended,
    RegistrationActionRejected,
)


def test_protection_expires_at_the_end_of_the_period_and_frees_the_account() -> None:
    d = Driver(policy=policy(protection_period="PT60S"))
    d.register("r1", "p-1")
    out = d.run_until(d.now + timedelta(seconds=61))
    [ended] = only(out, ProtectionEnded)
    assert (ended.reason, ended.status, ended.rule) == ("expired", "expired", "expired")
    assert ended.ended_at == d.now - timedelta(seconds=1)
    [decision] = decisions(d.register("r2", "p-2"))
    assert decision.status == "approved"


def test_extension_moves_the_end_and_the_old_deadline_is_ignored() -> None:
    d = Driver(policy=policy(protection_period="PT60S",
                             extension={"period": "PT30S", "max_extensions": 1}))
    [approved] = decisions(d.register("r1", "p-1"))
    d.later(seconds=10)
    [extended] = only(d.extend("r1"), ProtectionExtended)
    assert extended.protected_until == approved.protected_until + timedelta(seconds=30)
    assert extended.extensions == 1
    assert only(d.run_until(d.now + timedelta(seconds=60)), ProtectionEnded) == []
    [ended] = only(d.run_until(d.now + timedelta(seconds=30)), ProtectionEnded)
    assert ended.ended_at == extended.protected_until


def test_extensions_beyond_the_maximum_are_refused() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(days=70)  # inside the last 30 days (extension.window) of the 90-day protection
    assert only(d.extend("r1"), ProtectionExtended)
    [refused] = only(d.extend("r1"), RegistrationActionRejected)
    assert (refused.action, refused.reason) == ("extend", "max_extensions")


@pytest.mark.parametrize("allowed", [0, 1, 2, 3])
def test_decide_grants_exactly_max_extensions_and_refuses_the_next(allowed: int) -> None:
    """The core alone (`decide`, no edge in front refusing first): a protection is extended
    exactly `max_extensions` times, each counted, and the next request is refused with
    `max_extensions` naming the count; an off-by-one either way changes the count."""
    d = Driver(policy=policy(protection_period="PT60S",
                             extension={"period": "PT60S", "max_extensions": allowed,
                                        "window": None}))
    d.register("r1", "p-1")
    granted = []
    for _ in range(allowed):
        d.later(seconds=10)
        [extended] = only(d.extend("r1"), ProtectionExtended)
        granted.append(extended.extensions)
    assert granted == list(range(1, allowed + 1))
    d.later(seconds=10)
    out = d.extend("r1")
    assert only(out, ProtectionExtended) == []
    [refused] = only(out, RegistrationActionRejected)
    assert (refused.action, refused.reason) == ("extend", "max_extensions")
    assert f"extended {allowed} time(s), the policy allows {allowed}" in refused.explanation


def test_only_the_owning_partner_may_extend_or_withdraw() -> None:
    d = Driver()
    d.register("r1", "p-1")
    assert only(d.extend("r1", "p-2"), RegistrationActionRejected)[0].reason == "not_party"
    assert only(d.withdraw("r1", "p-2"), RegistrationActionRejected)[0].reason == "not_party"
    assert only(d.withdraw("zz"), RegistrationActionRejected)[0].reason == (
        "unknown_registration")


def test_withdrawal_ends_protection_once() -> None:
    d = Driver()
    d.register("r1", "p-1")
    [ended] = only(d.withdraw("r1"), ProtectionEnded)
    assert (ended.reason, ended.status) == ("withdrawn", "withdrawn")
    assert only(d.withdraw("r1"), RegistrationActionRejected)[0].reason == "not_active"
    assert only(d.extend("r1"), RegistrationActionRejected)[0].reason == "not_active"


def test_closed_lost_ends_protection_without_incumbency() -> None:
    d = Driver()
    d.register("r1", "p-1")
    [ended] = only(d.close("r1", "lost"), ProtectionEnded)
    assert (ended.status, ended.incumbent_until) == ("lost", None)


def test_a_win_makes_the_partner_incumbent_and_it_beats_a_rival() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.later(days=10)
    [won] = only(d.close("r1", "won"), ProtectionEnded)
    assert won.status == "won"
    assert won.incumbent_until == d.now + timedelta(days=365)
    d.later(days=30)
    d.register("r2", "p-1")  # the incumbent comes back first
    d.later(hours=1)
    [rival] = decisions(d.register("r3", "p-2", tier="platinum"))
    assert (rival.status, rival.rule) == ("rejected", "incumbent")
    assert "won this account" in rival.explanation


def test_incumbent_challenger_opens_a_dispute_against_an_approved_newcomer() -> None:
    d = Driver()
    d.register("r1", "p-1")
    d.close("r1", "won")
    d.later(days=5)
    d.register("r2", "p-2")
    d.later(days=5)
    out = d.register("r3", "p-1")
    assert decisions(out)[0].rule == "incumbent"
    assert only(out, DisputeOpened)[0].reason == "challenger"


def test_incumbency_lapses_after_the_window() -> None:
    d = Driver(policy=policy(incumbency_window="P30D"))
    d.register("r1", "p-1")
    d.close("r1", "won")
    d.later(days=31)
    d.register("r2", "p-1")
    d.later(hours=1)
    [rival] = decisions(d.register("r3", "p-2", tier="platinum"))
    assert (rival.status, rival.rule) == ("in_review", "tier")


def test_a_late_close_after_expiry_still_counts_as_a_win() -> None:
    d = Driver(policy=policy(protection_period="PT60S"))
    d.register("r1", "p-1")
    d.run_until(d.now + timedelta(seconds=90))
    [won] = only(d.close("r1", "won"), ProtectionEnded)
    assert (won.status, won.incumbent_until is not None) == ("won", True)
    assert only(d.close("r1", "won"), RegistrationActionRejected)[0].reason == "not_active"


def test_partner_exit_ends_its_protections_and_moots_its_disputes() -> None:
    d = Driver()
    d.register("r1", "p-1", products=("a",))
    d.register("r2", "p-1", products=("b",))
    d.later(hours=1)
    d.register("r3", "p-2", products=("b",))  # tie with r2 -> dispute
    out = d.partner("p-1", "exited")
    ended = only(out, ProtectionEnded)
    assert [(e.registration_id, e.reason, e.rule) for e in ended] == [
        ("r1", "partner_exited", "partner_inactive"), ("r2", "partner_exited", "partner_inactive")]
    assert only(out, DisputeResolved)[0].outcome == "moot"
    assert d.status("r3") == "approved"


def test_suspended_partner_keeps_its_protections() -> None:
    d = Driver()
    d.register("r1", "p-1")
    assert only(d.partner("p-1", "suspended"), ProtectionEnded) == []
    assert d.status("r1") == "approved"
    assert decisions(d.register("r2", "p-1", products=("x",)))[0].rule == "partner_inactive"


def test_released_named_account_claim_frees_the_account() -> None:
    d = Driver()
    d.claim("c1")
    [ended] = only(d.release("c1"), ProtectionEnded)
    assert (ended.reason, ended.party_type) == ("released", "direct")
    assert decisions(d.register("r1", "p-1"))[0].status == "approved"


def test_forgotten_entries_leave_the_state_after_one_protection_period() -> None:
    d = Driver(policy=policy(protection_period="PT60S"))
    d.register("r1", "p-1")
    d.withdraw("r1")
    d.run_until(d.now + timedelta(seconds=61))
    d.register("r2", "p-2", domain="other.com")
    assert "r1" not in d.state.entries
