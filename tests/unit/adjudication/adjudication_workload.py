"""A generated, realistic intake workload for the adjudicator, recorded as the log it makes.

`generate` plays users against the core the way the system would: partners register (often
colliding on a few hundred accounts, some under name-only or CRM keys, a few with misspelt
names), reps file claims, partners extend, withdraw and contest, the CRM closes deals,
partners exit, escalation owners acknowledge and resolve the disputes they see, and a driver
that mimics the worker appends a TimerFired whenever the clock passes a deadline. The
result is the intake log (event, envelope time), which replaying into a fresh state must
turn into the same decisions. Randomness lives here, in the test, never in the core.
"""

from __future__ import annotations

import random
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
    ClaimFiled,
    DisputeAcknowledged,
    DisputeFiled,
    DisputeResolutionSubmitted,
    DomainEvent,
    Opportunity,
    OpportunityClosed,
    PartnerSnapshot,
    PartnerStatusChanged,
    RegistrationExtensionRequested,
    RegistrationSubmitted,
    RegistrationWithdrawn,
    Split,
)
from shared.policy import Policy
from tests.support.workloads import Contestable, OpenDisputes, track

START = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
PRODUCTS = ("analytics", "storage", "compute", "network", "security")
TIERS = ("platinum", "gold", "silver", "registered")
SYLLABLES = ("ac", "me", "glo", "bex", "ini", "tech", "um", "bre", "la", "hoo", "li", "stark",
             "way", "ne", "won", "ka", "ty", "rel", "cy", "ber", "dyne", "soy", "lent", "van",
             "de", "pi", "per", "dun", "mif", "lin", "os", "corp", "aper", "tu", "ra", "zor")
COMMON = ("systems", "group", "labs", "solutions", "holdings", "partners", "industries",
          "technologies", "bank", "energy")
LEGAL = ("Inc", "Corp", "GmbH", "Ltd", "LLC", "S.A.", "AG", "")


def workload_policies() -> dict[int, Policy]:
    """Short durations so that expiries, reminders and escalations happen constantly."""
    base: dict[str, Any] = {
        "protection_period": "PT8H",
        "extension": {"period": "PT2H", "max_extensions": 2},
        "tie_window": "PT10M",
        "incumbency_window": "P2D",
        # promoted at the expiry, as before session 30 (`promotion_unit`): the determinism
        # harness's workload; `test_promotion_unit.py` replays it with a unit
        "promotion_unit": None,
        "escalation": {
            "levels": [{"owner_id": "cm-1", "sla": "PT40M"}, {"owner_id": "dir-1", "sla": "PT1H"}],
            "reminder_before": "PT10M",
            "on_final_breach": "first_submitted",
            # exact deadlines, as before session 29: the determinism harness's workload
            "deadline_unit": None,
        },
    }
    v5 = dict(base, version=5, precedence=["direct_named_account", "tier", "first_submitted"],
              escalation=dict(base["escalation"], on_final_breach="keep_open",
                              calendar={"timezone": "Europe/Berlin", "hours": "08:00-18:00",
                                        "holidays": "DE"}))
    return {4: Policy.model_validate(dict(base, version=4)), 5: Policy.model_validate(v5)}


@dataclass
class Account_:
    key: str
    domain: str | None
    name: str
    country: str
    crm: str | None


@dataclass
class Recorder:
    """Feeds events into a state like the worker and records the intake log."""

    policies: dict[int, Policy]
    state: AdjudicationState = field(default_factory=AdjudicationState)
    log: list[tuple[DomainEvent, datetime]] = field(default_factory=list)
    decisions: list[DomainEvent] = field(default_factory=list)
    now: datetime = START

    def feed(self, event: DomainEvent, at: datetime) -> list[DomainEvent]:
        out: list[DomainEvent] = []
        for firing in due_timers(self.state, at):
            out += self._decide(firing, max(firing.deadline, self.now))
        out += self._decide(event, at)
        return out

    def _decide(self, event: DomainEvent, at: datetime) -> list[DomainEvent]:
        self.now = max(self.now, at)
        self.log.append((event, at))
        version = policy_version_of(event)
        context = DecisionContext(f"e{len(self.log)}", at,
                                  self.policies[version] if version is not None else None)
        _, out = decide(self.state, event, context)
        self.decisions += out
        return out


