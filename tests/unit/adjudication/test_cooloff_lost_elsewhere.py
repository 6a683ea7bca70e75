"""A registration lost elsewhere first starts no cool-off (DESIGN.md, "Re-registration
cool-off"; invariant 12).

p-01's registration on the name-only key is approved, then withdrawn here. A review on the
domain key had rejected its copy; its relay (`SettlementRelayed`) reaches this partition
after the withdrawal, so the end stands. Whether the withdrawal starts a cool-off depends
on which came first in business time: a settlement decided at or before the withdrawal
took the registration away (the partner lost it, it did not let go), one decided after
it did not (the partner let go first).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.adjudication.domain import AdjudicationState, DecisionContext, decide
from shared.events import (
    Account,
    DomainEvent,
    Opportunity,
    PartnerSnapshot,
    RegistrationDecided,
    RegistrationSubmitted,
    RegistrationWithdrawn,
    RelayedDecision,
    SettlementRelayed,
)
from shared.policy import Policy

KEY = "name:DE:heuser-holdings"
T = datetime(2026, 11, 1, tzinfo=UTC)


def _at(hours: int) -> datetime:
    return T + timedelta(hours=hours)


def _submitted(rid: str, hours: int) -> RegistrationSubmitted:
    return RegistrationSubmitted(
        registration_id=rid, partner_id="p-01",
        partner=PartnerSnapshot(partner_id="p-01", tier="registered"), account_key=KEY,
        account=Account(name="Heuser Holdings", country="DE"),
        opportunity=Opportunity(title="deal", products=("analytics",)), motion="resell",
        submitted_at=_at(hours), policy_version=1)


def _decide(state: AdjudicationState, eid: str, event: DomainEvent,
            hours: int) -> list[DomainEvent]:
    return decide(state, event, DecisionContext(eid, _at(hours), Policy.default(1)))[1]


@pytest.mark.parametrize(("decided_hours", "barred"), [(10, False), (20, False), (30, True)])
def test_a_rejection_decided_before_the_withdrawal_lifts_its_cooloff(
        decided_hours: int, barred: bool) -> None:
    state = AdjudicationState()
    first = _decide(state, "e1", _submitted("reg_1", 0), 0)
    assert [(d.status, d.rule) for d in first if isinstance(d, RegistrationDecided)] == [
        ("approved", "no_conflict")]
    _decide(state, "e2", RegistrationWithdrawn(
        registration_id="reg_1", partner_id="p-01", account_key=KEY, withdrawn_at=_at(20),
        policy_version=1), 20)
    relayed = _decide(state, "e3", SettlementRelayed(
        account_key=KEY, dispute_id="dsp_x", decided_key="dom:heuser-holdings.com",
        outcome="award", rule="dispute_resolution", policy_version=1,
        decided_at=_at(decided_hours),
        decisions=(RelayedDecision(registration_id="reg_1", status="rejected"),)), 40)
    assert relayed == []  # its end stands: no decision
    again = _decide(state, "e4", _submitted("reg_2", 48), 48)
    decided = [(d.status, d.rule) for d in again if isinstance(d, RegistrationDecided)]
    assert decided == ([("rejected", "reregistration_cooloff")] if barred
                       else [("approved", "no_conflict")])
