"""A relayed scope never widens a registration past what its own partition settled
(DESIGN.md, "A settlement's word reaches the copy's own partition"; invariant 1).

Rival partner p-05 (gold) challenges p-01's approval for crm on the domain key (A); A's
person awards by product: p-01 keeps analytics, p-05 wins crm. Meanwhile the name-only
key's review (B) held a copy of p-01 as it was reported earlier (analytics and crm) and
its person awards by product: analytics to p-02, crm to p-01's copy. That review never
saw p-05. The relay must not hand p-01 crm back on A over p-05's award.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.adjudication.domain import AdjudicationState, DecisionContext
from services.adjudication.domain.decide import decide_relaying
from shared.events import (
    Account,
    AccountLinkReported,
    DisputeOpened,
    DisputeResolutionSubmitted,
    DomainEvent,
    Opportunity,
    PartnerSnapshot,
    RegistrationDecided,
    RegistrationSubmitted,
    ReportedRegistration,
    SettlementRelayed,
)
from shared.events.disputes import ProductAward
from shared.policy import Policy

HOME = "dom:heuser-holdings.com"
ALIAS = "name:heuser holdings gmbh"
T = datetime(2026, 11, 1, tzinfo=UTC)


def _at(hours: int) -> datetime:
    return T + timedelta(hours=hours)


def _submitted(rid: str, partner: str, key: str, hours: int, products: tuple[str, ...],
               tier: str = "registered") -> RegistrationSubmitted:
    return RegistrationSubmitted(
        registration_id=rid, partner_id=partner,
        partner=PartnerSnapshot(partner_id=partner, tier=tier), account_key=key,
        account=Account(name="Heuser Holdings",
                        domain="heuser-holdings.com" if key == HOME else None),
        opportunity=Opportunity(title="deal", products=products), motion="resell",
        submitted_at=_at(hours), policy_version=1)


def _award(dispute_id: str, key: str, hours: int, **by_product: str) -> DisputeResolutionSubmitted:
    return DisputeResolutionSubmitted(
        dispute_id=dispute_id, account_key=key, actor_id="admin", actor_role="admin",
        outcome="award", submitted_at=_at(hours), awards=tuple(
            ProductAward(product=p, registration_id=r) for p, r in by_product.items()))


def _decide(state: AdjudicationState, eid: str, event: DomainEvent,
            hours: int) -> tuple[list[DomainEvent], list[SettlementRelayed]]:
    return decide_relaying(state, event, DecisionContext(eid, _at(hours), Policy.default(1)))


def _opened(decisions: list[DomainEvent]) -> str:
    return next(d.dispute_id for d in decisions if isinstance(d, DisputeOpened))


def test_a_relayed_scope_never_hands_back_what_the_home_partition_awarded_a_rival() -> None:
    home, alias = AdjudicationState(), AdjudicationState()
    _decide(home, "e1", _submitted("reg_p01", "p-01", HOME, 0, ("analytics", "crm")), 0)
    _decide(alias, "e2", AccountLinkReported(
        account_key=ALIAS, alias_key=HOME, matched_by="name", reported_at=_at(1),
        policy_version=1, registration_id="reg_p02", possible_duplicate=True,
        registrations=(ReportedRegistration(
            registration_id="reg_p01", party_type="partner", party_id="p-01",
            motion="resell", products=("analytics", "crm"), status="approved",
            submitted_at=_at(0)),)), 1)
    review, _ = _decide(alias, "e3", _submitted("reg_p02", "p-02", ALIAS, 1, ("analytics",)), 1)
    challenge, _ = _decide(
        home, "e4", _submitted("reg_p05", "p-05", HOME, 2, ("crm",), tier="gold"), 2)
    _decide(home, "e5", _award(_opened(challenge), HOME, 3, analytics="reg_p01",
                               crm="reg_p05"), 3)
    _, relays = _decide(alias, "e6", _award(_opened(review), ALIAS, 4, analytics="reg_p02",
                                            crm="reg_p01"), 4)
    assert [r.account_key for r in relays] == [HOME]
    applied, _ = _decide(home, "e6.r0", relays[0], 4)

    owners = {e.id: set(e.products or ()) for e in home.entries.values()
              if e.status == "approved" and not e.mirror}
    assert owners["reg_p05"] == {"crm"}, "p-05's award at home was overridden"
    assert not any("crm" in products for rid, products in owners.items() if rid != "reg_p05"), (
        f"two owners of crm at home: {owners}")
    last = [d for d in applied if isinstance(d, RegistrationDecided)
            and d.registration_id == "reg_p01"]
    assert last and last[-1].status == "rejected"
    assert "nothing it still held here" in last[-1].explanation
