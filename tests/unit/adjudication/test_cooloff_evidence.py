"""A cool-off rejection says how the new registration matched its customer (invariant 6).

Found by `ElsewhereInvariants` in session 25's full suite (Jones Consulting Systems): p-04's
registration opened `dom:jones-consulting-systems.io`; withdrawn, it started the cool-off.
p-04 registered again with another domain (`.com`) and the CRM id a registration under that
key had carried, so the edge filed it under the `.io` key by its CRM id. The cool-off
rejection's evidence said `matched_by: domain` (the key's form, how the OLD registration
matched), though the two registrations share no domain: the new one matched by its CRM id.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.adjudication.domain import AdjudicationState, DecisionContext, decide
from shared.events import (
    Account,
    DomainEvent,
    Opportunity,
    PartnerSnapshot,
    RegistrationDecided,
    RegistrationSubmitted,
    RegistrationWithdrawn,
)
from shared.policy import Policy

KEY = "dom:jones-consulting-systems.io"
T = datetime(2026, 11, 1, tzinfo=UTC)


def _submitted(rid: str, partner: str, hours: int, domain: str, crm: str | None
               ) -> RegistrationSubmitted:
    return RegistrationSubmitted(
        registration_id=rid, partner_id=partner,
        partner=PartnerSnapshot(partner_id=partner, tier="gold"), account_key=KEY,
        account=Account(name="Jones Consulting Systems", domain=domain, country="GB",
                        crm_account_id=crm),
        opportunity=Opportunity(title="deal", products=("crm",)), motion="resell",
        submitted_at=T + timedelta(hours=hours), policy_version=1)


def _decide(state: AdjudicationState, eid: str, event: DomainEvent,
            hours: int) -> list[RegistrationDecided]:
    out = decide(state, event, DecisionContext(eid, T + timedelta(hours=hours),
                                               Policy.default(1)))[1]
    return [d for d in out if isinstance(d, RegistrationDecided)]


def test_a_cooloff_rejection_names_the_crm_id_its_registration_matched_by() -> None:
    state = AdjudicationState()
    # p-04 opens the key by its domain and withdraws: its cool-off starts.
    assert [d.status for d in _decide(state, "e1", _submitted(
        "reg_1", "p-04", 0, "jones-consulting-systems.io", "CRM-12-00006"), 0)] == ["approved"]
    _decide(state, "e2", RegistrationWithdrawn(
        registration_id="reg_1", partner_id="p-04", account_key=KEY,
        withdrawn_at=T + timedelta(hours=1)), 1)
    # Again, with another domain and the same CRM id: filed under the key by the CRM id.
    again = _decide(state, "e3", _submitted(
        "reg_2", "p-04", 2, "jones-consulting-systems.com", "CRM-12-00006"), 2)
    assert [(d.status, d.rule) for d in again] == [("rejected", "reregistration_cooloff")]
    [conflict] = again[0].conflicts
    assert (conflict.registration_id, conflict.matched_by) == ("reg_1", "crm_account_id")