def accounts(rng: random.Random, count: int) -> list[Account_]:
    found: list[Account_] = []
    for i in range(count):
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3, 3, 4))))
        common = rng.choice(COMMON) if rng.random() < 0.6 else ""
        name = " ".join(p for p in (word.title(), common.title(), rng.choice(LEGAL)) if p)
        country = rng.choice(("US", "DE", "GB"))
        domain = f"{word}{i}.com" if rng.random() < 0.85 else None
        crm = f"CRM-{i}" if rng.random() < 0.3 else None
        key = f"dom:{domain}" if domain else (f"crm:{crm}" if crm else
                                               f"name:{country}:{name.replace(' ', '-')}")
        found.append(Account_(key, domain, name, country, crm))
    return found


def generate(events: int, seed: int = 7, n_accounts: int = 400,
             partners: int = 100) -> tuple[list[tuple[DomainEvent, datetime]], list[DomainEvent]]:
    """An intake log of at least `events` events, and the decisions made while recording."""
    rng = random.Random(seed)
    policies = workload_policies()
    rec = Recorder(policies)
    universe = accounts(rng, n_accounts)
    tiers = {f"p-{i}": rng.choice(TIERS) for i in range(partners)}
    exited: set[str] = set()
    submitted: list[tuple[str, str, str]] = []  # (id, partner, account key)
    disputes: OpenDisputes = {}
    rejected: Contestable = []
    version = 4
    now = START
    n = 0
    while len(rec.log) < events:
        n += 1
        now += timedelta(seconds=rng.expovariate(1 / 45))
        if n == events // 2:
            version = 5  # a new policy is published half-way
        roll = rng.random()
        out: list[DomainEvent]
        if roll < 0.58 or not submitted:
            acct = rng.choice(universe[: max(10, len(universe) * n // events)])
            partner = f"p-{rng.randrange(partners)}"
            rid = f"r{n}"
            key, domain, name = acct.key, acct.domain, acct.name
            if rng.random() < 0.06:  # the cross-key race: same customer, name-only key
                domain, key = None, f"name:{acct.country}:{acct.name.replace(' ', '-')}"
            if rng.random() < 0.03:  # a misspelling
                name = name[:-3] + name[-2] + name[-3] + name[-1]
            products = tuple(sorted(rng.sample(PRODUCTS, rng.choice((1, 1, 2, 3)))))
            motion = rng.choices(("resell", "co_sell", "referral", "influence"),
                                 (80, 8, 8, 4))[0]
            status = "exited" if partner in exited else rng.choices(
                ("active", "onboarding", "suspended"), (95, 3, 2))[0]
            out = rec.feed(RegistrationSubmitted(
                registration_id=rid, partner_id=partner,
                partner=PartnerSnapshot(partner_id=partner, tier=tiers[partner], status=status),
                account_key=key,
                account=Account(name=name, domain=domain, country=acct.country,
                                crm_account_id=acct.crm),
                opportunity=Opportunity(title=f"deal {n}", products=products),
                motion=motion, submitted_at=now - timedelta(seconds=rng.randrange(0, 5)),
                policy_version=version), now)
            submitted.append((rid, partner, key))
        elif roll < 0.61:
            acct = rng.choice(universe)
            kind = "named_account" if rng.random() < 0.3 else "opportunity"
            out = rec.feed(ClaimFiled(
                claim_id=f"c{n}", kind=kind, rep_id=f"rep-{rng.randrange(8)}",
                account_key=acct.key,
                account=Account(name=acct.name, domain=acct.domain, country=acct.country,
                                crm_account_id=acct.crm),
                products=tuple(rng.sample(PRODUCTS, 1)), filed_at=now,
                policy_version=version), now)
        elif roll < 0.66:
            rid, partner, key = rng.choice(submitted[-300:])
            out = rec.feed(RegistrationWithdrawn(registration_id=rid, partner_id=partner,
                                                 account_key=key, withdrawn_at=now), now)
        elif roll < 0.72:
            rid, partner, key = rng.choice(submitted[-300:])
            out = rec.feed(RegistrationExtensionRequested(
                registration_id=rid, partner_id=partner, account_key=key, requested_at=now),
                now)
        elif roll < 0.77:
            rid, partner, key = rng.choice(submitted[-300:])
            out = rec.feed(OpportunityClosed(registration_id=rid, account_key=key,
                                             outcome=rng.choice(("won", "lost")),
                                             closed_at=now), now)
        elif roll < 0.81 and disputes:
            did = rng.choice(sorted(disputes))
            owner, _, key = disputes[did]
            actor, role = (owner, "owner") if rng.random() < 0.85 else ("cm-x", "owner")
            out = rec.feed(DisputeAcknowledged(dispute_id=did, account_key=key, actor_id=actor,
                                               actor_role=role, acknowledged_at=now), now)
        elif roll < 0.855 and disputes:
            did = rng.choice(sorted(disputes))
            owner, members, key = disputes[did]
            outcome = rng.choice(("award", "award", "split", "co_sell", "reject_all"))
            splits: tuple[Split, ...] = ()
            award = None
            if outcome == "award":
                award = rng.choice(members)
            elif outcome == "split":
                share = Decimal(100) / len(members)
                shares = [share.quantize(Decimal("0.01"))] * len(members)
                shares[0] += Decimal(100) - sum(shares)
                splits = tuple(Split(registration_id=m, percent=p)
                               for m, p in zip(members, shares, strict=True))
            actor, role = ((owner, "owner") if rng.random() < 0.9 else ("admin-1", "admin"))
            out = rec.feed(DisputeResolutionSubmitted(
                dispute_id=did, account_key=key, actor_id=actor, actor_role=role,
                outcome=outcome, registration_id=award, splits=splits, submitted_at=now),
                now)
            if rng.random() < 0.1:  # and sometimes again: a 409
                out += rec.feed(DisputeResolutionSubmitted(
                    dispute_id=did, account_key=key, actor_id=owner, actor_role="owner",
                    outcome="reject_all", submitted_at=now), now)
        elif roll < 0.875 and rejected:
            rid, partner, key = rng.choice(rejected[-100:])
            out = rec.feed(DisputeFiled(dispute_id=f"dc{n}", registration_id=rid,
                                        partner_id=partner, account_key=key,
                                        reason="contest", filed_at=now,
                                        policy_version=version), now)
        elif roll < 0.8765:
            partner = f"p-{rng.randrange(partners)}"
            status = rng.choices(("exited", "suspended", "active"), (1, 2, 3))[0]
            if status == "exited":
                exited.add(partner)
            out = rec.feed(PartnerStatusChanged(partner_id=partner, status=status,
                                                account_key=f"partner:{partner}",
                                                changed_at=now), now)
        else:
            continue
        track(out, disputes, rejected)
    return rec.log, rec.decisions


def replay(log: list[tuple[DomainEvent, datetime]]) -> tuple[AdjudicationState, list[DomainEvent]]:
    """Re-decide a recorded intake log in a fresh state, as a recovering worker does."""
    policies = workload_policies()
    state = AdjudicationState()
    decisions: list[DomainEvent] = []
    for i, (event, at) in enumerate(log, 1):
        version = policy_version_of(event)
        context = DecisionContext(f"e{i}", at, policies[version] if version is not None else None)
        _, out = decide(state, event, context)
        decisions += out
    return state, decisions
