"""A test driver for the pure adjudication core that behaves like the worker.

It stamps policy versions, passes the stamped policy in the DecisionContext, and lets time
pass the way the adapter does: before each event, every firing `due_timers` reports up to
that event's time is decided first, with the envelope time of the firing's deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.adjudication.domain import (
    AdjudicationState,
    DecisionContext,
    decide,
    due_timers,
    policy_version_of,
)
from shared.events import (
    Account,
    ClaimDecided,
    ClaimFiled,
    ClaimReleased,
    DisputeAcknowledged,
    DisputeFiled,
    DisputeResolutionSubmitted,
    DomainEvent,
    Opportunity,
    OpportunityClosed,
    PartnerSnapshot,
    PartnerStatusChanged,
    ProductAward,
    RegistrationDecided,
    RegistrationExtensionRequested,
    RegistrationSubmitted,
    RegistrationWithdrawn,
    Split,
)
from shared.policy import Policy

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  # a Monday


def policy(**overrides: Any) -> Policy:
    """A policy for the domain tests. Its dispute deadlines fall due exactly at the SLA
    (`escalation.deadline_unit` null, as before session 29) unless `escalation` names a
    unit: these tests state exact deadlines; the product default (the next whole UTC hour)
    has its own tests (`test_deadline_unit.py`). A promotion after an expiry likewise takes
    effect at the expiry (`promotion_unit` null, as before session 30) unless named
    (`test_promotion_unit.py`)."""
    data: dict[str, Any] = {"version": 4, "promotion_unit": None}
    data.update(overrides)
    escalation = data.get("escalation")
    if escalation is None or isinstance(escalation, dict):
        data["escalation"] = {"deadline_unit": None, **(escalation or {})}
    return Policy.model_validate(data)


@dataclass
class Driver:
    policy: Policy = field(default_factory=lambda: policy())
    now: datetime = START
    state: AdjudicationState = field(default_factory=AdjudicationState)
    log: list[DomainEvent] = field(default_factory=list)
    fire_timers: bool = True
    policies: dict[int, Policy] = field(default_factory=dict)
    _n: int = 0

    def __post_init__(self) -> None:
        self.policies[self.policy.version] = self.policy

    # --- time -----------------------------------------------------------------------------

    def later(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now

    def run_until(self, moment: datetime) -> list[DomainEvent]:
        """Fire every due timer up to `moment`, as the worker would; move `now` there."""
        out: list[DomainEvent] = []
        while self.fire_timers:
            firings = due_timers(self.state, moment)
            if not firings:
                break
            for firing in firings:
                out += self._decide(firing, max(firing.deadline, self.now))
        self.now = max(self.now, moment)
        return out

    def publish(self, new: Policy) -> None:
        self.policies[new.version] = new
        self.policy = new

    # --- feeding --------------------------------------------------------------------------

    def feed(self, event: DomainEvent, at: datetime | None = None) -> list[DomainEvent]:
        moment = at or self.now
        before = self.run_until(moment)
        return before + self._decide(event, moment)

    def _decide(self, event: DomainEvent, moment: datetime) -> list[DomainEvent]:
        self._n += 1
        version = policy_version_of(event)
        context = DecisionContext(
            f"e{self._n}", moment, self.policies[version] if version is not None else None
        )
        _, out = decide(self.state, event, context)
        self.log += out
        return out

    # --- commands -------------------------------------------------------------------------

    def register(
        self,
        rid: str,
        partner: str = "p-1",
        *,
        domain: str | None = "acme.com",
        name: str | None = "Acme Corp",
        country: str | None = "US",
        crm: str | None = None,
        key: str | None = None,
        products: tuple[str, ...] = ("analytics",),
        motion: str = "resell",
        tier: str = "gold",
        status: str = "active",
        at: datetime | None = None,
    ) -> list[DomainEvent]:
        moment = at or self.now
        event = RegistrationSubmitted(
            registration_id=rid,
            partner_id=partner,
            partner=PartnerSnapshot(partner_id=partner, tier=tier, status=status),
            account_key=key or (f"dom:{domain}" if domain else f"name:{country}:{name}"),
            account=Account(name=name, domain=domain, country=country, crm_account_id=crm),
            opportunity=Opportunity(title="deal", products=products),
            motion=motion,  # type: ignore[arg-type]
            submitted_at=moment,
            policy_version=self.policy.version,
        )
        return self.feed(event, moment)

    def claim(
        self, cid: str, rep: str = "rep-1", *, kind: str = "named_account",
        domain: str = "acme.com", products: tuple[str, ...] = (), at: datetime | None = None,
    ) -> list[DomainEvent]:
        moment = at or self.now
        return self.feed(
            ClaimFiled(
                claim_id=cid, kind=kind, rep_id=rep,  # type: ignore[arg-type]
                account_key=f"dom:{domain}",
                account=Account(name=None, domain=domain, country="US"),
                products=products, filed_at=moment, policy_version=self.policy.version,
            ),
            moment,
        )

    def release(self, cid: str, rep: str = "rep-1", domain: str = "acme.com") -> list[DomainEvent]:
        return self.feed(ClaimReleased(claim_id=cid, rep_id=rep, account_key=f"dom:{domain}",
                                       released_at=self.now))

    def withdraw(self, rid: str, partner: str = "p-1") -> list[DomainEvent]:
        return self.feed(RegistrationWithdrawn(registration_id=rid, partner_id=partner,
                                               account_key="dom:acme.com",
                                               withdrawn_at=self.now))

    def extend(self, rid: str, partner: str = "p-1") -> list[DomainEvent]:
        return self.feed(RegistrationExtensionRequested(
            registration_id=rid, partner_id=partner, account_key="dom:acme.com",
            requested_at=self.now))

    def close(self, rid: str, outcome: str = "won") -> list[DomainEvent]:
        return self.feed(OpportunityClosed(registration_id=rid, account_key="dom:acme.com",
                                           outcome=outcome,  # type: ignore[arg-type]
                                           closed_at=self.now))

    def partner(self, partner: str, status: str) -> list[DomainEvent]:
        return self.feed(PartnerStatusChanged(partner_id=partner, status=status,  # type: ignore[arg-type]
                                              account_key=f"partner:{partner}",
                                              changed_at=self.now))

    def contest(self, rid: str, partner: str, dispute_id: str = "dsp-c1") -> list[DomainEvent]:
        return self.feed(DisputeFiled(dispute_id=dispute_id, registration_id=rid,
                                      partner_id=partner, account_key="dom:acme.com",
                                      reason="we were first", filed_at=self.now,
                                      policy_version=self.policy.version))

    def acknowledge(self, dispute_id: str, actor: str, role: str = "owner") -> list[DomainEvent]:
        return self.feed(DisputeAcknowledged(dispute_id=dispute_id, account_key="dom:acme.com",
                                             actor_id=actor, actor_role=role,  # type: ignore[arg-type]
                                             acknowledged_at=self.now))

    def resolve(
        self, dispute_id: str, outcome: str, actor: str = "cm-1", role: str = "owner",
        registration_id: str | None = None, splits: dict[str, int] | None = None,
        awards: dict[str, str] | None = None,
    ) -> list[DomainEvent]:
        return self.feed(DisputeResolutionSubmitted(
            dispute_id=dispute_id, account_key="dom:acme.com", actor_id=actor,
            actor_role=role,  # type: ignore[arg-type]
            outcome=outcome,  # type: ignore[arg-type]
            registration_id=registration_id,
            splits=tuple(Split(registration_id=r, percent=Decimal(p))
                         for r, p in (splits or {}).items()),
            awards=tuple(ProductAward(product=p, registration_id=r)
                         for p, r in (awards or {}).items()),
            note="settled", submitted_at=self.now))

    # --- reading the decision stream ------------------------------------------------------

    def status(self, rid: str) -> str:
        return self.state.entries[rid].status


def decisions(events: list[DomainEvent], rid: str | None = None) -> list[Any]:
    found: list[Any] = []
    for e in events:
        if isinstance(e, RegistrationDecided) and (rid is None or e.registration_id == rid):
            found.append(e)
        if isinstance(e, ClaimDecided) and (rid is None or e.claim_id == rid):
            found.append(e)
    return found


def only(events: list[DomainEvent], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]
