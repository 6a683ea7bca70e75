"""Small builders of catalogue events for the fold tests (defaults filled in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.projections.domain.batch import MODELS, Item
from shared.events import (
    Account,
    Amount,
    ClaimDecided,
    ClaimFiled,
    ConflictEvidence,
    DisputeEscalated,
    DisputeOpened,
    DisputeResolved,
    DomainEvent,
    Opportunity,
    PartnerSnapshot,
    ProtectionEnded,
    ProtectionExtended,
    RegistrationDecided,
    RegistrationSubmitted,
)

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def submitted(rid: str = "reg_1", partner: str = "p-1", *, key: str = "dom:acme.com",
              minutes: float = 0, products: tuple[str, ...] = ("analytics",),
              motion: str = "resell", amount: str | None = "1200.50",
              currency: str = "USD", name: str = "Acme Corp", domain: str | None = "acme.com",
              country: str = "US", crm: str | None = None) -> RegistrationSubmitted:
    return RegistrationSubmitted(
        registration_id=rid, partner_id=partner, partner=PartnerSnapshot(partner_id=partner),
        account_key=key,
        account=Account(name=name, domain=domain, country=country, crm_account_id=crm),
        opportunity=Opportunity(title="deal", products=products,
                                amount=Amount(value=Decimal(amount), currency=currency)
                                if amount else None),
        motion=motion,  # type: ignore[arg-type]
        submitted_at=at(minutes), policy_version=1)


def decided(rid: str = "reg_1", partner: str = "p-1", *, status: str = "approved",
            rule: str = "no_conflict", key: str = "dom:acme.com", minutes: float = 0,
            until_minutes: float | None = 600, conflicts: tuple[ConflictEvidence, ...] = (),
            dispute_id: str | None = None, credit: str | None = None,
            scope: tuple[str, ...] | None = ("analytics",)) -> RegistrationDecided:
    return RegistrationDecided(
        registration_id=rid, partner_id=partner, account_key=key,
        status=status, rule=rule, policy_version=1,  # type: ignore[arg-type]
        explanation=f"{status} by {rule}", conflicts=conflicts, decided_at=at(minutes),
        protected_until=at(until_minutes) if until_minutes is not None else None,
        dispute_id=dispute_id, scope_products=scope,
        credit_percent=Decimal(credit) if credit else None)


def conflict(rid: str | None, party: str | None, party_type: str = "partner"
             ) -> ConflictEvidence:
    return ConflictEvidence(registration_id=rid, party_type=party_type,  # type: ignore[arg-type]
                            party_id=party, matched_by="domain", score=1.0)


def extended(rid: str = "reg_1", *, minutes: float, until_minutes: float,
             extensions: int = 1, party_type: str = "partner", party: str = "p-1",
             key: str = "dom:acme.com") -> ProtectionExtended:
    return ProtectionExtended(
        registration_id=rid, party_type=party_type, party_id=party,  # type: ignore[arg-type]
        account_key=key, protected_until=at(until_minutes), extensions=extensions,
        policy_version=1, explanation="extended", decided_at=at(minutes))


def ended(rid: str = "reg_1", *, minutes: float, reason: str = "withdrawn",
          status: str = "withdrawn", party_type: str = "partner", party: str = "p-1",
          key: str = "dom:acme.com", amount: str | None = None,
          incumbent_minutes: float | None = None) -> ProtectionEnded:
    return ProtectionEnded(
        registration_id=rid, party_type=party_type, party_id=party,  # type: ignore[arg-type]
        account_key=key, reason=reason, status=status,  # type: ignore[arg-type]
        rule=reason, policy_version=1, explanation=reason, ended_at=at(minutes),
        amount=Amount(value=Decimal(amount), currency="USD") if amount else None,
        incumbent_until=at(incumbent_minutes) if incumbent_minutes is not None else None)


def claim_filed(cid: str = "clm_1", rep: str = "rep-1", *, minutes: float = 0,
                kind: str = "named_account") -> ClaimFiled:
    return ClaimFiled(claim_id=cid, kind=kind, rep_id=rep,  # type: ignore[arg-type]
                      account_key="dom:acme.com", account=Account(domain="acme.com"),
                      products=(), filed_at=at(minutes), policy_version=1)


def claim_decided(cid: str = "clm_1", rep: str = "rep-1", *, minutes: float = 0,
                  status: str = "approved") -> ClaimDecided:
    return ClaimDecided(claim_id=cid, kind="named_account", rep_id=rep,
                        account_key="dom:acme.com", status=status,  # type: ignore[arg-type]
                        rule="no_conflict", policy_version=1, explanation="ok",
                        decided_at=at(minutes), protected_until=None, scope_products=None)


def opened(did: str = "dsp-1", members: tuple[str, ...] = ("reg_1", "reg_2"), *,
           minutes: float = 0, owner: str = "cm-1", due_minutes: float = 60) -> DisputeOpened:
    return DisputeOpened(dispute_id=did, account_key="dom:acme.com", registration_ids=members,
                         reason="tie", level=1, owner_id=owner, opened_at=at(minutes),
                         due_at=at(due_minutes), policy_version=1, rule="tie",
                         explanation=f"Dispute {did} opened over {', '.join(members)}")


def escalated(did: str = "dsp-1", *, minutes: float, owner: str = "dir-1",
              due_minutes: float = 200) -> DisputeEscalated:
    return DisputeEscalated(dispute_id=did, account_key="dom:acme.com", from_level=1,
                            to_level=2, owner_id=owner, breached_deadline=at(minutes),
                            due_at=at(due_minutes), policy_version=1, explanation="escalated")


def resolved(did: str = "dsp-1", members: tuple[str, ...] = ("reg_1", "reg_2"), *,
             minutes: float, outcome: str = "award", awarded: str | None = "reg_1",
             **extra: Any) -> DisputeResolved:
    return DisputeResolved(
        dispute_id=did, account_key="dom:acme.com", outcome=outcome,  # type: ignore[arg-type]
        registration_ids=members, awarded_registration_id=awarded,
        approved_ids=(awarded,) if awarded else (), resolved_by="cm-1", level=1,
        resolved_at=at(minutes), rule="dispute_resolution", policy_version=1,
        explanation=f"Dispute {did} resolved; approved: {awarded}", **extra)


def item(event: DomainEvent, event_id: str = "evt_1", minutes: float = 0,
         models: tuple[str, ...] = MODELS) -> Item:
    return Item(event_id, at(minutes), event, frozenset(models), event.to_data())
