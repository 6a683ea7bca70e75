"""A realistic log for projection tests and benchmarks: intake events and the decisions the
real (pure) adjudication core makes of them, as envelopes with the ids the worker gives.

Partners register on a pool of accounts (colliding often), reps file claims, partners
extend, withdraw and contest, the CRM closes deals, owners acknowledge and resolve
disputes, and deadlines fire (a driver appends `TimerFired` like the adjudicator's adapter).
Decision envelope ids are `<input id>.d<i>`, each keyed by its own account key (the input's
when it names none), exactly as `services/adjudication/worker.py` writes them: every record
about a registration, claim or dispute is then on its account's partition, which the
parallel rebuild relies on (adjudication DESIGN.md invariant 14; `partition_breaches`
checks a workload). Randomness lives here, never in the cores.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
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
from services.projections.domain import timeline
from shared.events import (
    Account,
    Amount,
    ClaimFiled,
    DisputeAcknowledged,
    DisputeFiled,
    DisputeOpened,
    DisputeResolutionSubmitted,
    DomainEvent,
    Envelope,
    Opportunity,
    OpportunityClosed,
    PartnerSnapshot,
    RegistrationExtensionRequested,
    RegistrationSubmitted,
    RegistrationWithdrawn,
    Split,
    new_envelope,
)
from shared.policy import Policy
from tests.support.workloads import Contestable, OpenDisputes, track

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PRODUCTS = ("analytics", "storage", "compute", "network", "security")
SYLLABLES = ("ac", "me", "glo", "bex", "ini", "tech", "um", "bre", "la", "hoo", "li", "stark",
             "way", "ne", "won", "ka", "ty", "rel", "cy", "ber", "dyne", "soy", "lent", "van")
CURRENCIES = ("USD", "USD", "USD", "EUR", "GBP")


def policy() -> Policy:
    """Short durations so expiries, reminders and escalations happen within a workload."""
    return Policy.model_validate({
        "version": 3,
        "protection_period": "PT8H",
        "extension": {"period": "PT2H", "max_extensions": 2},
        "tie_window": "PT10M",
        "incumbency_window": "P2D",
        "escalation": {
            "levels": [{"owner_id": "cm-1", "sla": "PT40M"}, {"owner_id": "dir-1", "sla": "PT1H"}],
            "reminder_before": "PT10M",
            "on_final_breach": "first_submitted",
        },
    })


@dataclass(frozen=True)
class Logged:
    """One record to append: which topic ('intake' or 'decisions'), key, envelope."""

    topic: str
    key: str
    envelope: Envelope
    event: DomainEvent


@dataclass
class Workload:
    records: list[Logged] = field(default_factory=list)

    @property
    def intake(self) -> list[Logged]:
        return [r for r in self.records if r.topic == "intake"]

    @property
    def decisions(self) -> list[Logged]:
        return [r for r in self.records if r.topic == "decisions"]


@dataclass
class _Recorder:
    policy: Policy
    state: AdjudicationState = field(default_factory=AdjudicationState)
    workload: Workload = field(default_factory=Workload)
    now: datetime = START
    n: int = 0

    def feed(self, event: DomainEvent, at: datetime) -> list[DomainEvent]:
        out: list[DomainEvent] = []
        for firing in due_timers(self.state, at):
            out += self._decide(firing, max(firing.deadline, self.now))
        out += self._decide(event, at)
        return out

    def _decide(self, event: DomainEvent, at: datetime) -> list[DomainEvent]:
        self.now = max(self.now, at)
        self.n += 1
        event_id = f"evt_{self.n:08d}"
        key = str(getattr(event, "account_key", "partner:none"))
        version = policy_version_of(event)
        context = DecisionContext(event_id, at, self.policy if version is not None else None)
        _, out = decide(self.state, event, context)
        self.workload.records.append(Logged(
            "intake", key, new_envelope(event, id=event_id, source="urn:test",
                                        subject=key, time=at), event))
        for i, decision in enumerate(out):
            # Keyed by its own account key, as the adjudicator keys it: a deadline passed
            # while deciding one account's event, or a settlement, may concern another
            # account's registration (keying it by the input's key once put 7 of 4,525
            # registrations' decisions on another partition than their submissions).
            own = getattr(decision, "account_key", None) or key
            self.workload.records.append(Logged(
                "decisions", own,
                new_envelope(decision, id=f"{event_id}.d{i}", source="urn:test/adj",
                             subject=own, time=at), decision))
        return out


@dataclass
class _Account:
    key: str
    domain: str | None
    name: str
    country: str
    crm: str | None


def _accounts(rng: random.Random, count: int) -> list[_Account]:
    found = []
    for i in range(count):
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3, 3, 4))))
        name = f"{word.title()} {rng.choice(('Inc', 'GmbH', 'Ltd', 'Group', 'Labs', ''))}"
        country = rng.choice(("US", "DE", "GB"))
        domain = f"{word}{i}.com" if rng.random() < 0.85 else None
        crm = f"CRM-{i}" if rng.random() < 0.3 else None
        key = (f"dom:{domain}" if domain else f"crm:{crm}" if crm
               else f"name:{country}:{name.strip().lower().replace(' ', '-')}")
        found.append(_Account(key, domain, name.strip(), country, crm))
    return found


def generate(events: int, *, seed: int = 11, accounts: int = 200, partners: int = 30,
             contention: float = 1.0) -> Workload:
    """At least `events` intake events and their decisions. `contention` below 1 spreads
    registrations over more of the account pool (fewer collisions)."""
    rng = random.Random(seed)
    rec = _Recorder(policy())
    universe = _accounts(rng, accounts)
    submitted: list[tuple[str, str, str]] = []
    disputes: OpenDisputes = {}
    rejected: Contestable = []
    now = START
    n = 0
    while rec.n < events:
        n += 1
        now += timedelta(seconds=rng.expovariate(1 / 40))
        roll = rng.random()
        out: list[DomainEvent]
        if roll < 0.6 or not submitted:
            pool = universe[: max(10, int(len(universe) * min(1.0, n / max(1, events))
                                          / contention))]
            acct = rng.choice(pool)
            partner = f"p-{rng.randrange(partners)}"
            rid = f"reg_{n:08d}"
            products = tuple(sorted(rng.sample(PRODUCTS, rng.choice((1, 1, 2)))))
            motion = rng.choices(("resell", "co_sell", "referral", "influence"), (78, 8, 9, 5))[0]
            amount = Amount(value=Decimal(rng.randrange(1_000, 500_000)) / 100,
                            currency=rng.choice(CURRENCIES)) if rng.random() < 0.9 else None
            out = rec.feed(RegistrationSubmitted(
                registration_id=rid, partner_id=partner,
                partner=PartnerSnapshot(partner_id=partner,
                                        tier=rng.choice(("gold", "silver", "registered"))),
                account_key=acct.key,
                account=Account(name=acct.name, domain=acct.domain, country=acct.country,
                                crm_account_id=acct.crm),
                opportunity=Opportunity(title=f"deal {n}", products=products, amount=amount),
                motion=motion, submitted_at=now, policy_version=3), now)  # type: ignore[arg-type]
            submitted.append((rid, partner, acct.key))
        elif roll < 0.64:
            acct = rng.choice(universe)
            out = rec.feed(ClaimFiled(
                claim_id=f"clm_{n:08d}", kind=rng.choice(("named_account", "opportunity")),
                rep_id=f"rep-{rng.randrange(5)}", account_key=acct.key,
                account=Account(name=acct.name, domain=acct.domain, country=acct.country,
                                crm_account_id=acct.crm),
                products=(rng.choice(PRODUCTS),), filed_at=now, policy_version=3), now)
        elif roll < 0.69:
            rid, partner, key = rng.choice(submitted[-200:])
            out = rec.feed(RegistrationWithdrawn(registration_id=rid, partner_id=partner,
                                                 account_key=key, withdrawn_at=now), now)
        elif roll < 0.75:
            rid, partner, key = rng.choice(submitted[-200:])
            out = rec.feed(RegistrationExtensionRequested(
                registration_id=rid, partner_id=partner, account_key=key, requested_at=now),
                now)
        elif roll < 0.81:
            rid, partner, key = rng.choice(submitted[-200:])
            won = rng.random() < 0.6
            closed = Amount(value=Decimal(rng.randrange(1_000, 300_000)) / 100,
                            currency="USD") if won and rng.random() < 0.5 else None
            out = rec.feed(OpportunityClosed(registration_id=rid, account_key=key,
                                             outcome="won" if won else "lost", amount=closed,
                                             closed_at=now), now)
        elif roll < 0.85 and disputes:
            did = rng.choice(sorted(disputes))
            owner, _, key = disputes[did]
            out = rec.feed(DisputeAcknowledged(dispute_id=did, account_key=key, actor_id=owner,
                                               actor_role="owner", acknowledged_at=now), now)
        elif roll < 0.90 and disputes:
            did = rng.choice(sorted(disputes))
            owner, members, key = disputes[did]
            outcome = rng.choice(("award", "award", "split", "co_sell", "reject_all"))
            splits: tuple[Split, ...] = ()
            award = None
            if outcome == "award":
                award = rng.choice(members)
            elif outcome == "split":
                share = (Decimal(100) / len(members)).quantize(Decimal("0.01"))
                shares = [share] * len(members)
                shares[0] += Decimal(100) - sum(shares)
                splits = tuple(Split(registration_id=m, percent=p)
                               for m, p in zip(members, shares, strict=True))
            out = rec.feed(DisputeResolutionSubmitted(
                dispute_id=did, account_key=key, actor_id=owner, actor_role="owner",
                outcome=outcome, registration_id=award, splits=splits, note="settled",
                submitted_at=now), now)  # type: ignore[arg-type]
        elif roll < 0.92 and rejected:
            rid, partner, key = rng.choice(rejected[-50:])
            out = rec.feed(DisputeFiled(dispute_id=f"dsp-c{n}", registration_id=rid,
                                        partner_id=partner, account_key=key,
                                        reason="we were first", filed_at=now,
                                        policy_version=3), now)
        else:
            continue
        track(out, disputes, rejected)
    return rec.workload


def interleavings(workload: Workload, rng: random.Random) -> Iterator[list[Logged]]:
    """Random merges of the intake and decisions streams that keep each stream's own
    order per account key (what two independently consumed topics can deliver)."""
    intake, decisions = workload.intake, workload.decisions
    while True:
        i = d = 0
        merged: list[Logged] = []
        bias = rng.random()
        while i < len(intake) or d < len(decisions):
            take_intake = d >= len(decisions) or (i < len(intake) and rng.random() < bias)
            if take_intake:
                merged.append(intake[i])
                i += 1
            else:
                merged.append(decisions[d])
                d += 1
        yield merged


def partition_breaches(workload: Workload) -> list[str]:
    """What in `workload` breaks the keying the real log keeps (and the parallel rebuild
    relies on): every record is keyed (and its envelope's subject is) its event's own
    account key, and every record about one registration, claim or dispute (its timeline
    subject) carries the key of the record that created it (a submission, a filing, a
    dispute's opening). Empty when the workload keeps it."""
    found: list[str] = []
    owner: dict[str, str] = {}
    for r in workload.records:
        if isinstance(r.event, RegistrationSubmitted):
            owner[r.event.registration_id] = r.key
        elif isinstance(r.event, ClaimFiled):
            owner[r.event.claim_id] = r.key
        elif isinstance(r.event, DisputeOpened):
            owner.setdefault(r.event.dispute_id, r.key)
    for r in workload.records:
        where = f"{r.topic} {r.envelope.id} {type(r.event).__name__}"
        own = getattr(r.event, "account_key", None)
        if own is not None and r.key != own:
            found.append(f"{where} about {own} keyed {r.key}")
        if r.envelope.subject != r.key:
            found.append(f"{where} keyed {r.key} with subject {r.envelope.subject}")
        for row in timeline.entries(r.envelope.id, r.envelope.time, r.event):
            subject = row["subject_id"]
            if subject in owner and owner[subject] != r.key:
                found.append(f"{where} about {subject} of {owner[subject]} keyed {r.key}")
    return found


def counts(workload: Workload) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for r in workload.records:
        kinds[type(r.event).__name__] = kinds.get(type(r.event).__name__, 0) + 1
    return kinds
