"""The adjudication invariants (services/adjudication/DESIGN.md, "Invariants"), checked by a
Hypothesis state machine on the real code path.

Every rule is a command through the real registration handlers (`Commands`: account
resolution, stamping, append), then `Pipeline.pump()`: the adjudicator worker decides the
new intake records exactly as its transactional loop does, appends timers due on the
simulated clock, and the projection worker folds everything into the SQLite read model
(tests/support/pipeline.py). Rules move the clock (timers fire), publish policy versions,
change partner status, register, withdraw, extend, close, contest, acknowledge, resolve,
and restart (the adjudicator's state rebuilt from the log, the edge's directory from the
read model). Names and domains come from the seeded company generator
(tests/support/companies.py), which also says which registrations are the same company.

After every step the invariants are checked against the decisions appended so far; at the
end the whole intake log is replayed through `decide` and must give the same decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import os
import random
import re
import shutil
import string
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faker import Faker
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import select

from services.adjudication.domain import AdjudicationState, DecisionContext, decide
from services.adjudication.domain import policy_version_of as stamped_version
from services.adjudication.domain.instants import human_span, span_us, to_us
from services.projections.api.deliveries import list_partner_deliveries
from services.projections.api.disputes import list_disputes
from services.projections.api.registrations import read_registration, read_timeline
from services.registration.models import (
    ClaimRequest,
    DisputeRequest,
    OpportunityClosedRequest,
    RegistrationRequest,
    ResolutionRequest,
)
from shared.accounts.normalize import (
    name_forms,
    name_similarity,
    normalize_name,
    registrable_domain,
    sort_name_tokens,
)
from shared.accounts.salesforce import canonical_crm_id, salesforce_18
from shared.api.auth import Principal
from shared.api.partner_view import Viewer
from shared.api.problems import Problem
from shared.business_time import due_on
from shared.eventlog.partitioner import partition_for
from shared.events import (
    AccountsLinked,
    ClaimDecided,
    DisputeActionRejected,
    DisputeJoined,
    DisputeOpened,
    DisputeResolved,
    DomainEvent,
    Envelope,
    ProtectionEnded,
    ProtectionExtended,
    RegistrationDecided,
)
from shared.events.codec import decode
from shared.policy import Escalation, EscalationLevel, MatchPolicy, Policy
from shared.readmodel.schema import account_names as account_names_table
from shared.readmodel.schema import claims as claims_table
from shared.readmodel.schema import disputes as disputes_table
from shared.readmodel.schema import name_filed
from shared.readmodel.schema import registrations as registrations_table
from tests.support import companies as companies_mod
from tests.support.companies import Registration, generate
from tests.support.pipeline import ADMIN, Pipeline, SimClock, simulated_time

POOL = generate(seed=12, registrations=24, collision_share=0.5, partners=5,
                same_name_share=0.35, subsidiary_share=0.2)
"""Twelve companies, five of them "Wells International" (different domains, one country),
subsidiaries, name-only ones, multi-domain ones with their CRM id."""
SPECS = POOL.registrations
PARTNERS = [p for p, _ in POOL.partners]
TIER_OF = dict(POOL.partners)
NAME_OF = dict(zip(PARTNERS, ("Northwind Traders", "Contoso Resellers", "Fabrikam Channel",
                               "Litware Partners", "Tailspin Group", "Adatum Solutions",
                               "Proseware Systems"), strict=False))
"""Partners' display names (a partner note naming one is refused, invariant 16)."""
PRODUCTS = ("analytics", "crm", "security")
PARTITIONS = 3
_TEMPLATE_ROOT = Path(tempfile.mkdtemp(prefix="dealreg-stateful-"))

_SHORT_LADDER = Escalation(levels=(EscalationLevel(owner_id="cm-1", sla=timedelta(hours=6)),
                                   EscalationLevel(owner_id="dir-1", sla=timedelta(hours=6))))
SHORT_LADDER_EXACT = Policy(
    escalation=_SHORT_LADDER.model_copy(update={"deadline_unit": None}),
    protection_period=timedelta(days=30))
"""The short ladder as an upgraded deployment's older document reads: no deadline unit,
deadlines exactly at the SLA (`RivalMoments.unit_changes`; not in POLICIES, so the first
machine's runs stay as they were)."""
POLICIES: dict[str, Policy] = {
    "default": Policy(),
    "scope_account": Policy(scope="account"),
    "tier_first": Policy(precedence=("tier", "first_submitted"),
                         tie_window=timedelta(hours=1)),
    "keep_open": Policy(escalation=Escalation(on_final_breach="keep_open")),
    "short_ladder": Policy(escalation=_SHORT_LADDER, protection_period=timedelta(days=30)),
}
EXCLUSIVE = ("resell", "co_sell", "direct")
GAP: Counter[str] = Counter()
"""How often the session-30 promotion gap was exercised (`PromotionGap`)."""
DIRECT = "direct"
"""The party of every direct claim: the direct team is one party, whichever rep filed."""
_COLLECT = os.environ.get("DEALREG_PROPERTY_COLLECT") == "1"
FOUND: dict[str, str] = {}
_TARGET = os.environ.get("DEALREG_PROPERTY_TARGET")
"""Exploring: one example message per kind of violation (ids and numbers masked)."""


def _crm(crm_id: str | None) -> str | None:
    """A CRM id as the policies the machine publishes compare it (`match.crm_ids:
    any_spelling`, their default since session 28: a Salesforce id's 15- and 18-character
    spellings, the 18-character one in any case, and any other id whatever its case,
    separators or width, are one id)."""
    return canonical_crm_id(crm_id, "any_spelling") if crm_id else crm_id


def _shape(text: str) -> str:
    return re.sub(r"(reg|dsp|clm)_\w+|\d+", "#", text)[:90]
ACTIVE = ("approved", "in_review")
CONTESTABLE = ("first_submitted", "tier", "incumbent", "direct_named_account")
"""Rejections a partner may contest, once (a possible-duplicate flag is contested through
its review dispute)."""
PRECEDENCE_RULES = ("tie", "first_submitted", "tier", "incumbent", "direct_named_account")
TIER_RANK = {t: i for i, t in enumerate(("platinum", "gold", "silver", "registered"))}


@dataclass
class Reg:
    id: str
    spec: Registration
    partner: str
    products: tuple[str, ...]
    motion: str
    submitted_at: datetime | None = None
    status: str = "submitted"
    rule: str | None = None
    protected_until: datetime | None = None
    scope: tuple[str, ...] | None = None
    shared_by: str | None = None
    """Dispute whose co_sell / split / distinct resolution approved it beside others."""
    shares: set[str] = field(default_factory=set)
    """Every such dispute since it was last not approved: a later sharing resolution that
    re-approves it (a co-sell beside a newcomer) does not undo an earlier split."""
    withdrawn: bool = False
    raced: bool = False  # filed in `RecentRules.race`, before the other side was decided
    closed: bool = False
    contestable: bool = False
    policy_version: int = 0
    """The version its first decision carried (the one it was submitted under)."""
    kind: str = "registration"
    """`registration`, or a direct claim's `opportunity` / `named_account`."""
    ref: str | None = None
    """The `external_ref` it was filed with (machines that file one: `CustomerRules`)."""
    rep: str | None = None
    key: str | None = None
    """The account key the edge filed it under."""
    dispute: str | None = None
    """The dispute it was last drawn into."""
    revived_after: str = ""
    """The newest registration id filed when it was last approved after a rejection
    (a contest or promotion: weighed then, as a newcomer, against those filed before)."""
    granted_at: datetime | None = None
    """When its current approval began (a fresh protection: first approval, promotion,
    award or another approval by a dispute of an entry not approved before)."""
    extensions: int = 0
    held_by: str | None = None
    """The one dispute that carried its protection past its end since `granted_at`."""
    ended_at: datetime | None = None
    end_reason: str | None = None
    """How its approval ended (`ProtectionEnded.reason`), when it ended approved."""
    beaten_by: tuple[str, ...] = ()
    appealed: tuple[str, ...] = ()
    """The registrations it lost to when it was last contested."""
    beaten_at: datetime | None = None
    """Who its latest rejection by a precedence rule named, and when (its place in their
    line on release)."""
    watching: set[str] = field(default_factory=set)
    """The disputes on another partition its copy was drawn into (`CopiesInReview`), less
    one that settled keeping its copy alone: on release they may hold its line back
    (`held_back`; DESIGN.md, "A release watched by a review elsewhere promotes no one")."""

    @property
    def company(self) -> str:
        return self.spec.company_id


@dataclass
class Dispute:
    id: str
    members: list[str]
    open: bool = True
    outcome: str | None = None
    awarded: str | None = None
    resolved_at: datetime | None = None
    reason: str | None = None
    winners: list[str] = field(default_factory=list)
    """Members its settlement approved (their decisions name it)."""
    opened_as: str | None = None
    """Its reason when it opened (a collision joining a `cross_key` review renames it)."""
    key: str | None = None
    """The account key it was opened under (its partition's review key)."""


@dataclass
class Model:
    """What the decisions say, folded in log order, with what the test did beside it."""

    regs: dict[str, Reg] = field(default_factory=dict)
    disputes: dict[str, Dispute] = field(default_factory=dict)
    partner_status: dict[str, str] = field(default_factory=dict)
    policies: dict[int, Policy] = field(default_factory=dict)
    keys: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """account key -> registration ids the edge filed under it"""
    links: dict[str, str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    wins: list[tuple[str, str, datetime]] = field(default_factory=list)
    """(company, party, when) of every CRM win: incumbency."""

    def canonical(self, key: str) -> str:
        """The key its links lead to; for links made in both directions (each racing side's
        partition linked the pair its own way), one key of the cycle for all of it."""
        seen: list[str] = []
        while key in self.links and key not in seen:
            seen.append(key)
            key = self.links[key]
        return min(seen[seen.index(key):]) if key in seen else key


def overlap(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> bool:
    return a is None or b is None or bool(set(a) & set(b))


_RELAY_SUFFIX = re.compile(r"\.r\d+$")


def _origin(envelope_id: str) -> tuple[str, int]:
    """(input event id, index) of a decision's envelope id `<input>.d<index>`."""
    source, _, index = envelope_id.rpartition(".d")
    return (source, int(index)) if source and index.isdigit() else (envelope_id, 0)


def scope_of(reg: Reg) -> tuple[str, ...] | None:
    """Its scope as decided (None: the whole account), or as filed before a decision."""
    if reg.status != "submitted":
        return reg.scope
    return None if reg.kind == "named_account" else reg.products


EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def _moments(value: Any, skip: frozenset[str], where: str = "") -> list[tuple[str, datetime]]:
    """Every ISO 8601 moment in a JSON value, with where it is (fields named in `skip`
    left out)."""
    found: list[tuple[str, datetime]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                found += _moments(item, skip, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _moments(item, skip, f"{where}[{i}]")
    elif isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" \
            and value[10:11] == "T":
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            found.append((where, moment if moment.tzinfo else moment.replace(tzinfo=UTC)))
    return found


class Invariants(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.stack = contextlib.ExitStack()
        self.clock = SimClock()
        self.stack.enter_context(simulated_time(self.clock))
        self.dir = Path(tempfile.mkdtemp(prefix="run-", dir=_TEMPLATE_ROOT))
        self.pipeline = Pipeline(self.dir / "data", self.clock, partitions=PARTITIONS,
                                 template_root=_TEMPLATE_ROOT)
        self.model = Model()
        self.pending_ends: list[tuple[Reg, dict[str, Any], Dispute]] = []
        self.pending_reasons: list[tuple[Reg, str, str | None, str | None,
                                         tuple[str, ...] | None]] = []
        """Rejections naming a dispute not yet resolved as folded (`check_approval_end`)."""
        self.releases: list[tuple[Reg, datetime, list[Reg], Policy, set[str]]] = []
        """Owners that let go while the current input event was decided (invariant 13),
        with the ids of their line that joined it after they expired (`promotion_pending`:
        behind the others)."""
        self.deferred: list[tuple[Reg, datetime, datetime, list[Reg], list[Reg], Policy]] = []
        """Owners that expired with a line promoted on `promotion_unit` (session 30): (owner,
        expiry, due, line at the expiry, arrivals in the gap, policy); checked as a release
        once an input at or after `due` is folded."""
        self.input_time: datetime | None = None
        self.input_partition: int | None = None
        """The envelope time and partition of the input whose decisions are being folded
        (a partition's clock moves with its own inputs only)."""
        self.promoted: list[tuple[Reg, str | None]] = []
        """(promoted registration, the owner its evidence names) for the current input."""
        self.current_input: str | None = None
        self.notes: dict[str, str | None] = {}
        """dispute -> the partner note of the resolution the edge accepted"""
        self.settled_at = self.clock.now
        """The clock when the last step was folded."""
        self.filed: dict[str, str] = {}
        """dispute id of a contest the edge accepted -> the contested registration"""
        self.appeals: dict[tuple[str, str, datetime | None], tuple[str, datetime]] = {}
        """(partner, rival registration, the rival's grant) -> (the partner's registration
        that contested losing to it, when): one appeal per rival protection (invariant 9)"""
        self.run(self.pipeline.start())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.check_replay()
            self.report()
        finally:
            self.run(self.pipeline.close())
            self.loop.close()
            self.stack.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- driving ---------------------------------------------------------------------------

    def command(self, coro: Any) -> Any:
        """Run a command; a 4xx problem is an answer, not a failure."""
        try:
            return self.run(coro)
        except Problem as problem:
            assert problem.status < 500, f"{problem.status} {problem.detail}"
            return None

    def settle(self) -> None:
        self.run(self.pipeline.pump())
        # Partitions interleaved by time, and one input's decisions in their own order
        # (a copy's decision is keyed by its own key: it may sit on another partition
        # than the DisputeResolved before it); each partition in its log order, as its
        # readers apply it (a relayed settlement is decided after what its partition
        # decided before it, whatever its time).
        by_partition: dict[int, list[tuple[Envelope, DomainEvent]]] = defaultdict(list)
        for item in self.run(self.pipeline.new_decisions()):
            by_partition[partition_for(item[0].subject or "", PARTITIONS)].append(item)
        decisions = list(heapq.merge(*by_partition.values(),
                                     key=lambda d: (d[0].time, *_origin(d[0].id))))
        for envelope, decision in decisions:
            self.check_decision_key(envelope, decision)
            # A relayed settlement's decisions (`<input>.r<n>.d<i>`) belong to its input.
            source = _RELAY_SUFFIX.sub("", envelope.id.rsplit(".d", 1)[0])
            if source != self.current_input:
                self.check_releases()
                self.current_input = source
            self.input_time = envelope.time
            self.input_partition = partition_for(envelope.subject or "", PARTITIONS)
            self.fold(envelope, decision)
            label = getattr(decision, "rule", None) or getattr(decision, "outcome", "")
            if currently_in_test_context():  # --hypothesis-show-statistics
                event(f"{type(decision).__name__} {label}")
        self.check_releases()
        self.current_input = None
        self.check_pending_reasons()
        self.check_resolution_ends()
        self.settled_at = self.clock.now
        self.report()

    @initialize()
    def partners(self) -> None:
        for partner in PARTNERS:
            self.run(self.pipeline.commands.reference.put_partner(partner, {
                "name": NAME_OF[partner], "type": "reseller", "tier": TIER_OF[partner],
                "status": "active"}, by="test"))
            self.model.partner_status[partner] = "active"
        published = self.run(self.pipeline.commands.reference.current_policy())
        self.model.policies[published.version] = published

    @rule(spec=st.sampled_from(SPECS), partner=st.sampled_from(PARTNERS),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2),
          motion=st.sampled_from(("resell", "resell", "resell", "co_sell", "referral")))
    def register(self, spec: Registration, partner: str, products: set[str], motion: str
                 ) -> None:
        self.submit(spec, partner, products, motion)
        self.settle()

    def submit(self, spec: Registration, partner: str, products: set[str], motion: str,
               edge: Any = None, ref: str | None = None) -> Reg | None:
        """Append a registration (through `edge`: another registration process) without
        deciding it (filed with `ref`, else the machine's `reference_of`)."""
        body = spec.request(motion=motion)
        body["partner_id"] = partner
        body["opportunity"]["products"] = sorted(products)
        ref = ref or self.reference_of(spec, partner)
        if ref is not None:
            body["external_ref"] = ref
        outcome = self.command((edge or self.pipeline.commands).submit_registration(
            ADMIN, RegistrationRequest.model_validate(body)))
        if outcome is None:
            return None
        rid = outcome.body.id
        self.model.regs[rid] = reg = Reg(rid, spec, partner, tuple(sorted(products)), motion,
                                         submitted_at=self.clock.now,
                                         key=outcome.body.account_key, ref=ref)
        self.model.keys[outcome.body.account_key].add(rid)
        return reg

    def reference_of(self, spec: Registration, partner: str) -> str | None:
        """The `external_ref` a registration is filed with: none here (`CustomerRules`)."""
        return None

    @precondition(lambda self: self.model.regs)
    @rule(index=st.integers(0, 50), pick=st.integers(0, 5), partner=st.integers(1, 4),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def register_rival(self, index: int, pick: int, partner: int, products: set[str]) -> None:
        """Another partner registers a company someone registered already (as it types it)."""
        regs = list(self.model.regs.values())
        first = regs[index % len(regs)]
        same = specs_of(first.company)
        start = PARTNERS.index(first.partner) if first.partner in PARTNERS else 0
        rival = PARTNERS[(start + partner) % len(PARTNERS)]
        self.register(same[pick % len(same)], rival, products, "resell")

    @rule(spec=st.sampled_from(SPECS), rep=st.sampled_from(("rep-1", "rep-2")),
          kind=st.sampled_from(("opportunity", "opportunity", "named_account")),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def file_claim(self, spec: Registration, rep: str, kind: str, products: set[str]) -> None:
        """A direct rep claims the customer: the direct team is one party."""
        self.claim(spec, rep, kind, products)

    def claim(self, spec: Registration, rep: str, kind: str, products: set[str]) -> None:
        outcome = self.command(self.pipeline.commands.file_claim(ADMIN, ClaimRequest(
            kind=kind, rep_id=rep, account=spec.account(),  # type: ignore[arg-type]
            products=sorted(products))))
        if outcome is not None:
            cid = outcome.body.id
            scope = tuple(sorted(products)) if kind == "opportunity" else ()
            self.model.regs[cid] = Reg(cid, spec, DIRECT, scope, "direct",
                                       submitted_at=self.clock.now, kind=kind, rep=rep,
                                       key=outcome.body.account_key)
            self.model.keys[outcome.body.account_key].add(cid)
        self.settle()

    @rule(hours=st.sampled_from((1, 1, 7, 30, 24 * 8, 24 * 31, 24 * 92)))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))
        self.settle()

    def _pick(self, index: int, statuses: tuple[str, ...] | None = None) -> Reg | None:
        regs = [r for r in self.model.regs.values() if r.motion != "direct"
                and (statuses is None or r.status in statuses)]
        return regs[index % len(regs)] if regs else None

    @precondition(lambda self: self.model.regs)
    @rule(index=st.integers(0, 50))
    def withdraw(self, index: int) -> None:
        reg = self._pick(index, ACTIVE)
        if reg is None:
            return
        reg.withdrawn = True
        self.command(self.pipeline.commands.withdraw(Principal("partner", reg.partner),
                                                     reg.id))
        self.settle()

    @precondition(lambda self: self.model.regs)
    @rule(index=st.integers(0, 50))
    def extend(self, index: int) -> None:
        reg = self._pick(index, ("approved",))
        if reg is None:
            return
        self.command(self.pipeline.commands.extend(Principal("partner", reg.partner), reg.id))
        self.settle()

    @precondition(lambda self: self.model.regs)
    @rule(index=st.integers(0, 50), outcome=st.sampled_from(("won", "lost")))
    def close(self, index: int, outcome: str) -> None:
        reg = self._pick(index, ("approved", "in_review", "expired"))
        if reg is None:
            return
        reg.closed = True
        self.command(self.pipeline.commands.close(ADMIN, OpportunityClosedRequest(
            registration_id=reg.id, outcome=outcome)))  # type: ignore[arg-type]
        self.settle()

    @precondition(lambda self: self.model.regs)
    @rule(index=st.integers(0, 50))
    def contest(self, index: int) -> None:
        reg = self._pick(index, ("rejected",))
        if reg is None:
            return
        self.contest_this(reg)

    def contest_this(self, reg: Reg) -> None:
        filed = self.command(self.pipeline.commands.file_dispute(
            Principal("partner", reg.partner), reg.id,
            DisputeRequest(reason="We introduced the customer.")))
        if filed is not None:
            self.filed[filed.body.id] = reg.id
        self.settle()

    def _open_dispute(self, index: int) -> Dispute | None:
        found = [d for d in self.model.disputes.values() if d.open]
        return found[index % len(found)] if found else None

    @precondition(lambda self: self.model.disputes)
    @rule(index=st.integers(0, 20))
    def acknowledge(self, index: int) -> None:
        dispute = self._open_dispute(index)
        if dispute is None:
            return
        self.command(self.pipeline.commands.acknowledge(ADMIN, dispute.id))
        self.settle()

    def reregister(self, index: int) -> None:
        """A partner registers again a customer whose registration it withdrew or let
        expire (the cool-off's ground, invariant 12)."""
        regs = [r for r in self.model.regs.values() if r.partner != DIRECT
                and r.status in ("withdrawn", "expired")]
        if not regs:
            return
        old = regs[index % len(regs)]
        self.register(old.spec, old.partner, set(old.products), old.motion)

    @precondition(lambda self: self.model.disputes)
    @rule(index=st.integers(0, 20), winner=st.integers(0, 10),
          outcome=st.sampled_from(("award", "award", "split", "co_sell", "reject_all",
                                   "distinct")))
    def resolve(self, index: int, winner: int, outcome: str, note: str | None = None,
                shout: bool = False) -> None:
        dispute = self._open_dispute(index)
        if dispute is None:
            return
        members = dispute.members
        body: dict[str, Any] = {"outcome": outcome, "note": "decided by the test"}
        partner_note = self.partner_note(dispute, note, winner, shout)
        if partner_note is not None:
            body["partner_note"] = partner_note
        if outcome == "award":
            body["registration_id"] = members[winner % len(members)]
        elif outcome == "split":
            first, second = members[winner % len(members)], members[(winner + 1) % len(members)]
            body["splits"] = ([{"registration_id": first, "percent": "100"}]
                              if first == second else
                              [{"registration_id": first, "percent": "60"},
                               {"registration_id": second, "percent": "40"}])
        before = self.run(self.pipeline.eventlog.end_positions(self.pipeline.topics.intake))
        try:
            self.run(self.pipeline.commands.resolve(ADMIN, dispute.id,
                                                    ResolutionRequest.model_validate(body)))
        except Problem as problem:
            assert problem.status < 500, f"{problem.status} {problem.detail}"
            refused = problem.status == 422 and any(
                e.get("field") == "partner_note" for e in problem.errors or ())
        else:
            refused = False
            self.notes[dispute.id] = partner_note
        after = self.run(self.pipeline.eventlog.end_positions(self.pipeline.topics.intake))
        self.check_partner_note(dispute, partner_note, refused, before != after)
        self.settle()

    @rule(partner=st.sampled_from(PARTNERS),
          status=st.sampled_from(("active", "suspended", "exited")))
    def partner_status(self, partner: str, status: str) -> None:
        self.run(self.pipeline.commands.reference.put_partner(partner, {
            "name": NAME_OF[partner], "type": "reseller", "tier": TIER_OF[partner],
            "status": status}, by="test"))
        self.model.partner_status[partner] = status
        self.settle()

    @rule(name=st.sampled_from(sorted(POLICIES)))
    def publish_policy(self, name: str) -> None:
        published = self.run(self.pipeline.commands.reference.publish(
            POLICIES[name], published_by="test"))
        self.model.policies[published.policy.version] = published.policy
        self.settle()

    @rule()
    def restart(self) -> None:
        self.run(self.pipeline.restart())
        self.settle()

    # --- folding the decisions ---------------------------------------------------------------

    def violation(self, number: int, text: str) -> None:
        self.model.violations.append(f"invariant {number}: {text}")

    def report(self) -> None:
        """Fail on the first step that broke an invariant (or, exploring with
        DEALREG_PROPERTY_COLLECT=1, remember every kind of break and go on)."""
        found, self.model.violations = self.model.violations, []
        if _TARGET is not None:
            found = [t for t in found if re.search(_TARGET, t)]
        if found and _COLLECT:
            for text in found:
                FOUND.setdefault(_shape(text), text)
            return
        assert not found, "\n".join(found)

    def fold(self, envelope: Envelope, event: DomainEvent) -> None:
        m = self.model
        if isinstance(event, RegistrationDecided | ClaimDecided):
            reg = m.regs.get(event.registration_id if isinstance(event, RegistrationDecided)
                             else event.claim_id)
            if reg is None:
                return
            self.check_explanation(reg, event)
            before = reg.status
            if before == "submitted":
                self.check_evidence_live(reg, event)
                self.check_cooloff(reg, event, envelope.time)
            if event.rule == "promoted_on_release":
                self.promoted.append((reg, event.conflicts[0].registration_id
                                      if event.conflicts else None))
            if before == "submitted":
                self.check_gap(reg, event)
            if before == "approved" and event.status == "approved" \
                    and event.protected_until is not None and reg.protected_until is not None \
                    and event.protected_until > reg.protected_until:
                # A member kept its approval at a resolution: at least dispute_grace more.
                self.hold(reg, event.dispute_id or reg.dispute)
            if before == "approved" and event.status != "approved":
                self.check_approval_end(reg, event.status, rule=event.rule,
                                        dispute_id=event.dispute_id)
            if event.status == "approved" and before != "approved":
                self.check_gain(reg, "approved")
            if event.rule == "contested":
                self.check_contest(reg)
                self.check_appeal(reg, event.decided_at)
            reg.contestable = (event.status == "rejected" and event.rule in CONTESTABLE)
            if event.status == "approved" and before != "approved":
                reg.granted_at, reg.held_by = event.decided_at, None  # a fresh protection
                if reg.beaten_at is not None or before == "rejected":
                    reg.revived_after = max(m.regs, key=lambda rid: rid[4:])
            if event.status == "rejected" and event.rule in CONTESTABLE:
                reg.beaten_by = tuple(c.registration_id for c in event.conflicts
                                      if c.confident and c.registration_id)
                reg.beaten_at = event.decided_at
            else:
                reg.beaten_by = ()
            reg.dispute = event.dispute_id or reg.dispute
            reg.status, reg.rule = event.status, event.rule
            reg.protected_until = event.protected_until
            if before == "approved" and event.status == "rejected":
                self.released(reg, event.decided_at, event.dispute_id)  # lost its dispute
            reg.scope = event.scope_products
            reg.policy_version = reg.policy_version or event.policy_version
            if event.status == "approved" and event.dispute_id in m.disputes \
                    and not m.disputes[event.dispute_id].open:
                m.disputes[event.dispute_id].winners.append(reg.id)
            if before != "approved":
                reg.shares.clear()  # a fresh approval: shares of an earlier one are gone
            if event.status == "approved" and event.dispute_id:
                d = m.disputes.get(event.dispute_id)
                if d is not None and _shares(d):
                    reg.shared_by = d.id
                    reg.shares.add(d.id)
            elif event.status != "approved":
                reg.shared_by = None
                reg.shares.clear()
        elif isinstance(event, ProtectionEnded):
            reg = m.regs.get(event.registration_id)
            if reg is None:
                return
            if reg.status == "approved":
                self.check_approval_end(reg, event.status, reason=event.reason,
                                        at=event.ended_at)
                reg.ended_at, reg.end_reason = event.ended_at, event.reason
            if event.reason == "won":
                m.wins.append((reg.company, reg.partner, event.ended_at))
            was_owner = reg.status == "approved"
            if reg.status in ACTIVE or (reg.status == "expired" and event.reason in ("won",
                                                                                  "lost")):
                reg.status = event.status  # a close after expiry still records the outcome
            if was_owner and event.reason != "won":
                self.released(reg, event.ended_at, expired=event.reason == "expired")
        elif isinstance(event, ProtectionExtended):
            reg = m.regs.get(event.registration_id)
            if reg is not None:
                # An extension counts one more; a dispute's hold keeps the count (and gains
                # nothing: it keeps what a person is still deciding about).
                if event.extensions > reg.extensions:
                    self.check_gain(reg, "extended")
                    self.check_extension(reg, event)
                    reg.extensions = event.extensions
                else:
                    self.hold(reg, reg.dispute)
                reg.protected_until = event.protected_until
        elif isinstance(event, DisputeOpened):
            m.disputes[event.dispute_id] = Dispute(event.dispute_id, list(event.registration_ids),
                                                   reason=event.reason,
                                                   opened_as=event.reason,
                                                   key=event.account_key)
            self.drawn(event.dispute_id, event.registration_ids, event.account_key)
        elif isinstance(event, DisputeJoined):
            d = m.disputes.setdefault(event.dispute_id, Dispute(event.dispute_id, []))
            d.members = list(event.registration_ids)
            d.reason = getattr(event, "reason", None) or d.reason
            self.drawn(event.dispute_id, event.registration_ids, event.account_key)
        elif isinstance(event, DisputeResolved):
            d = m.disputes.setdefault(event.dispute_id, Dispute(event.dispute_id, []))
            d.open, d.outcome = False, event.outcome
            d.resolved_at = event.resolved_at
            if event.rule == "dispute_resolution" and event.dispute_id in self.notes \
                    and event.partner_note != self.notes.pop(event.dispute_id):
                self.violation(16, f"dispute {d.id} resolved with partner note "
                               f"{event.partner_note!r}, the edge accepted "
                               "another")
            d.awarded = event.awarded_registration_id
            d.members = list(dict.fromkeys([*d.members, *event.registration_ids]))
            alone = m.regs.get(event.approved_ids[0]) if len(event.approved_ids) == 1 else None
            if alone is not None and d.id in alone.watching and not any(
                    o.open and o is not d and alone.id in o.members
                    for o in m.disputes.values()):
                alone.watching.discard(d.id)  # kept alone: it holds the line back no more
            for rid in event.approved_ids:
                kept = m.regs.get(rid)
                if kept is not None and (kept.status == "approved" or self.ended_this_step(kept)):
                    # Standing as it was: a copy's settlement sends it no decision (its
                    # own partition keeps or ends it), so the resolution says it.
                    d.winners.append(rid)
                    if _shares(d):
                        kept.shared_by = d.id
                        kept.shares.add(d.id)
        elif isinstance(event, AccountsLinked):
            m.links[event.account_key] = event.canonical_key
        elif isinstance(event, DisputeActionRejected) and event.action == "file":
            self.check_appeal_refused(event)

    # --- invariant 2: an approval ends only for a reason -------------------------------------

    def check_approval_end(self, reg: Reg, status: str, *, reason: str | None = None,
                           at: datetime | None = None, rule: str | None = None,
                           dispute_id: str | None = None, later: bool = False) -> None:
        m = self.model
        if reason == "expired":
            if reg.protected_until is None or at is None or at < reg.protected_until:
                self.violation(2, f"{reg.id} expired at {at} before {reg.protected_until}")
            return
        if reason in ("withdrawn", "released") and reg.withdrawn:
            return
        if reason in ("won", "lost") and reg.closed:
            return
        if reason == "partner_exited" and m.partner_status.get(reg.partner) == "exited":
            return
        if reason is None and status == "rejected" and dispute_id in m.disputes:
            d = m.disputes[dispute_id]
            if reg.id in d.members and not d.open:
                if d.outcome in ("reject_all", "split", "merged"):
                    return
                # Judged once the step's decisions are all in: the winner's own decision
                # may follow the loser's.
                self.pending_ends.append((reg, dict(scope=reg.scope), d))
                return
            if not later:
                # Not resolved yet as folded: a copy's rejection is keyed by the copy's own
                # key, so it (and the relay retiring the original) may sit on another
                # partition than the DisputeResolved before it, and the partitions fold
                # interleaved by time (two reviews settled in one step, each rejecting the
                # other's copy). Judged once the step's decisions are all in.
                self.pending_reasons.append((reg, status, rule, dispute_id, reg.scope))
                return
        self.violation(2, f"approved {reg.id} became {status} (reason {reason}, rule {rule},"
                       f" dispute {dispute_id}); withdrawn={reg.withdrawn} "
                       f"closed={reg.closed} partner={m.partner_status.get(reg.partner)}")

    def check_pending_reasons(self) -> None:
        """The rejections whose dispute was still open when they were folded, judged
        again now that the step's decisions (its DisputeResolved among them) are in, with
        the scope the registration held when it was rejected."""
        pending, self.pending_reasons = self.pending_reasons, []
        for reg, status, decided_by, dispute_id, scope in pending:
            now = reg.scope
            reg.scope = scope
            try:
                self.check_approval_end(reg, status, rule=decided_by, dispute_id=dispute_id,
                                        later=True)
            finally:
                reg.scope = now

    def check_resolution_ends(self) -> None:
        """An award or fallback rejected an approval: some winner of that dispute must now
        hold an approval whose scope overlaps the one taken away."""
        pending, self.pending_ends = self.pending_ends, []
        for reg, before, d in pending:
            winners = [self.model.regs[r] for r in d.winners
                       if r != reg.id and r in self.model.regs
                       and (d.awarded is None or r == d.awarded)]
            if not any(self.conflict(w, reg, before["scope"]) for w in winners):
                self.violation(2, f"approved {reg.id} (scope {before['scope']}) rejected by "
                               f"{d.outcome} of {d.id}; the winners "
                               f"{[(w.id, w.scope) for w in winners]} do not conflict with it")
            elif all(self.separated(w, reg) for w in winners
                     if self.conflict(w, reg, before["scope"])):
                self.violation(2, f"approved {reg.id} rejected by {d.outcome} of {d.id} "
                               f"although identifiers separate its company from every "
                               f"winner's {[w.id for w in winners]}")

    def separated(self, a: Reg, b: Reg) -> bool:
        """The generator's truth that settlement may not cross (DESIGN.md, "A dispute never
        settles one customer against another"): two different companies that both
        registered with a domain, or both with a CRM id (companies never share either), on
        one partition (a copy from another partition's key is never judged separated)."""
        if a.company == b.company or a.key is None or b.key is None:
            return False
        if partition_for(a.key, PARTITIONS) != partition_for(b.key, PARTITIONS):
            return False
        return bool((a.spec.domain and b.spec.domain)
                    or (a.spec.crm_account_id and b.spec.crm_account_id))

    def ended_this_step(self, reg: Reg) -> bool:
        """Expired on its own partition within the step now folded: a clock jump fires
        another partition's earlier deadlines (a review's fallback that approved it) in
        the same step, and the two partitions' decisions fold in either order."""
        return (reg.status == "expired" and reg.ended_at is not None
                and reg.ended_at > self.settled_at)

    def customer_of(self, reg: Reg, without: str) -> list[Registration]:
        """What the registrations filed under `reg`'s key, or a key linked to it, said
        (leaving out the registration `without`, the one being decided)."""
        m = self.model
        key = next((k for k, ids in m.keys.items() if reg.id in ids), None)
        if key is None:
            return [reg.spec]
        root = m.canonical(key)
        return [m.regs[r].spec for k, ids in m.keys.items() if m.canonical(k) == root
                for r in ids if r != without]

    def conflict(self, a: Reg, b: Reg, b_scope: tuple[str, ...] | None = None) -> bool:
        """Whether two scopes overlap, as the adjudicator compares them: under the policy of
        the later submission (`scope: account` makes any two overlap), else by products."""
        later = max((a, b), key=lambda r: (r.submitted_at is not None, r.submitted_at))
        policy = self.model.policies.get(later.policy_version)
        if policy is not None and policy.scope == "account":
            return True
        return overlap(a.scope, b_scope if b_scope is not None else b.scope)

    def drawn(self, dispute_id: str, members: Any, account_key: str) -> None:
        """The dispute that may hold a member's protection: one on its own partition (a
        copy drawn into another partition's dispute is never held there)."""
        home = partition_for(account_key, PARTITIONS)
        for rid in members:
            reg = self.model.regs.get(rid)
            if reg is not None and (reg.key is None
                                    or partition_for(reg.key, PARTITIONS) == home):
                reg.dispute = dispute_id
            elif reg is not None and reg.status in ACTIVE:
                reg.watching.add(dispute_id)

    def policy_of(self, reg: Reg) -> Policy:
        return self.model.policies.get(reg.policy_version) or Policy()

    def overlaps(self, a: Reg, b: Reg) -> bool:
        """As the adjudicator compares two entries' scopes: whole-account when either's own
        policy says `scope: account` or either covers the whole account."""
        if "account" in (self.policy_of(a).scope, self.policy_of(b).scope):
            return True
        return overlap(scope_of(a), scope_of(b))

    def same_customer(self, a: Reg, b: Reg) -> bool:
        """Generously: the same company, key cluster, or name (the adjudicator's customer
        matching may go by name where the generator knows two companies)."""
        return (a.company == b.company
                or (a.key is not None and b.key is not None
                    and self.model.canonical(a.key) == self.model.canonical(b.key))
                or (a.spec.name.lower() == b.spec.name.lower()
                    and a.spec.country == b.spec.country))

    # --- invariant 12: the re-registration cool-off ------------------------------------------

    def cooling(self, new: Reg, old: Reg, at: datetime, version: int) -> bool:
        """Whether `old` (ended) bars `new` (being decided at `at` under `version`)."""
        own = self.policy_of(old)
        cooloff = own.cooloff
        if (old.partner != new.partner or new.partner == DIRECT or old.ended_at is None
                or old.end_reason not in ("withdrawn", "expired")
                or old.status not in ("withdrawn", "expired") or cooloff is None
                or old.motion not in EXCLUSIVE or new.motion not in EXCLUSIVE):
            return False
        if at >= old.ended_at + cooloff:
            return False
        mine = self.model.policies.get(version) or Policy()
        if "account" in (mine.scope, own.scope):
            return True
        return overlap(scope_of(new), old.scope)

    def check_cooloff(self, reg: Reg, event: RegistrationDecided | ClaimDecided,
                      at: datetime) -> None:
        """Invariant 12: an ended approval of the partner's own, by withdrawal or expiry,
        under the same key, bars its overlapping re-registration until the cool-off of the
        ended one's policy passed; nothing else is ever rejected by it."""
        m = self.model
        if event.rule == "reregistration_cooloff":
            cited = [m.regs[c.registration_id] for c in event.conflicts
                     if c.registration_id in m.regs]
            if event.status != "rejected" or not any(
                    self.cooling(reg, old, at, event.policy_version) for old in cited):
                shown = [(o.id, o.partner, o.status, o.end_reason, o.ended_at) for o in cited]
                self.violation(12, f"{reg.id} ({reg.partner}) {event.status} by the cool-off, "
                               f"but none of {shown} bars it at {at}")
            return
        barring = [old for old in m.regs.values() if old.key == reg.key
                   and old.id != reg.id and self.cooling(reg, old, at, event.policy_version)]
        if barring and not (event.status == "rejected" and event.rule == "partner_inactive"):
            old = barring[0]
            self.violation(12, f"{reg.id} ({reg.partner}, {reg.products}) {event.status} "
                           f"({event.rule}) at {at}, though the partner's {old.id} "
                           f"({old.scope}) ended {old.end_reason} at {old.ended_at} "
                           f"(cool-off {self.policy_of(old).cooloff})")

    # --- invariant 13: promotion on release, in line order -----------------------------------

    def released(self, owner: Reg, at: datetime, settled_by: str | None = None,
                 expired: bool = False) -> None:
        """`owner`, approved, let go at `at` (rejected by the settlement of `settled_by`):
        its line, as the decisions so far define it. After an expiry (`expired`) with a
        line, the promotion comes on the policy's `promotion_unit` (`deferred`)."""
        if owner.motion not in EXCLUSIVE or owner.key is None:
            return
        policy = self.policy_of(owner)
        home = partition_for(owner.key, PARTITIONS)
        line = [r for r in self.model.regs.values()
                if r.status == "rejected" and owner.id in r.beaten_by
                and r.beaten_at is not None and r.beaten_at >= at - policy.release_window
                and r.key is not None and partition_for(r.key, PARTITIONS) == home]
        if policy.on_release != "promote_next" or self.held_back(owner, settled_by):
            line = []
        unit = policy.promotion_unit
        if expired and line and unit is not None:
            due = EPOCH_UTC + timedelta(microseconds=due_on(to_us(at), span_us(unit)))
            if due > at:
                self.deferred.append((owner, at, due, line, [], policy))
                return
        self.releases.append((owner, at, line, policy, set()))

    def check_gap(self, reg: Reg, event: RegistrationDecided | ClaimDecided) -> None:
        """Invariant 13, session 30: between an owner's expiry and the promotion of its
        line, nobody takes the customer: a new exclusive registration or claim on it and
        an overlapping scope is rejected `promotion_pending` and joins the line (behind
        it); `promotion_pending` is said only while such a promotion is pending."""
        at = event.decided_at
        pending = [(owner, late) for owner, ended, due, _, late, _ in self.deferred
                   if ended <= at < due and owner.id != reg.id
                   and self.same_customer(reg, owner) and self.overlaps(reg, owner)]
        if event.rule == "promotion_pending":
            if event.status != "rejected" or not pending:
                self.violation(13, f"{reg.id} {event.status} promotion_pending at {at}, but "
                               "no expired owner's line waits on its customer")
            for _, late in pending:
                late.append(reg)
            GAP["gap: a newcomer queued behind the line (promotion_pending)"] += 1
            return
        own_key = [owner for owner, _ in pending if owner.key == reg.key]
        if own_key and reg.motion in EXCLUSIVE and event.status in ACTIVE:
            self.violation(13, f"{reg.id} ({reg.partner}) {event.status} {event.rule} at {at}: "
                           f"it took the customer of {own_key[0].id}'s line before its "
                           "promotion")

    def held_back(self, owner: Reg, settled_by: str | None) -> bool:
        """Whether a review elsewhere holds `owner`'s line back (`release.let_go`). The
        review whose own settlement rejected `owner` with its scope free, or that settled
        keeping its copy alone, holds it back no more; nor does an earlier review on that
        same key, settled, of which nothing but the owner stands on its scope (a split
        there whose sharer the later settlement rejected too decides no one after it).
        Every machine checks this finer rule since session 26 (before, all but
        `ElsewhereInvariants` kept the coarse `Reg.watched`: any review that ever drew
        the copy, which flagged the right promotion after a review elsewhere freed the
        line, `MoreInvariants` at 200 examples)."""
        settled = self.model.disputes.get(settled_by or "")
        for dispute_id in owner.watching - {settled_by}:
            d = self.model.disputes.get(dispute_id)
            if d is None or settled is None or d.open or d.key != settled.key:
                return True
            if any(r.id != owner.id and r.status == "approved" and r.motion in EXCLUSIVE
                   and self.conflict(r, owner)
                   for r in (self.model.regs.get(i) for i in d.members) if r is not None):
                return True
        return False

    def ahead(self, a: Reg, b: Reg, policy: Policy) -> bool | None:
        """Whether `a` comes before `b` in a line under `policy` (precedence as adjudication
        walks it, then the earlier submission, then the id); None: not known here (an
        incumbency the model does not follow exactly)."""
        assert a.submitted_at is not None and b.submitted_at is not None
        for name in policy.precedence:
            if name == "direct_named_account":
                if a.kind == "named_account" and b.partner != DIRECT:
                    return True
                if b.kind == "named_account" and a.partner != DIRECT:
                    return False
            elif name == "incumbent":
                since = min(a.submitted_at, b.submitted_at) - policy.incumbency_window
                if any(company in (a.company, b.company) and party in (a.partner, b.partner)
                       and when >= since for company, party, when in self.model.wins):
                    return None
            elif name == "first_submitted":
                gap = a.submitted_at - b.submitted_at
                if abs(gap) > policy.tie_window:
                    return gap < timedelta(0)
            elif name == "tier" and DIRECT not in (a.partner, b.partner):
                ra, rb = policy.tier_rank(TIER_OF[a.partner]), policy.tier_rank(TIER_OF[b.partner])
                if ra != rb:
                    return ra < rb
        if a.submitted_at != b.submitted_at:
            return a.submitted_at < b.submitted_at
        return a.id < b.id

    def check_releases(self) -> None:
        """Invariant 13, once an input event's decisions are all folded: each promotion is of
        a registration in the releasing owner's line; each one of the line left rejected
        has an inactive partner or is held by something active and exclusive that overlaps
        it -- a holder that stayed, or a promotion ahead of it in line."""
        now, where = self.input_time, self.input_partition
        due_now = [d for d in self.deferred if now is not None and d[2] <= now
                   and partition_for(d[0].key or "", PARTITIONS) == where]
        if due_now:
            self.deferred = [d for d in self.deferred if d not in due_now]
            for owner, _, due, line, late, policy in due_now:
                # Promoted at `due`: the line at the expiry, then the gap's arrivals.
                self.releases.append((owner, due, [*line, *late], policy,
                                      {r.id for r in late}))
                GAP["gap: a promotion deferred to the unit came due"] += 1
        releases, self.releases = self.releases, []
        promoted, self.promoted = self.promoted, []
        lines = {owner.id: [r.id for r in line] for owner, _, line, _, _ in releases}
        for reg, owner_id in promoted:
            if owner_id not in lines or reg.id not in lines[owner_id]:
                self.violation(13, f"{reg.id} promoted on the release of {owner_id}, but it is "
                               f"not in that owner's line "
                               f"{lines.get(owner_id or '', [])}")
        ups = [reg for reg, _ in promoted]
        ids = {reg.id for reg in ups}
        for owner, at, line, policy, late in releases:
            def ahead(waiting: Reg, x: Reg, policy: Policy = policy,
                      late: set[str] = late) -> bool:
                if (waiting.id in late) != (x.id in late):
                    return waiting.id not in late  # the gap's arrivals come after
                return self.ahead(waiting, x, policy) is True

            for waiting in line:
                if waiting.status != "rejected":
                    continue
                if self.model.partner_status.get(waiting.partner, "active") != "active":
                    continue
                holders = [
                    x for x in self.model.regs.values()
                    if x is not waiting and x.status in ACTIVE and x.motion in EXCLUSIVE
                    and self.same_customer(waiting, x) and self.overlaps(waiting, x)
                    and not (x.id in ids and ahead(waiting, x))]
                if not holders:
                    self.violation(13, f"{owner.id} let go at {at}; {waiting.id} "
                                   f"({waiting.partner}, {waiting.scope}) was next in line "
                                   f"and nothing holds it, but promoted were "
                                   f"{[(r.id, r.partner, r.scope) for r in ups]}")

    # --- invariant 14: cross-partition copies ------------------------------------------------

    def check_decision_key(self, envelope: Envelope, decision: DomainEvent) -> None:
        """A decision is keyed by its own account key (a copy's rejection reaches the
        projections and the copy's own partition's readers under the copy's key)."""
        key = getattr(decision, "account_key", None)
        if key is not None and envelope.subject != key:
            self.violation(14, f"{type(decision).__name__} about {key} was keyed "
                           f"{envelope.subject}")

    def check_evidence_live(self, reg: Reg, event: RegistrationDecided | ClaimDecided
                            ) -> None:
        """A new registration is never rejected or sent to a person on the evidence of a
        registration that had already ended (a stale copy of another partition's)."""
        if event.rule == "reregistration_cooloff":
            return  # its evidence is the ended registration, by definition
        for c in event.conflicts:
            cited = self.model.regs.get(c.registration_id or "")
            if cited is not None and cited.status not in (*ACTIVE, "submitted"):
                self.violation(14, f"{reg.id} {event.status} ({event.rule}) citing "
                               f"{cited.id}, which had ended {cited.status}")

    # --- invariant 15: protection is bounded -------------------------------------------------

    def hold(self, reg: Reg, dispute_id: str | None) -> None:
        if reg.held_by is not None and reg.held_by != dispute_id:
            self.violation(15, f"{reg.id}'s protection carried past its end by {dispute_id}, "
                           f"after {reg.held_by} carried it already")
        reg.held_by = dispute_id

    def check_extension(self, reg: Reg, event: ProtectionExtended) -> None:
        own = self.policy_of(reg)
        if event.extensions > own.extension.max_extensions:
            self.violation(15, f"{reg.id} extended {event.extensions} times, policy "
                           f"v{own.version} allows {own.extension.max_extensions}")
        if reg.protected_until is not None and \
                event.protected_until != reg.protected_until + own.extension.period:
            self.violation(15, f"{reg.id} extended from {reg.protected_until} to "
                           f"{event.protected_until} (period {own.extension.period})")

    def protection_bounded(self) -> None:
        """Invariant 15: no approval outlives its end, and no end lies beyond the grant +
        `protection_period` + the extensions used + one dispute's hold."""
        now = self.clock.now
        for reg in self.model.regs.values():
            if reg.status != "approved" or reg.protected_until is None \
                    or reg.granted_at is None:
                continue
            own = self.policy_of(reg)
            bound = reg.granted_at + own.protection_period + \
                reg.extensions * own.extension.period
            held = self.model.disputes.get(reg.held_by or "")
            if held is not None:
                bound = max(bound, (now if held.open or held.resolved_at is None
                                    else held.resolved_at) + own.dispute_grace)
            if reg.protected_until > bound:
                self.violation(15, f"{reg.id} protected until {reg.protected_until}, beyond "
                               f"{bound} (granted {reg.granted_at}, {reg.extensions} "
                               f"extension(s), held by {reg.held_by})")
            if reg.protected_until < now:
                self.violation(15, f"{reg.id} still approved at {now}, its protection ended "
                               f"{reg.protected_until}")

    # --- invariant 16: a partner note names no party -----------------------------------------

    def party_terms(self, dispute: Dispute) -> dict[str, list[str]]:
        terms: dict[str, list[str]] = defaultdict(list)
        for rid in dispute.members:
            reg = self.model.regs.get(rid)
            if reg is None:
                continue
            if reg.partner != DIRECT:
                terms["partner_id"].append(reg.partner)
                terms["partner_name"].append(NAME_OF[reg.partner])
            if reg.rep is not None:
                terms["rep"].append(reg.rep)
            if reg.spec.crm_account_id:
                terms["crm"].append(reg.spec.crm_account_id)
        return terms

    def partner_note(self, dispute: Dispute, kind: str | None, pick: int, shout: bool
                     ) -> str | None:
        if kind is None:
            return None
        found = self.party_terms(dispute).get(kind)
        if not found:
            return "Settled on the documented first meeting; thank you for your patience."
        term = found[pick % len(found)]
        return f"Awarded after review: {term.upper() if shout else term} introduced it first."

    def check_partner_note(self, dispute: Dispute, note: str | None, refused: bool,
                           appended: bool) -> None:
        """Invariant 16: a partner note naming a party of the dispute is refused (422, field
        `partner_note`) with nothing appended; one naming none is never refused for it."""
        if note is None:
            return
        named = [t for ts in self.party_terms(dispute).values() for t in ts
                 if re.search(r"(?<!\w)" + re.escape(t) + r"(?!\w)", note, re.IGNORECASE)]
        if named and not refused:
            self.violation(16, f"partner note {note!r} names {named} of {dispute.id} and "
                           f"was accepted")
        if named and appended:
            self.violation(16, f"refused partner note {note!r} appended an event")
        if refused and not named:
            self.violation(16, f"partner note {note!r} names no party of {dispute.id} "
                           f"but was refused")

    # --- invariant 9: a contest is one appeal ------------------------------------------------

    def check_contest(self, reg: Reg) -> None:
        status = self.model.partner_status.get(reg.partner, "active")
        if not reg.contestable:
            self.violation(9, f"{reg.id} contested again, or a decision that was no "
                           f"precedence rejection (last rule {reg.rule}, status {reg.status})")
        if status != "active":
            self.violation(9, f"{reg.id} contested by its {status} partner {reg.partner}")

    def check_appeal(self, reg: Reg, at: datetime) -> None:
        """Invariant 9, one appeal per rival protection (DESIGN.md, "Contests end"): a
        partner that contested losing to a registration, with a registration since
        withdrawn or rejected, never opens another contest against that same registration
        (in the same grant, within a protection period) through a new registration."""
        reg.appealed = reg.beaten_by
        for rival_id in reg.beaten_by:
            rival = self.model.regs.get(rival_id)
            if rival is None:
                continue
            key = (reg.partner, rival_id, rival.granted_at)
            first = self.appeals.get(key)
            if first is None:
                self.appeals[key] = (reg.id, at)
                continue
            earlier = self.model.regs.get(first[0])
            if first[0] != reg.id and earlier is not None \
                    and earlier.status in ("withdrawn", "rejected") \
                    and at - first[1] < self.policy_of(rival).protection_period:
                self.violation(9, f"{reg.id} ({reg.partner}) contested losing to {rival_id} "
                               f"again, after {earlier.id} ({earlier.status}) contested it "
                               f"at {first[1]}: a contest that never ends")

    def check_appeal_refused(self, event: DisputeActionRejected) -> None:
        """The other half: a contest refused as a repeated appeal names a rival the partner
        really contested before with another registration (a fresh rival registration can
        still be contested)."""
        if "contested losing to the same registration" not in event.explanation:
            return
        reg = self.model.regs.get(self.filed.get(event.dispute_id, ""))
        if reg is None:
            return
        RECENT["appeal refused: contested that rival before"] += 1
        if not any(p == reg.partner and r in reg.beaten_by and first != reg.id
                   for (p, r, _), (first, _) in self.appeals.items()):
            self.violation(9, f"{reg.id}'s contest ({reg.partner}, lost to {reg.beaten_by}) "
                           f"refused as a second appeal, but the partner never contested "
                           f"losing to any of them: {event.explanation!r}")

    # --- invariant 4: an inactive partner never gains protection -----------------------------

    def check_gain(self, reg: Reg, how: str) -> None:
        status = self.model.partner_status.get(reg.partner, "active")
        if status != "active":
            self.violation(4, f"{reg.id} of {status} partner {reg.partner} was {how}")

    # --- invariant 6: explanations come from the deciding data -------------------------------

    def check_explanation(self, reg: Reg, event: RegistrationDecided | ClaimDecided) -> None:
        text = event.explanation
        tag = f"({event.rule}, policy v{event.policy_version})"
        if tag not in text:
            self.violation(6, f"{reg.id}: explanation lacks {tag}: {text!r}")
        policy = self.model.policies.get(event.policy_version)
        confident = [c for c in event.conflicts if c.confident]
        rivals = [self.model.regs[c.registration_id] for c in confident
                  if c.registration_id in self.model.regs]
        for c in event.conflicts:
            rival = self.model.regs.get(c.registration_id or "")
            if rival is None:
                continue
            if self.settled_beside_a_copy(reg, rival, event, c):
                # Named by the edge's report (`Entry.reported`; session 28): checked below
                # like any other item, counted so a run says how often it came up.
                SESSION27["a settlement names an unlinked copy on another partition"] += 1
            if self.copy_named_by_its_key_form(reg, rival, event, c):
                # Known open gap (DESIGN, "A copy's own evidence", session 30): counted so a
                # run says how often it came up; every other item is checked below.
                SESSION27["open: a copy named by its home key's form (invariant 6 gap)"] += 1
                continue
            # The evidence says how this registration was recognised as the rival's
            # customer: by an identifier it shares with some registration of that customer.
            mine, theirs = reg.spec, self.customer_of(rival, without=reg.id)
            if c.matched_by == "domain" and (mine.domain is None or mine.domain not in
                                             {t.domain for t in theirs}):
                self.violation(6, f"{reg.id} says matched_by domain with {rival.id}: "
                               f"{mine.domain} vs {sorted({str(t.domain) for t in theirs})}")
            if c.matched_by == "crm_account_id" and (
                    mine.crm_account_id is None
                    or _crm(mine.crm_account_id) not in {_crm(t.crm_account_id)
                                                         for t in theirs}):
                self.violation(6, f"{reg.id} says matched_by crm with {rival.id}: "
                               f"{mine.crm_account_id} vs "
                               f"{sorted({str(t.crm_account_id) for t in theirs})}")
            self.check_unlinked_evidence(reg, rival, c)
        if "within the" in text and "tie window" in text and policy is not None \
                and reg.submitted_at is not None:
            for rival in rivals:
                if rival.submitted_at is not None and \
                        abs(reg.submitted_at - rival.submitted_at) > policy.tie_window:
                    self.violation(6, f"{reg.id}: says 'within the tie window' but "
                                   f"{rival.id} was submitted "
                                   f"{reg.submitted_at - rival.submitted_at} apart "
                                   f"(window {policy.tie_window}): {text!r}")
        if event.status == "in_review" and event.rule in PRECEDENCE_RULES and confident:
            parties = len(confident)
            said = "another partner's registration" in text or "direct" in text
            if parties == 1 and not said and "1 other" not in text:
                self.violation(6, f"{reg.id}: one counterpart, text says otherwise: {text!r}")
            # Count-free (issue 12): the text never tells a partner how many rivals it has;
            # the evidence carries them.
            if parties > 1 and (f"{parties} other" in text or not (said or "another party"
                                                                     in text)):
                self.violation(6, f"{reg.id}: {parties} counterparts in evidence, "
                               f"text counts them or names none: {text!r}")
        if event.rule == "tier" and event.status == "rejected":
            tiers = [TIER_OF.get(r.partner, "direct") for r in rivals]
            mine_rank = TIER_RANK[TIER_OF[reg.partner]]
            if not any(TIER_RANK.get(t, len(TIER_RANK)) < mine_rank for t in tiers):
                self.violation(6, f"{reg.id} ({TIER_OF[reg.partner]}) rejected by tier, but "
                               f"no counterpart has a higher tier: {tiers}")
        if event.rule == "first_submitted" and event.status == "rejected" and rivals \
                and reg.submitted_at is not None:
            gaps = {human_span(to_us(reg.submitted_at) - to_us(r.submitted_at))
                    for r in rivals if r.submitted_at is not None}
            if not any(f"submitted {g} earlier" in text for g in gaps):
                self.violation(6, f"{reg.id}: gap in text not any of {gaps}: {text!r}")

    def copy_named_by_its_key_form(self, reg: Reg, rival: Reg,
                                   event: RegistrationDecided | ClaimDecided, c: Any) -> bool:
        """The one documented invariant-6 gap (session 30, open): a person's settlement on
        another partition than `reg`'s own key rejects `reg`'s copy there, and names it by
        its home key's form (`dom:` -> `domain`, `crm:` -> `crm_account_id`) although
        `reg` was filed under that key by another identifier (a country-less filing by
        CRM id alone, home under a `dom:` key): a copy carries no record of how it matched
        its home key (`ReportedRegistration` has no evidence field). Narrow on purpose:
        only a settlement, only the key's own form, only an identifier `reg` does not have
        (at home the entry keeps its own evidence, so only a copy can say it)."""
        if event.rule != "dispute_resolution" or reg.key is None or rival.key is None:
            return False
        form = {"dom": "domain", "crm": "crm_account_id"}.get(reg.key.partition(":")[0])
        lacks = ((form == "domain" and reg.spec.domain is None)
                 or (form == "crm_account_id" and reg.spec.crm_account_id is None))
        return c.matched_by == form and lacks

    def settled_beside_a_copy(self, reg: Reg, rival: Reg,
                              event: RegistrationDecided | ClaimDecided, c: Any) -> bool:
        """A settlement's decision naming, not confidently, a member under a key not linked
        to `reg`'s and on another partition (a copy there, its key not filed): the
        adjudicator names it by the edge's report of how the two matched
        (`outcomes.reported_match`); by the keys' forms it cited an identifier the two
        never shared (session 28, fixed)."""
        return (event.rule == "dispute_resolution" and not c.confident
                and reg.key is not None and rival.key is not None
                and self.model.canonical(reg.key) != self.model.canonical(rival.key)
                and partition_for(reg.key, PARTITIONS) != partition_for(rival.key,
                                                                       PARTITIONS))

    def check_unlinked_evidence(self, reg: Reg, rival: Reg, c: Any) -> None:
        """Evidence says truly why (invariant 6, session 27): of a member under a key
        neither the decided one's nor linked to it, an item is confident only when
        identifiers make the two customers one (an identifier in common that no other
        identifier contradicts). Such a pair met as a possible duplicate (a name in the
        review band, a name under another CRM id, through a third registration's name):
        it used to be named by the decided one's key form, confident. A confident name
        needs that no identifier parts them and that both or neither are identified (the
        model scores no names: `outcomes.unlinked_match`)."""
        m = self.model
        if reg.key is None or rival.key is None \
                or m.canonical(reg.key) == m.canonical(rival.key):
            return
        RECENT[f"evidence about an unlinked key's member (confident: {c.confident})"] += 1
        if not c.confident:
            return
        mine = self.customer_of(reg, without="")
        theirs = self.customer_of(rival, without="")
        crm_a = {_crm(s.crm_account_id) for s in mine if s.crm_account_id}
        crm_b = {_crm(s.crm_account_id) for s in theirs if s.crm_account_id}
        dom_a = {s.domain for s in mine if s.domain}
        dom_b = {s.domain for s in theirs if s.domain}
        apart = bool(crm_a and crm_b and crm_a != crm_b) or bool(
            dom_a and dom_b and dom_a.isdisjoint(dom_b) and not (crm_a and crm_b))
        unshared = crm_a.isdisjoint(crm_b) and dom_a.isdisjoint(dom_b)
        # A name decides only between two identified customers or two name-only ones (the
        # machine's policies: `match.name_only: review`).
        lopsided = bool(crm_a or dom_a) != bool(crm_b or dom_b)
        if apart or (unshared and (c.matched_by != "name" or lopsided)):
            self.violation(6, f"{reg.id} at {reg.key} names {rival.id} at {rival.key} "
                           f"(not linked) confident, matched_by {c.matched_by}: crm "
                           f"{sorted(map(str, crm_a))} vs {sorted(map(str, crm_b))}, domains "
                           f"{sorted(dom_a)} vs {sorted(dom_b)}")

    # --- the state invariants, after every step -----------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        self.one_exclusive_owner_per_customer_and_scope()
        self.different_identifiers_never_share_a_key()
        self.disputes_have_two_live_parties()
        self.read_model_agrees()
        self.protection_bounded()
        self.rivals_moments_read_to_the_unit()
        self.report()

    # --- invariant 20: no partner reads a rival's moment finer than the deadline unit --------

    off_unit = False
    """Whether the clock ever left a whole hour (`RivalMoments.moment_passes`): until then
    every act is on the unit, and invariant 20 holds trivially (not checked)."""

    exact_eras: tuple[tuple[datetime, datetime | None], ...] = ()
    """(from, until) while the latest document had no deadline unit
    (`RivalMoments.unit_changes`): a dispute opened then falls due exactly, as decided, and
    its parties read that; a partner that acted only after the last such era (a joiner
    under a document with a unit) must read nothing finer than the unit (session 30)."""

    RIVAL_ACTS = ("dealreg.registration.submitted.v1", "dealreg.claim.filed.v1",
                  "dealreg.dispute.filed.v1", "dealreg.registration.extension_requested.v1")
    """A party's acts whose moments other partners must not read finer than the unit. Not
    a withdrawal, a close or a claim's release: a registration promoted, or a dispute ended
    `moot`, at a rival's letting go is decided at that moment (known limit, DESIGN.md
    invariant 20; the delayed promotion is session 30's s30-promotion)."""

    LETTING_GO = ("dealreg.registration.withdrawn.v1", "dealreg.opportunity.closed.v1",
                  "dealreg.claim.released.v1")
    """A party's letting go, out of invariant 20's scope (`RIVAL_ACTS`): a moment a
    partner reads that is one of these is not checked, though a rival's act fell at the
    same instant (the machine's clock stands still between steps: a rival's withdrawal
    right after another's submission ends a dispute `moot` at both moments)."""

    WALL_CLOCK = frozenset({"created_at", "delivered_at", "next_attempt_at", "timestamp",
                            "attempt_log"})
    """Delivery fields dated by when the projection or the sender ran (timing, out of the
    invariant's scope; the simulated clock's hour offset is the last act's)."""

    def acts(self) -> list[tuple[datetime, str, str]]:
        """(moment, party, event type) of every input a party made (a partner, or
        `direct` for a rep's claim); vendor inputs (owners, policy, timers) are `vendor`."""
        found: list[tuple[datetime, str, str]] = []
        for records in self.run(self.pipeline.all_records(self.pipeline.topics.intake)
                                ).values():
            for record in records:
                envelope, event = decode(record.value)
                data = event.to_data()
                subject = data.get("registration_id") or data.get("claim_id")
                party = data.get("partner_id")
                if event.TYPE == "dealreg.claim.filed.v1":
                    party = DIRECT
                elif party is None and subject in self.model.regs:
                    party = self.model.regs[subject].partner
                elif event.TYPE.startswith(("dealreg.partner.", "dealreg.policy.",
                                            "dealreg.owner.")):
                    party = None
                found.append((envelope.time, party or "vendor", event.TYPE))
        return found

    def partner_reads(self, partner: str) -> dict[str, Any]:
        """Everything `partner` reads through the partner views, as the API answers it
        (routes called directly, no HTTP): its registrations, their timelines, its
        disputes and its delivery log."""
        request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(
            runtime=self.pipeline.runtime)))
        who = Viewer("partner", partner)

        async def read() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            for reg in self.model.regs.values():
                if reg.partner != partner or reg.kind != "registration":
                    continue
                try:
                    shown = await read_registration(reg.id, request, who)
                    timeline = await read_timeline(reg.id, request, who)
                except Problem:
                    continue  # not projected yet
                seen[reg.id] = shown.model_dump(mode="json")
                seen[f"{reg.id}/timeline"] = timeline.model_dump(mode="json")
            page = await list_disputes(request, who, limit=500)
            seen["disputes"] = page.model_dump(mode="json")
            log = await list_partner_deliveries(
                partner, request, Principal("partner", partner), limit=500)
            seen["deliveries"] = orjson.loads(log.body)
            return seen

        found: dict[str, Any] = self.run(read())
        return found

    def rivals_moments_read_to_the_unit(self) -> None:
        """Invariant 20: no moment a partner reads (its registrations, timelines, disputes,
        webhooks) is a rival's act plus whole deadline units unless it is on the unit, or
        the partner's own act or a vendor's (an owner's resolution) plus whole units too."""
        if not self.off_unit:
            return
        unit_span = self.model.policies[max(self.model.policies)].escalation.deadline_unit
        if unit_span is None:
            return
        unit = to_us(EPOCH_UTC + unit_span)
        acts = self.acts()
        eras = self.exact_eras
        ended = max((until for _, until in eras if until is not None), default=None)

        def exact(t: datetime) -> bool:
            return any(since <= t and (until is None or t < until) for since, until in eras)

        for partner in PARTNERS:
            own = {to_us(t) % unit for t, party, kind in acts
                   if party in (partner, "vendor") or kind in self.LETTING_GO}
            # A partner that acted before a unit-less era ended may be a party of a dispute
            # decided under it (exact deadlines, as decided): its rivals' acts then are
            # not checked for it. A partner acting only later is checked on all of them.
            early = ended is not None and any(party == partner and t < ended
                                              for t, party, _ in acts)
            rivals = {to_us(t) % unit: (t, party, kind) for t, party, kind in acts
                      if party not in (partner, "vendor") and kind in self.RIVAL_ACTS
                      and not (early and exact(t))}
            if not rivals.keys() - own - {0}:
                continue
            if currently_in_test_context():  # --hypothesis-show-statistics
                event("invariant 20 checked with a rival off the unit")
                if ended is not None and not early and any(
                        exact(t) for t, _, _ in rivals.values()):
                    event("invariant 20 checked a rival's act from a unit-less era")
            for where, value in _moments(self.partner_reads(partner), self.WALL_CLOCK):
                rest = to_us(value) % unit
                if rest and rest not in own and rest in rivals:
                    at, party, kind = rivals[rest]
                    self.violation(20, f"{partner} reads {value.isoformat()} at {where}: "
                                   f"{party}'s {kind} at {at.isoformat()} plus whole units "
                                   f"of {unit_span}")

    def one_exclusive_owner_per_customer_and_scope(self) -> None:
        """Invariant 1."""
        owners: dict[str, list[Reg]] = defaultdict(list)
        reviewed = {(x, y) for d in self.model.disputes.values()
                    if d.open and d.opened_as in ("cross_key", "possible_duplicate")
                    for x in d.members for y in d.members}
        for reg in self.model.regs.values():
            if reg.status == "approved" and reg.motion in EXCLUSIVE:
                owners[reg.company].append(reg)
        for company, regs in owners.items():
            for i, a in enumerate(regs):
                for b in regs[i + 1:]:
                    if a.shares & b.shares:
                        continue  # co_sell / split / distinct: a person shared it
                    if a.partner == b.partner and (
                            a.spec.name_only != b.spec.name_only
                            or a.spec.countryless != b.spec.countryless):
                        continue  # the party's own possible duplicate (DESIGN.md, limit):
                        # by name alone, or without a country (a name weighed across
                        # countries, never confidently) beside its identified one
                    if a.partner == b.partner and a.raced and b.raced:
                        continue  # a party racing itself across partitions (DESIGN.md,
                        # limit): its own copy is never its rival, so no review opens
                    if (a.id, b.id) in reviewed or (b.id, a.id) in reviewed:
                        continue  # a race met in a review (cross_key, or a name-only
                        # side's possible_duplicate): a person decides
                    if a.spec.countryless != b.spec.countryless and any(
                            d.outcome == "award" and d.opened_as == "possible_duplicate"
                            and a.id in d.members and b.id in d.members
                            for d in self.model.disputes.values()):
                        continue  # a person awarded one of a possible duplicate across
                        # countries: the other, flagged, is weighed against the winner by
                        # `disputes._conflict`, never confident across countries, and keeps
                        # its approval (DESIGN.md, rule 7; session 30 `foreign_qualified`)
                    if self.asks_only(a, b) or self.asks_only(b, a):
                        continue  # a name filed without a country asks but does not
                        # hold: each owns by its own identifiers (session 29)
                    if self.conflict(a, b):
                        self.violation(1,
                            f"{company} ({company_name(company)}) has two "
                            f"exclusive owners: {a.id} ({a.partner}, {a.scope}, {a.rule}) and "
                            f"{b.id} ({b.partner}, {b.scope}, {b.rule})")

    def asks_only(self, holder: Reg, later: Reg) -> bool:
        """Whether `holder`, filed without a country before `later` was filed with one,
        is no possible duplicate of it: under policy `match.countryless_names: ask` (the
        later filing's) a name filed without a country is weighed only against later
        filings that give none either, and protects its holder otherwise by its
        identifiers alone (DESIGN.md, "Griefing by a country-less name", decided (b)) --
        so two that share no identifier (no CRM id in any spelling, no domain, no key)
        are two owners by design, not by a missed match. `later` is also a filing
        rejected before `holder` was filed and approved after it by a contest or
        promotion (`revived_after`): weighed then as a newcomer (s30-inv1)."""
        if not (holder.spec.countryless and not later.spec.countryless
                and (holder.id < later.id or holder.id[4:] <= later.revived_after[4:])
                and self.policy_of(later).match.countryless_names == "ask"):
            return False
        if holder.key is not None and later.key is not None and (
                self.model.canonical(holder.key) == self.model.canonical(later.key)):
            return False
        a, b = holder.spec, later.spec
        if a.domain and b.domain and registrable_domain(a.domain) == registrable_domain(
                b.domain):
            return False
        return not (a.crm_account_id and b.crm_account_id and (
            canonical_crm_id(a.crm_account_id, "any_spelling")
            == canonical_crm_id(b.crm_account_id, "any_spelling")))

    def different_identifiers_never_share_a_key(self) -> None:
        """Invariant 3: a customer (key with its links) holds one company only."""
        groups: dict[str, set[str]] = defaultdict(set)
        crm: dict[str, set[str]] = defaultdict(set)
        for key, rids in self.model.keys.items():
            root = self.model.canonical(key)
            for rid in rids:
                spec = self.model.regs[rid].spec
                groups[root].add(spec.company_id)
                if spec.crm_account_id:
                    crm[root].add(canonical_crm_id(spec.crm_account_id, "any_spelling"))
        for root, companies in groups.items():
            if not (len(companies) == 1 and len(crm[root]) <= 1):
                self.violation(3,
                f"key {root} holds {len(companies)} companies "
                f"{[company_name(c) for c in sorted(companies)]} with CRM ids "
                f"{sorted(crm[root])}")

    def disputes_have_two_live_parties(self) -> None:
        """Invariant 5."""
        for d in self.model.disputes.values():
            if not d.open:
                continue
            live = {self.model.regs[r].partner for r in d.members if r in self.model.regs
                    and self.model.regs[r].status in ACTIVE
                    and self.model.partner_status.get(self.model.regs[r].partner) != "exited"}
            known = [self.model.regs[r] for r in d.members if r in self.model.regs]
            if not (len(live) >= 2 or len(known) < len(d.members)):
                self.violation(5,
                f"open dispute {d.id} has {len(live)} live parties: "
                f"{[(r.id, r.partner, r.status, r.key) for r in known]}")

    def read_model_agrees(self) -> None:
        """Invariant 8: the read models show what the decisions say (registration status,
        dispute open or resolved)."""
        async def rows() -> tuple[dict[str, str], dict[str, str]]:
            async with self.pipeline.runtime.engine.connect() as conn:
                regs = await conn.execute(select(registrations_table.c.id,
                                                 registrations_table.c.status))
                claims = await conn.execute(select(claims_table.c.id, claims_table.c.status))
                disputes = await conn.execute(select(disputes_table.c.id,
                                                     disputes_table.c.status))
                return ({i: s for i, s in [*regs, *claims]},
                        {i: s for i, s in disputes})

        shown, disputes = self.run(rows())
        for reg in self.model.regs.values():
            if reg.status != "submitted" and shown.get(reg.id) != reg.status:
                self.violation(8, f"read model shows {reg.id} {shown.get(reg.id)}, decisions "
                               f"say {reg.status}")
        for d in self.model.disputes.values():
            status = disputes.get(d.id)
            if (status == "open") != d.open:
                self.violation(8, f"read model shows dispute {d.id} {status}, decisions say "
                               f"{'open' if d.open else 'resolved'}")

    # --- invariant 7: replay reproduces every decision ---------------------------------------

    def check_replay(self) -> None:
        intake = self.run(self.pipeline.all_records(self.pipeline.topics.intake))
        logged = self.run(self.pipeline.all_records(self.pipeline.topics.decisions))
        recorded: dict[str, dict[str, Any]] = {}
        for records in logged.values():
            for record in records:
                envelope, event = decode(record.value)
                recorded[envelope.id] = event.to_data()
        policies = self.pipeline.adjudicator.policies
        replayed = 0
        for records in intake.values():
            state = AdjudicationState()
            for record in records:
                envelope, event = decode(record.value)
                version = stamped_version(event)
                context = DecisionContext(envelope.id, envelope.time,
                                          policies.get(version) if version else None)
                _, decisions = decide(state, event, context)
                for i, decision in enumerate(decisions):
                    key = f"{envelope.id}.d{i}"
                    if recorded.get(key) != decision.to_data():
                        self.violation(7,
                        f"replaying {envelope.id} ({type(event).__name__}) gave "
                        f"{decision.to_data()} where the log has {recorded.get(key)}")
                    replayed += 1
        if replayed != len(recorded):
            self.violation(7,
            f"replay made {replayed} decisions, the log has {len(recorded)}")


# Bounded for `make test` (about a minute on two busy cores), derandomized so CI sees the same
# runs every time. Shrinking a failure to a minimal example takes minutes: run with
# DEALREG_PROPERTY_SHRINK=1 to get one (README, "How we prove it").
_SHRINK = os.environ.get("DEALREG_PROPERTY_SHRINK") == "1"


def _shares(d: Dispute) -> bool:
    """Whether the members a resolution approves share the account: co-sell, split,
    distinct, or a possible duplicate nobody reviewed (two customers)."""
    return d.outcome in ("co_sell", "split", "distinct") or (
        d.outcome == "final_breach_fallback" and d.reason == "possible_duplicate")


class RivalMoments(Invariants):
    """The same machine with acts off the whole hour (invariant 20): besides whole hours,
    the clock moves by minutes and seconds, so registrations, contests and claims happen
    at moments a partner could tell apart from the deadline unit's (PT1H, the policies'
    default), and invariant 20 is checked after every step on what each partner reads."""

    @initialize()
    def ladder_of_hours(self) -> None:
        """Disputes settle within a day or two (`short_ladder`: two 6 h levels), so the
        fallback fires within the steps a run takes."""
        self.publish_policy("short_ladder")

    @rule()
    def unit_changes(self) -> None:
        """The deadline unit changes mid-run (session 30): the short ladder without a unit
        (an upgraded deployment's older document) when the latest has one, else with PT1H
        again. A dispute opened under the former that a partner joins under the latter
        moves onto the hour (`disputes._onto_unit`), which invariant 20 checks for that
        partner (`exact_eras`)."""
        latest = self.model.policies[max(self.model.policies)]
        to_exact = latest.escalation.deadline_unit is not None
        published = self.run(self.pipeline.commands.reference.publish(
            SHORT_LADDER_EXACT if to_exact else POLICIES["short_ladder"],
            published_by="test"))
        self.model.policies[published.policy.version] = published.policy
        now = self.clock.now
        if to_exact:
            self.exact_eras = (*self.exact_eras, (now, None))
        elif self.exact_eras and self.exact_eras[-1][1] is None:
            self.exact_eras = (*self.exact_eras[:-1], (self.exact_eras[-1][0], now))
        self.settle()

    @rule(minutes=st.sampled_from((7, 23, 41)))
    def moment_passes(self, minutes: int) -> None:
        self.off_unit = True
        self.clock.advance(timedelta(minutes=minutes, seconds=minutes))
        self.settle()

    @rule(spec=st.sampled_from(SPECS), index=st.integers(0, 50),
          partner=st.sampled_from(PARTNERS), minutes=st.sampled_from((7, 23, 41)),
          products=st.sampled_from(((PRODUCTS[0],), (PRODUCTS[1],), PRODUCTS[:2])))
    def register_a_moment_later(self, spec: Registration, index: int, partner: str,
                                minutes: int, products: tuple[str, ...] = PRODUCTS[:1]
                                ) -> None:
        """A registration off the whole hour (a rival's submission a partner might read):
        of a customer already registered when there is one (a collision, often a dispute
        that a third partner joins late), else of `spec`. For one product or two: a
        registration for both ties with holders of either and joins their dispute with
        the other's approval beside it (session 30 second rival review)."""
        self.off_unit = True
        self.clock.advance(timedelta(minutes=minutes, seconds=minutes))
        held = [r for r in self.model.regs.values() if r.kind == "registration"]
        if held:
            spec = held[index % len(held)].spec
        self.submit(spec, partner, set(products), "resell")
        self.settle()


class MoreInvariants(Invariants):
    """The same machine with the rules that reach invariants 12 and 16 more often: a
    partner re-registering what it withdrew or let expire, and resolutions with a partner
    note (neutral, or naming a party of the dispute, in any case). A separate machine, so
    the first one's derandomized runs stay the ones CI has always seen."""

    @precondition(lambda self: self.model.regs)
    @rule(index=st.integers(0, 50))
    def re_register(self, index: int) -> None:
        self.reregister(index)

    @precondition(lambda self: self.model.disputes)
    @rule(index=st.integers(0, 20), winner=st.integers(0, 10),
          outcome=st.sampled_from(("award", "split", "co_sell", "reject_all", "distinct")),
          note=st.sampled_from(("neutral", "partner_id", "partner_name", "crm", "rep")),
          shout=st.booleans())
    def resolve_with_note(self, index: int, winner: int, outcome: str, note: str,
                          shout: bool) -> None:
        self.resolve(index, winner, outcome, note, shout)


# --- the rules of session 23, driven by the machines -----------------------------------------
# Four rules landed with e2e and unit tests only; the companies below bring them into the
# machines (`RecentRules`): Faker companies registered in a race across partitions, under a
# Salesforce id's two spellings (and a look-alike's id that differs in case only), and by a
# free-mail address or a platform page instead of a domain.

RECENT: Counter[str] = Counter()
"""How often each of the session-23 rules fired in this process (printed after the run)."""


@dataclass(frozen=True)
class Contacted(Registration):
    """A registration that names the customer by a contact's e-mail address or a page URL
    (`account.email` / `account.website`), not by a domain of its own."""

    contact: str = ""

    def account(self) -> dict[str, Any]:
        out = super().account()
        if self.contact:
            out["email" if "@" in self.contact else "website"] = self.contact
        return out


def _spec(company: str, name: str, country: str, *, domain: str | None = None,
          crm: str | None = None, contact: str = "") -> Contacted:
    return Contacted(0, company, PARTNERS[0], name, "canonical", country, domain, crm,
                     ("analytics",), True, contact=contact)


def _salesforce_15(rng: random.Random) -> str:
    """A 15-character Salesforce account id (key prefix 001) with letters in both cases."""
    alphabet = string.ascii_letters + string.digits
    while True:
        tail = "".join(rng.choice(alphabet) for _ in range(12))
        if any(c.isupper() for c in tail) and any(c.islower() for c in tail):
            return "001" + tail


def _recent_companies() -> tuple[list[tuple[Contacted, Contacted]], list[Contacted],
                                 list[Contacted], dict[str, str]]:
    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "it_IT"])
    fake.seed_instance(24)
    rng = random.Random(24)
    names: dict[str, str] = {}
    races: list[tuple[Contacted, Contacted]] = []
    for n in range(3):  # by domain, and by name + CRM id, keys on two partitions
        name = fake["en_US"].company()
        slug = re.sub(r"[^a-z0-9]", "", name.split()[0].lower())
        domain, crm = f"{slug}.com", f"001{n}{slug[:3].upper()}"
        while partition_for(f"dom:{domain}", PARTITIONS) == partition_for(f"crm:{crm}",
                                                                         PARTITIONS):
            crm += "X"
        cid = f"race-{n}"
        names[cid] = name
        races.append((_spec(cid, name, "US", domain=domain), _spec(cid, name, "US", crm=crm)))
    salesforce: list[Contacted] = []
    for n in range(2):  # one id in three spellings; a look-alike's id differs in case only
        name = fake["en_GB"].company()
        id15 = _salesforce_15(rng)
        id18 = salesforce_18(id15)
        assert id18 is not None
        flip = next(i for i in range(3, 15) if id15[i].isalpha())
        twin = id15[:flip] + id15[flip].swapcase() + id15[flip + 1:]
        cid = f"sf-{n}"
        names[cid] = names[f"{cid}-twin"] = name
        salesforce += [_spec(cid, name, "GB", crm=id15), _spec(cid, name, "GB", crm=id18),
                       _spec(cid, name, "GB", crm=id18[:15] + id18[15:].lower()),
                       _spec(f"sf-{n}-twin", name, "GB", crm=twin)]
    contacted: list[Contacted] = []
    for n, (locale, country) in enumerate((("de_DE", "DE"), ("it_IT", "IT"),
                                           ("fr_FR", "FR"))):
        # Two companies reached at one regional free-mail provider ...
        first, second = fake[locale].company(), fake[locale].company()
        provider = fake[locale].free_email_domain()
        a, b = f"mail-{n}a", f"mail-{n}b"
        names[a], names[b] = first, second
        contacted += [_spec(a, first, country, contact=f"{fake[locale].user_name()}@{provider}"),
                      _spec(b, second, country,
                            contact=f"{fake[locale].user_name()}@{provider}")]
    for n, platform in enumerate(("https://www.facebook.com/{}",
                                  "https://www.linkedin.com/company/{}",
                                  "https://facebook.com/{}/about")):
        # ... and companies whose "website" is a page on a platform.
        name = fake["en_US"].company()
        slug = re.sub(r"[^a-z0-9]", "", name.lower())
        cid = f"page-{n}"
        names[cid] = name
        contacted.append(_spec(cid, name, "US", contact=platform.format(slug)))
    return races, salesforce, contacted, names


RACES, SALESFORCE, CONTACTED, _RECENT_NAMES = _recent_companies()


# --- the rules of session 27, driven by the machines -----------------------------------------
# Four rules landed with e2e and unit tests only (tests/e2e/test_rival_fairness.py): names
# without a country weighed across countries, never confidently; names spelled out letter by
# letter; a GUID CRM id in any letter case (`match.crm_ids: any_case`); a CRM close by
# `external_ref` going to the one closable registration. `CustomerRules` drives them.

CUSTOMERS = generate(seed=12, registrations=24, collision_share=0.5, partners=5,
                     same_name_share=0.35, subsidiary_share=0.2, countryless_share=0.25,
                     guid_share=0.5, spaced_share=0.25)
"""POOL's companies and registrations (same seed and arguments), retyped by the generator's
conventions 5-7: a quarter of the registrations filed without a country, half of the
companies keyed in the CRM by a GUID (some registrations carrying it in lower case), a
quarter typed with a word spelled out ("W E L L S International Inc.")."""
_CUSTOMER = "s27-"
"""Their company ids, apart from POOL's (the same companies with other CRM ids)."""
CUSTOMER_SPECS = tuple(dataclasses.replace(r, company_id=_CUSTOMER + r.company_id)
                       for r in CUSTOMERS.registrations)
CUSTOMER_OF = {_CUSTOMER + c.id: c for c in CUSTOMERS.companies}
GUIDED = [s for s in CUSTOMER_SPECS if s.crm_account_id is not None
          and canonical_crm_id(s.crm_account_id, "any_case") != s.crm_account_id.upper()]
"""Registrations carrying a GUID CRM id (in the company's case or recased)."""
SPELLED = generate(seed=12, registrations=24, collision_share=0.5, partners=5,
                   same_name_share=0.35, subsidiary_share=0.2, countryless_share=0.25,
                   guid_share=0.3, qualifier_share=0.25, trade_name_share=0.35,
                   crm_spelling_share=0.5, mark_share=0.2, salesforce_share=0.25,
                   trade_marker_share=0.5)
"""POOL's companies and registrations (same seed and arguments) retyped by the generator's
conventions 8-12 (session 29): names with a qualifier naming their own country or region,
"<legal> dba <trade>" names (half of them joined by "t/a" or "aka" instead: convention 12,
session 30; and a trade name alone beside an identifier), CRM ids in
other spellings (case, separators, braces around a GUID, full width; some companies keyed
by a Salesforce id), trademark signs and full-width letters; a quarter filed without a
country, some GUIDs (conventions 5 and 6)."""
_SPELLED = "s29-"
SPELLED_SPECS = tuple(dataclasses.replace(r, company_id=_SPELLED + r.company_id)
                      for r in SPELLED.registrations)
SPELLED_OF = {_SPELLED + c.id: c for c in SPELLED.companies}
NAMED_ONLY = {r.company_id for r in SPELLED_SPECS if r.name_only}
"""Companies registered by name alone somewhere in the pool: a trade name alone beside an
identifier would be another name than the one their name-only holder filed (convention 9
never types it)."""
CHAINS: dict[str, tuple[str, ...]] = {}
"""A squatter's "A dba B dba C" company id -> the companies its name lists."""
CHAIN_SPECS: dict[str, Registration] = {}
SUBSIDIARY_SPECS: dict[str, Registration] = {}
"""A subsidiary's company id (`SpellingRules.foreign_qualified`: a company's name with a
qualifier naming another country, filed in the company's country) -> its spelling: one
customer, another than the company."""
CLOSABLE = ("approved", "in_review", "submitted", "expired")
"""What a CRM close may end (services/registration/handlers.py)."""
SESSION27: Counter[str] = Counter()
"""How often each of the session-27 rules fired in this process (printed after the run)."""


def specs_of(company_id: str) -> list[Registration]:
    """Every way the machines register this company."""
    if company_id in CHAIN_SPECS:
        return [CHAIN_SPECS[company_id]]
    if company_id in SUBSIDIARY_SPECS:
        return [SUBSIDIARY_SPECS[company_id]]
    return [r for r in (*SPECS, *(s for pair in RACES for s in pair), *SALESFORCE,
                        *CONTACTED, *CUSTOMER_SPECS, *SPELLED_SPECS)
            if r.company_id == company_id]


def company_name(company_id: str) -> str:
    if company_id in CUSTOMER_OF:
        return CUSTOMER_OF[company_id].name
    if company_id in SPELLED_OF:
        return SPELLED_OF[company_id].name
    if company_id in CHAINS:
        return " dba ".join(company_name(c) for c in CHAINS[company_id])
    if company_id in SUBSIDIARY_SPECS:
        return SUBSIDIARY_SPECS[company_id].name
    return _RECENT_NAMES.get(company_id) or POOL.company(company_id).name


def close_choice(carrying: list[Reg]) -> Reg | None:
    """The registration a CRM close by a reference is about, of those carrying it, as the
    decisions so far give their statuses (README, "Closing a deal"): a single one is
    itself; among closable registrations of several partners, the one approved with
    exclusive protection (rule not `non_exclusive`) when its partner filed the reference
    before every other partner's closable one that holds or held something (session 28: a
    rival's later copy neither takes nor blocks the close; session 29: one in review or
    undecided holds nothing and never blocks it, whenever filed), else none; among one
    partner's, the one closable registration (active before expired); none when two of one
    partner's are active (or, none active, two expired): the CRM must say which. Never one
    filed after another partner's registration of the reference closed (session 29: a
    rival's copy of a closed reference took the CRM's re-sent close), nor one still in
    review or undecided beside it, whenever filed (session 29 second rival review). The
    three rules as `handlers.closed_by_reference` orders them."""
    if len(carrying) == 1:
        return carrying[0]
    done = [r for r in carrying if r.status in ("won", "lost")]
    earliest = datetime.min.replace(tzinfo=UTC)  # as the edge reads a missing time
    pending = ("in_review", "submitted")
    closable = [r for r in carrying if r.status in CLOSABLE and not any(
        c.partner != r.partner and (r.status in pending or (c.submitted_at or earliest)
                                    <= (r.submitted_at or earliest)) for c in done)]
    if len({r.partner for r in closable}) > 1:
        holders = [r for r in closable if r.status == "approved" and r.rule != "non_exclusive"]
        filed = {r.id: r.submitted_at for r in carrying if r.submitted_at is not None}
        if len(holders) != 1 or len(filed) != len(carrying):
            return None
        holder = holders[0]
        first = min(filed[r.id] for r in carrying if r.partner == holder.partner)
        later = all(filed[r.id] > first for r in closable
                    if r.partner != holder.partner and r.status not in pending)
        return holder if later else None
    found = [r for r in closable if r.status != "expired"] or closable
    return found[0] if len(found) == 1 else None


class RecentRules(Invariants):
    """The machine with the session-23 rules (DESIGN.md: "Two first registrations racing
    across partitions", "Contests end", "one Salesforce account id in two spellings",
    free mail and platform pages in "The same customer"). A separate machine, so the
    others' derandomized runs stay the ones CI has always seen. Its registration
    processes run as the distributed deployment's do (`Pipeline.distributed`), since a
    race needs a second one."""

    def __init__(self) -> None:
        super().__init__()
        self.pipeline.distributed = True
        self.pipeline.commands.directory.complete = False

    @rule(race=st.sampled_from(RACES), first=st.sampled_from(PARTNERS),
          second=st.integers(1, 4),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def race(self, race: tuple[Contacted, Contacted], first: str, second: int,
             products: set[str]) -> None:
        """Two partners register one customer under keys on two partitions, each through
        its own registration process, neither waiting for the other: both are appended
        before either is decided. The pump then runs each one's post-decision re-report
        (`Commands._re_report`) to its end (tests/support/pipeline.py)."""
        rival = PARTNERS[(PARTNERS.index(first) + second) % len(PARTNERS)]
        edge = self.run(self.pipeline.other_edge())
        try:
            a = self.submit(race[0], first, products, "resell")
            b = self.submit(race[1], rival, products, "resell", edge=edge)
            reports = self.pipeline.re_reports
            self.settle()
        finally:
            self.run(self.pipeline.drop_edge(edge))
        if a is None or b is None:
            return
        a.raced = b.raced = True
        RECENT["race: both sides appended before either was decided"] += 1
        if self.pipeline.re_reports > reports:
            RECENT["race: a re-report appended a report"] += 1
        if a.status == b.status == "approved":
            met = any(d.open and d.reason == "cross_key" and {a.id, b.id} <= set(d.members)
                      for d in self.model.disputes.values())
            RECENT["race: both approved, " + ("met in a cross_key review" if met
                                              else "no review")] += 1

    @precondition(lambda self: self.model.regs)
    @rule(index=st.integers(0, 20), lose=st.booleans())
    def appeal_again(self, index: int, lose: bool) -> None:
        """A partner contests a rejection (or takes one whose contest is open), then
        withdraws the contested registration (or loses it: the person awards the rival),
        registers the customer again, and contests the new rejection: the same appeal
        against the same rival registration (tests/e2e/test_contests_end.py)."""
        candidates = [r for r in self.model.regs.values() if r.motion != "direct" and (
            (r.rule == "contested" and r.status == "in_review") or r.contestable)]
        if not candidates:
            return
        reg = candidates[index % len(candidates)]
        if reg.status == "rejected":
            self.contest_this(reg)
            if reg.rule != "contested" or reg.status != "in_review":
                return
        RECENT["appeal again: a contest open, the partner lets it go"] += 1
        rivals = list(reg.appealed)
        dispute = self.model.disputes.get(reg.dispute or "")
        if lose and dispute is not None and dispute.open:
            winner = next((m for m in dispute.members if m in rivals), None)
            if winner is not None:
                self.command(self.pipeline.commands.resolve(
                    ADMIN, dispute.id, ResolutionRequest(
                        outcome="award", registration_id=winner, note="the rival first")))
                self.settle()
        if self.model.regs[reg.id].status in ACTIVE:
            reg.withdrawn = True
            self.command(self.pipeline.commands.withdraw(Principal("partner", reg.partner),
                                                         reg.id))
            self.settle()
        again = self.submit(reg.spec, reg.partner, set(reg.products), reg.motion)
        self.settle()
        if again is None or again.status != "rejected":
            return
        RECENT["appeal again: re-registered and rejected, contesting"] += 1
        if set(again.beaten_by) & set(rivals):
            RECENT["appeal again: against the same rival registration"] += 1
        self.contest_this(again)

    @rule(spec=st.sampled_from(SALESFORCE), partner=st.sampled_from(PARTNERS),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def register_salesforce(self, spec: Contacted, partner: str, products: set[str]) -> None:
        """A customer by name and its Salesforce id, in its 15- or 18-character spelling
        (the suffix in either case), or a same-named look-alike whose id differs in the
        case of one letter (a different id: a different customer)."""
        reg = self.submit(spec, partner, products, "resell")
        self.settle()
        if reg is None or reg.key is None:
            return
        root = self.model.canonical(reg.key)
        same = [r for r in self.model.regs.values() if r.id != reg.id
                and r.spec.company_id == spec.company_id and r.spec in SALESFORCE]
        if any(r.spec.crm_account_id != spec.crm_account_id for r in same):
            RECENT["salesforce: another spelling of a registered id"] += 1
        twins = [r for r in self.model.regs.values()
                 if r.spec.company_id != spec.company_id and r.spec in SALESFORCE
                 and r.spec.name == spec.name]
        if twins:
            RECENT["salesforce: beside a look-alike whose id differs in case"] += 1
        for other in same:
            if other.key is not None and self.model.canonical(other.key) != root:
                self.violation(3, f"{spec.company_id}'s Salesforce id filed under two keys: "
                               f"{other.spec.crm_account_id} as {other.key}, "
                               f"{spec.crm_account_id} as {reg.key}")

    @rule(spec=st.sampled_from(CONTACTED), partner=st.sampled_from(PARTNERS),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def register_by_contact(self, spec: Contacted, partner: str, products: set[str]) -> None:
        """A customer named by a contact's free-mail address or by its page on a platform
        (invariant 3 holds: the provider's or the platform's domain never joins two
        companies)."""
        reg = self.submit(spec, partner, products, "resell")
        self.settle()
        if reg is None:
            return
        kind = "free mail" if "@" in spec.contact else "platform page"
        RECENT[f"{kind}: registered"] += 1
        others = [r for r in self.model.regs.values() if r.spec in CONTACTED
                  and r.spec.company_id != spec.company_id
                  and _provider(r.spec.contact) == _provider(spec.contact)]
        if others:
            RECENT[f"{kind}: another company at the same provider or platform"] += 1


def _provider(contact: str) -> str:
    return registrable_domain(contact.rpartition("@")[2] if "@" in contact else contact) or ""


class CustomerRules(Invariants):
    """The machine with the session-27 rules (DESIGN.md, invariants 3 and 18): its
    registrations are `CUSTOMERS`' (filed without a country, GUID CRM ids in either case,
    names spelled out), each filed with its partner's `external_ref` for the customer
    (`OPP-<partner>-<company>`: a partner's re-registration reuses it); rules add a rival
    filing the holder's reference, a CRM close by reference (invariant 18), a country-less
    filing of a known company and its GUID recased. A separate machine, so the others'
    derandomized runs stay the ones CI has always seen."""

    def reference_of(self, spec: Registration, partner: str) -> str | None:
        return f"OPP-{partner}-{spec.company_id}"

    @rule(spec=st.sampled_from(CUSTOMER_SPECS), partner=st.sampled_from(PARTNERS),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2),
          motion=st.sampled_from(("resell", "resell", "resell", "co_sell", "referral")))
    def register(self, spec: Registration, partner: str, products: set[str], motion: str
                 ) -> None:
        self.submit(spec, partner, products, motion)
        self.settle()

    @rule(spec=st.sampled_from(CUSTOMER_SPECS), rep=st.sampled_from(("rep-1", "rep-2")),
          kind=st.sampled_from(("opportunity", "opportunity", "named_account")),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def file_claim(self, spec: Registration, rep: str, kind: str, products: set[str]) -> None:
        self.claim(spec, rep, kind, products)

    def _rival(self, of: str, offset: int) -> str:
        start = PARTNERS.index(of) if of in PARTNERS else 0
        return PARTNERS[(start + offset) % len(PARTNERS)]

    @precondition(lambda self: any(r.ref for r in self.model.regs.values()))
    @rule(index=st.integers(0, 50), pick=st.integers(0, 5), partner=st.integers(1, 4),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2),
          then=st.sampled_from((None, "won", "lost")))
    def rival_copies_reference(self, index: int, pick: int, partner: int,
                               products: set[str], then: str | None) -> None:
        """A rival registers a customer someone holds (or held) under the holder's own
        reference (the CRM's opportunity id, copied); then, maybe, the CRM closes that
        opportunity by its reference: the close must not go to the rival while the holder
        may be the one, nor be refused while only one of them can be closed."""
        held = [r for r in self.model.regs.values() if r.ref and r.partner != DIRECT]
        holder = held[index % len(held)]
        same = specs_of(holder.company)
        rival = self._rival(holder.partner, partner)
        if self.submit(same[pick % len(same)], rival, products, "resell", ref=holder.ref):
            SESSION27[f"reference copied by a rival (holder {holder.status})"] += 1
        self.settle()
        if then is not None and holder.ref is not None:
            self.close_reference(holder.ref, then)

    @precondition(lambda self: any(r.ref for r in self.model.regs.values()))
    @rule(index=st.integers(0, 50), outcome=st.sampled_from(("won", "lost")))
    def close_by_reference(self, index: int, outcome: str) -> None:
        """The CRM reports a close by the opportunity's reference alone (invariant 18), of
        an opportunity some registration of it can still be closed for, if any."""
        regs = self.model.regs.values()
        refs = sorted({r.ref for r in regs if r.ref and r.status in CLOSABLE}) \
            or sorted({r.ref for r in regs if r.ref})
        self.close_reference(refs[index % len(refs)], outcome)

    def close_reference(self, ref: str, outcome: str) -> None:
        carrying = [r for r in self.model.regs.values() if r.ref == ref]
        expected = close_choice(carrying)
        can = expected is not None and expected.status in CLOSABLE
        if expected is not None and can:
            expected.closed = True  # an approval ending won / lost has its reason
        was = expected.status if expected is not None else None
        before = self.run(self.pipeline.eventlog.end_positions(self.pipeline.topics.intake))
        try:
            outcome_ = self.run(self.pipeline.commands.close(ADMIN, OpportunityClosedRequest(
                external_ref=ref, outcome=outcome)))  # type: ignore[arg-type]
        except Problem as problem:
            assert problem.status < 500, f"{problem.status} {problem.detail}"
            refused: int | None = problem.status
            closed = None
        else:
            refused, closed = None, outcome_.body.id
        after = self.run(self.pipeline.eventlog.end_positions(self.pipeline.topics.intake))
        shown = [(r.id, r.partner, r.status) for r in carrying]
        partners = len({r.partner for r in carrying})
        SESSION27[f"close by reference: {'refused ' + str(refused) if refused else 'closed'}"
                  f" ({len(carrying)} carrying it, {partners} partners)"] += 1
        if refused is not None:
            if before != after:
                self.violation(18, f"a close by {ref} refused {refused} appended to the "
                               f"log: {shown}")
            if can:
                self.violation(18, f"a close by {ref} refused {refused}; {expected.id} "
                               f"({was}) is the one it is about: {shown}")
        elif expected is None or closed != expected.id or not can:
            self.violation(18, f"a close by {ref} closed {closed}; the one it is about is "
                           f"{expected.id if can and expected else 'none (ambiguous)'}: {shown}")
        self.settle()
        if refused is None and expected is not None and can \
                and expected.status != outcome:
            self.violation(18, f"a close by {ref} of {expected.id} ({was}) accepted, and it "
                           f"is {expected.status}, not {outcome}")

    @precondition(lambda self: self.model.regs)
    @rule(index=st.integers(0, 50), partner=st.integers(0, 4),
          how=st.sampled_from(("domain", "domain", "crm", "name")),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def register_countryless(self, index: int, partner: int, how: str, products: set[str]
                             ) -> None:
        """A known company filed without a country: by one of its domains (with its CRM id
        when it has more than one, convention 2), by its CRM id alone, or by its name alone
        (no account: a 4xx, nothing appended)."""
        regs = [r for r in self.model.regs.values() if r.company in CUSTOMER_OF]
        if not regs:
            return
        known = regs[index % len(regs)]
        company = CUSTOMER_OF[known.company]
        spec = dataclasses.replace(
            known.spec, countryless=True, crm_recased=False,
            domain=company.domains[index % len(company.domains)] if how == "domain" else None,
            crm_account_id=(company.crm_account_id if how == "crm" or (
                how == "domain" and len(company.domains) > 1) else None))
        rival = self._rival(known.partner, partner)
        before = self.run(self.pipeline.eventlog.end_positions(self.pipeline.topics.intake))
        reg = self.submit(spec, rival, products, "resell")
        after = self.run(self.pipeline.eventlog.end_positions(self.pipeline.topics.intake))
        if how == "name" and (reg is not None or before != after):
            self.violation(3, f"{spec.name!r} filed by name alone without a country was "
                           f"accepted: {reg.key if reg else None}")
        self.settle()
        if reg is not None:
            SESSION27[f"country-less by {how}: {reg.status} ({reg.rule})"] += 1

    def trade_name_holder(self, index: int) -> Reg | None:
        """The approved partner registration `file_trade_name_again` and
        `reject_waiting_trade_name` add "dba <another company>" to; None when its name
        already has a trade name: "A dba B dba C" is a chain, one name naming no customer
        (normalize._MAX_NAME_FORMS, session 28; invariant 19, `SpellingRules.chain_squat`),
        so the filing would be approved `no_conflict` beside A's holders -- the rule, not a
        second owner of A. Skipped here (s30-inv1: invariant 1 reported a partner's chain
        beside its own "A dba B" as two owners of A)."""
        held = [r for r in self.model.regs.values()
                if r.status == "approved" and r.partner != DIRECT]
        holder = held[index % len(held)]
        if len(name_forms(normalize_name(holder.spec.name, holder.spec.country))) > 1:
            SESSION27["trade name on a trade name: skipped (a chain)"] += 1
            return None
        return holder

    @precondition(lambda self: any(r.status == "approved" and r.partner != DIRECT
                                   for r in self.model.regs.values()))
    @rule(index=st.integers(0, 50), other=st.integers(0, 50),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def file_trade_name_again(self, index: int, other: int, products: set[str]) -> None:
        """A partner holding a customer files it again as "<its name> dba <another
        company's name>" (a rival's customer, perhaps): rejected as its own duplicate, the
        filing adds no name to its customer's key (session 29, policy `match.rejected_names:
        unfiled`): no adjudicator partition has a name under that key it did not have."""
        holder = self.trade_name_holder(index)
        if holder is None:
            return
        named = [c for c in CUSTOMER_OF.values() if c.name != company_name(holder.company)]
        trade = named[other % len(named)].name
        spec = dataclasses.replace(holder.spec, name=f"{holder.spec.name} dba {trade}")
        states = self.pipeline.adjudicator.states.values
        before = {id(st_): st_.index.filed_names(holder.key or "") for st_ in states()}
        reg = self.submit(spec, holder.partner, set(holder.products) | products, "resell")
        self.settle()
        if reg is None or reg.status != "rejected" or reg.key is None:
            return
        SESSION27[f"trade name filed again: rejected ({reg.rule})"] += 1
        for state in states():
            was = before.get(id(state), ())
            now = state.index.filed_names(reg.key)
            added = {n for n, _ in now} - {n for n, _ in was}
            if reg.key == holder.key and added:
                self.violation(3, f"{reg.id} rejected ({reg.rule}) filed {sorted(added)} "
                               f"under {reg.key}")

    @precondition(lambda self: any(r.status == "approved" and r.partner != DIRECT
                                   for r in self.model.regs.values()))
    @rule(index=st.integers(0, 50), other=st.integers(0, 50), rival=st.integers(1, 4),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def reject_waiting_trade_name(self, index: int, other: int, rival: int,
                                  products: set[str]) -> None:
        """A rival files a holder's customer by name alone as "<its name> dba <another
        company's name>": weighed against the holder, it waits for a person, who rejects
        it (awards the review to another member). Like a filing rejected at its decision,
        it adds no name (session 30, `match.rejected_names: unfiled`): no adjudicator
        partition, nor the edge, nor the directory read model holds the trade name under
        its key (when no other filing of the model is filed there)."""
        holder = self.trade_name_holder(index)
        if holder is None:
            return
        named = [c for c in CUSTOMER_OF.values() if c.name != company_name(holder.company)]
        trade = named[other % len(named)].name
        partner = PARTNERS[(PARTNERS.index(holder.partner) + rival) % len(PARTNERS)] \
            if holder.partner in PARTNERS else PARTNERS[rival % len(PARTNERS)]
        spec = dataclasses.replace(holder.spec, name=f"{holder.spec.name} dba {trade}",
                                   domain=None, crm_account_id=None, countryless=False)
        reg = self.submit(spec, partner, products, "resell")
        self.settle()
        if reg is None or reg.status != "in_review" or reg.key is None:
            return
        disputes = [d for d in self.model.disputes.values() if d.open and reg.id in d.members]
        awarded = [m for d in disputes for m in d.members if m != reg.id]
        if not disputes or not awarded:
            return
        self.command(self.pipeline.commands.resolve(ADMIN, disputes[0].id,
                                                    ResolutionRequest.model_validate({
                                                        "outcome": "award",
                                                        "registration_id": awarded[0],
                                                        "note": "decided by the test"})))
        self.settle()
        if reg.status != "rejected" or self.model.keys[reg.key] != {reg.id}:
            return
        SESSION27["trade name rejected after review"] += 1
        mine = set(name_forms(normalize_name(spec.name, spec.country)))
        theirs = set(name_forms(normalize_name(holder.spec.name, spec.country)))
        new = {sort_name_tokens(f) for f in mine - theirs}
        for state in self.pipeline.adjudicator.states.values():
            held_there = {n for n, _ in state.index.filed_names(reg.key)} & new
            if held_there:
                self.violation(3, f"{reg.id} rejected after review left {sorted(held_there)} "
                               f"under {reg.key} in the adjudicator")
        edge = {n for n, _ in self.pipeline.commands.directory._index.filed_names(reg.key)}
        if edge & new:
            self.violation(3, f"{reg.id} rejected after review left {sorted(edge & new)} "
                           f"under {reg.key} at the edge")

        async def rows() -> set[str]:
            async with self.pipeline.runtime.engine.connect() as conn:
                # Filed as every look-up asks (`name_filed`): since session 30's
                # order-free directory a taken-back name keeps its row, its latest
                # filer named in `account_names_unfiled`.
                found = await conn.execute(select(account_names_table.c.name).where(
                    account_names_table.c.account_key == reg.key, name_filed()))
                return {sort_name_tokens(n) for (n,) in found}

        directory = self.run(rows()) & new
        if directory:
            self.violation(3, f"{reg.id} rejected after review left {sorted(directory)} "
                           f"under {reg.key} in the directory read model")

    @precondition(lambda self: any(r.spec in GUIDED for r in self.model.regs.values()))
    @rule(index=st.integers(0, 50), partner=st.integers(1, 4),
          case=st.sampled_from(("lower", "upper", "swap")), domain=st.booleans(),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def register_recased_guid(self, index: int, partner: int, case: str, domain: bool,
                              products: set[str]) -> None:
        """A rival files a known company by its GUID CRM id in another letter case (with a
        domain of it, or name and country only): the same customer (`any_case`)."""
        known = [r for r in self.model.regs.values() if r.spec in GUIDED]
        holder = known[index % len(known)]
        guid = CUSTOMER_OF[holder.company].crm_account_id
        typed = holder.spec.crm_account_id or guid
        recased = {"lower": typed.lower(), "upper": typed.upper(),
                   "swap": typed.swapcase()}[case]
        company = CUSTOMER_OF[holder.company]
        spec = dataclasses.replace(
            holder.spec, crm_account_id=recased, crm_recased=recased != guid,
            domain=company.domains[index % len(company.domains)] if domain else None)
        reg = self.submit(spec, self._rival(holder.partner, partner), products, "resell")
        self.settle()
        if reg is not None and holder.key is not None and reg.key is not None:
            same = self.model.canonical(reg.key) == self.model.canonical(holder.key)
            SESSION27[f"GUID recased: {'one key' if same else 'two keys'}, {reg.status}"] += 1
            if not same:
                self.violation(3, f"{holder.company}'s GUID filed under two keys: "
                               f"{holder.spec.crm_account_id} as {holder.key}, {recased} "
                               f"as {reg.key}")


SPELLINGS: Counter[str] = Counter()
"""How often each of the session-28 spelling rules fired in this process."""


class SpellingRules(Invariants):
    """The machine with the session-28 name and CRM-id rules (DESIGN.md, invariants 1, 3
    and 19): its registrations are `SPELLED`'s (the generator's conventions 8-11); a rival
    files a held company in a spelling drawn afresh (a home qualifier, "dba" with the
    trade name or the trade name alone, a trademark sign or full-width letters, the CRM id
    respelled), and a squatter files a chain "A dba B dba C" naming three companies of one
    country. Spellings of one customer must be one customer (one key where an identifier
    is shared; else met by name: invariant 1 holds), and a chain holds none of the
    companies it lists. A separate machine, so the others' derandomized runs stay the
    ones CI has always seen."""

    @rule(spec=st.sampled_from(SPELLED_SPECS), partner=st.sampled_from(PARTNERS),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2),
          motion=st.sampled_from(("resell", "resell", "resell", "co_sell", "referral")))
    def register(self, spec: Registration, partner: str, products: set[str], motion: str
                 ) -> None:
        self.submit(spec, partner, products, motion)
        self.settle()

    @rule(spec=st.sampled_from(SPELLED_SPECS), rep=st.sampled_from(("rep-1", "rep-2")),
          kind=st.sampled_from(("opportunity", "opportunity", "named_account")),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def file_claim(self, spec: Registration, rep: str, kind: str, products: set[str]) -> None:
        self.claim(spec, rep, kind, products)

    @precondition(lambda self: any(r.company in SPELLED_OF for r in self.model.regs.values()))
    @rule(index=st.integers(0, 50), pick=st.integers(0, 5), partner=st.integers(1, 4),
          how=st.sampled_from(("qualifier", "dba", "trade_name", "mark", "width", "crm",
                               "marker")),
          seed=st.integers(0, 2**16),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def respell_rival(self, index: int, pick: int, partner: int, how: str, seed: int,
                      products: set[str]) -> None:
        """A rival files a company someone filed, spelled `how` (the generator's
        conventions 8-12, drawn afresh; `marker`: "<legal> t/a <trade>" or "aka", session
        30): the same customer as every other spelling."""
        held = [r for r in self.model.regs.values() if r.company in SPELLED_OF]
        if how in ("dba", "trade_name", "marker"):  # a company the spelling exists for, if any held
            held = [r for r in held if SPELLED_OF[r.company].trade_name] or held
        holder = held[index % len(held)]
        company = SPELLED_OF[holder.company]
        same = specs_of(holder.company)
        base = same[pick % len(same)]
        rng = random.Random(seed)
        changes: dict[str, Any] = {}
        name = company.name if base.variant in ("typo", "spaced", "dba", "trade_name") \
            else base.name
        if how == "qualifier" and not base.countryless:
            changes.update(name=companies_mod._qualify(rng, name, base.country),
                           variant="qualifier", qualified=True)
        elif how in ("dba", "trade_name", "marker") and company.trade_name is not None:
            if how == "trade_name" and not base.name_only \
                    and holder.company not in NAMED_ONLY:
                changes.update(name=company.trade_name, variant="trade_name")
            else:
                legal, trade = name, company.trade_name
                if not base.countryless and rng.random() < 0.5:
                    if rng.random() < 0.5:
                        legal = companies_mod._qualify(rng, legal, base.country)
                    else:
                        trade = companies_mod._qualify(rng, trade, base.country)
                joiner = rng.choice(companies_mod.TRADE_MARKERS[base.country]
                                    if how == "marker" else companies_mod._DBA[base.country])
                changes.update(name=legal + joiner + trade, variant="dba")
        elif how == "mark":
            changes.update(name=companies_mod._mark(rng, name), marked=True)
        elif how == "width":
            changes.update(name=companies_mod._full_width(name), marked=True)
        elif how == "crm":
            spelled = companies_mod._respell_crm(rng, company.crm_account_id)
            # By the CRM id alone beside the name (no domain to join them): the spelling
            # decides (convention 2 keeps the CRM id of a company with several domains).
            changes.update(crm_account_id=spelled, crm_respelled=True,
                           domain=None if rng.random() < 0.5 else base.domain)
        if not changes:  # no trade name, or no country: a trademark sign then
            how = "mark"
            changes.update(name=companies_mod._mark(rng, name), marked=True)
        spec = dataclasses.replace(base, **changes)
        rival = PARTNERS[(PARTNERS.index(holder.partner) + partner) % len(PARTNERS)
                         ] if holder.partner in PARTNERS else PARTNERS[partner]
        reg = self.submit(spec, rival, products, "resell")
        self.settle()
        if reg is None:
            SPELLINGS[f"{how}: refused"] += 1
            return
        one = all(self.model.canonical(r.key or "") == self.model.canonical(reg.key or "")
                  for r in self.model.regs.values() if r.company == reg.company
                  and r.key is not None and reg.key is not None)
        SPELLINGS[f"{how}: {'one key' if one else 'two keys'}, {reg.status} ({reg.rule})"] += 1

    @rule(index=st.integers(0, 50), partner=st.integers(1, 4),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def foreign_qualified(self, index: int, partner: int, products: set[str]) -> None:
        """Session 30: a partner files a company's subsidiary in the company's country by
        the company's name with a qualifier naming another country ("Acme Robotics Corp
        (UK)" in the US: one customer, another than the US company), and a rival files
        that very spelling without a country (its own CRM id): one spelling of one
        customer, which must meet the holder (invariant 1). Read without a country, any
        country's qualifier is dropped; with one, another country's is part of the name:
        the two readings met only once a country-less query is weighed as each country
        reads its spelling (`countryless_readings`)."""
        company = SPELLED.companies[index % len(SPELLED.companies)]
        place = "USA" if company.country == "GB" else "UK"
        sub = f"sub-{company.id}-{place.lower()}"
        spec = SUBSIDIARY_SPECS.get(sub) or Registration(
            0, sub, PARTNERS[0], f"{company.name} ({place})", "qualifier", company.country,
            None, f"CRM-{sub}", ("analytics",), False)
        SUBSIDIARY_SPECS[sub] = spec
        holder = PARTNERS[index % len(PARTNERS)]
        rival = PARTNERS[(index + partner) % len(PARTNERS)]
        if holder == rival:
            return
        if self.submit(spec, holder, products, "resell") is None:
            return
        self.settle()
        reg = self.submit(dataclasses.replace(spec, countryless=True,
                                              crm_account_id=f"CRM-{sub}-{rival}"),
                          rival, products, "resell")
        self.settle()
        if reg is not None:
            SPELLINGS[f"foreign qualifier without a country: {reg.status} ({reg.rule})"] += 1

    @rule(index=st.integers(0, 50), partner=st.sampled_from(PARTNERS),
          products=st.sets(st.sampled_from(PRODUCTS), min_size=1, max_size=2))
    def chain_squat(self, index: int, partner: str, products: set[str]) -> None:
        """A squatter files one name-only registration "A dba B dba C" listing three
        companies of one country: a name has at most two forms, so it holds none of them
        (`check_chains`)."""
        by_country: dict[str, list[Any]] = defaultdict(list)
        for c in SPELLED.companies:  # companies of distinct names (not one name thrice)
            if all(name_similarity(normalize_name(c.name, c.country),
                                   normalize_name(o.name, o.country)) < 0.8
                   for o in by_country[c.country]):
                by_country[c.country].append(c)
        countries = sorted(k for k, v in by_country.items() if len(v) >= 3)
        if not countries:
            return
        country = countries[index % len(countries)]
        pool = by_country[country]
        start = index % len(pool)
        listed = [pool[(start + n) % len(pool)] for n in range(3)]
        cid = "chain-" + "-".join(sorted(c.id for c in listed))
        CHAINS[cid] = tuple(_SPELLED + c.id for c in listed)
        spec = Registration(0, cid, partner, " dba ".join(c.name for c in listed),
                            "canonical", country, None, None, ("analytics",), False)
        CHAIN_SPECS[cid] = spec
        if self.submit(spec, partner, products, "resell"):
            SPELLINGS["chain: filed"] += 1
        self.settle()

    @invariant()
    def spellings_are_one_customer(self) -> None:
        """Invariant 19: registrations of one company that share an identifier by the
        generator's truth (a domain, or its CRM id in whatever spelling), or that name it
        by name alone in its country (convention 3: an unambiguous name, in any of its
        conventions' spellings), are filed under one key (cluster)."""
        regs = [r for r in self.model.regs.values()
                if r.company in SPELLED_OF and r.key is not None]
        for i, a in enumerate(regs):
            for b in regs[i + 1:]:
                if a.company != b.company:
                    continue
                x, y = a.spec, b.spec
                shared = ((x.domain is not None and x.domain == y.domain)
                          or (x.crm_account_id is not None and y.crm_account_id is not None)
                          or (x.name_only and y.name_only))
                if shared and self.model.canonical(a.key or "") \
                        != self.model.canonical(b.key or ""):
                    self.violation(19, f"{company_name(a.company)} ({a.company}) filed "
                                   f"under two keys: {x.name!r} {x.domain} "
                                   f"{x.crm_account_id} as {a.key}, {y.name!r} {y.domain} "
                                   f"{y.crm_account_id} as {b.key}")
        self.report()

    @invariant()
    def check_chains(self) -> None:
        """Invariant 19's other half: a chain names no customer (no registration of a
        company it lists is weighed against it: drawn into one dispute with it, or
        rejected naming it)."""
        chains = {r.id: r for r in self.model.regs.values() if r.company in CHAINS}
        if not chains:
            return
        for d in self.model.disputes.values():
            members = [self.model.regs[m] for m in d.members if m in self.model.regs]
            for chain in (m for m in members if m.id in chains):
                for other in members:
                    if other.company in CHAINS[chain.company]:
                        self.violation(19, f"chain {chain.spec.name!r} ({chain.id}) "
                                       f"weighed against {other.spec.name!r} ({other.id}) "
                                       f"in {d.id} ({d.opened_as})")
        for reg in self.model.regs.values():
            for beaten in reg.beaten_by:
                chain = chains.get(beaten)
                if chain is not None and reg.company in CHAINS[chain.company]:
                    self.violation(19, f"{reg.spec.name!r} ({reg.id}) rejected by chain "
                                   f"{chain.spec.name!r} ({chain.id})")
        self.report()


class PromotionGap(Invariants):
    """The machine with session 30's promotion gap (DESIGN.md, "A promotion after an
    expiry waits for the unit"): an owner approved off the hour expires off the hour, its
    line is promoted on the next whole hour (`promotion_unit`, the default), and a rival
    registering the customer in between must queue behind the line (`check_gap`,
    `check_releases`). A separate machine, so the others' derandomized runs stay as
    they were (their clock moves by whole hours: no expiry of theirs is off the hour)."""

    @rule(minutes=st.sampled_from((10, 25, 40)))
    def minutes_pass(self, minutes: int) -> None:
        """The clock leaves the hour: what is approved next expires off it."""
        self.clock.advance(timedelta(minutes=minutes))
        self.settle()

    @rule(spec=st.sampled_from(SPECS), first=st.integers(0, 4), second=st.integers(1, 4),
          third=st.integers(1, 4), products=st.sets(st.sampled_from(PRODUCTS), min_size=1,
                                                  max_size=2),
          into=st.sampled_from((0.1, 0.5, 0.9)))
    def into_the_gap(self, spec: Registration, first: int, second: int, third: int,
                     products: set[str], into: float) -> None:
        """p registers off the hour and is approved; q, two days before p's expiry (within
        the release window), is rejected into its line; time passes to p's expiry and
        `into` of the way to the next hour; then r (a third partner, perhaps of a higher
        tier) registers the customer."""
        if self.clock.now.minute == 0:
            self.clock.advance(timedelta(minutes=25))
        a = PARTNERS[first % len(PARTNERS)]
        b = PARTNERS[(first + second) % len(PARTNERS)]
        c = PARTNERS[(first + second + third) % len(PARTNERS)]
        owner = self.submit(spec, a, products, "resell")
        self.settle()
        if owner is None or owner.status != "approved" or owner.protected_until is None:
            return
        self.clock.now = max(self.clock.now + timedelta(days=2),
                             owner.protected_until - timedelta(days=2))
        same = specs_of(spec.company_id)
        self.register(same[second % len(same)], b, products, "resell")
        end = owner.protected_until
        if owner.status != "approved" or end is None or end <= self.clock.now:
            return
        due = EPOCH_UTC + timedelta(microseconds=due_on(to_us(end), 3_600_000_000))
        if due == end:
            return
        self.clock.now = end + (due - end) * into
        self.settle()
        GAP["gap: the clock stopped between an expiry and the next hour"] += 1
        self.register(same[third % len(same)], c, products, "resell")


class TestPromotionGap(PromotionGap.TestCase):  # type: ignore[name-defined,misc]
    @classmethod
    def tearDownClass(cls) -> None:
        print("\nPromotionGap: the session-30 gap was exercised:")
        for name in sorted(GAP):
            print(f" - {name}: {GAP[name]}")
        GAP.clear()
        TestInvariants.tearDownClass()


class TestInvariants(Invariants.TestCase):  # type: ignore[name-defined,misc]
    @classmethod
    def tearDownClass(cls) -> None:
        if _COLLECT:
            print(f"\n{len(FOUND)} kinds of invariant violation found:")
            for text in FOUND.values():
                print(" -", text[:600])


TestInvariants.settings = settings(
    max_examples=int(os.environ.get("DEALREG_PROPERTY_EXAMPLES", "50")),
    stateful_step_count=30, deadline=None, derandomize=True, database=None,
    phases=tuple(Phase) if _SHRINK else (Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck), print_blob=False)


class TestRivalMoments(RivalMoments.TestCase):  # type: ignore[name-defined,misc]
    tearDownClass = TestInvariants.tearDownClass  # exploring: what it collected


TestRivalMoments.settings = settings(
    TestInvariants.settings,
    max_examples=int(os.environ.get("DEALREG_PROPERTY_EXAMPLES", "8")))


class TestMoreInvariants(MoreInvariants.TestCase):  # type: ignore[name-defined,misc]
    tearDownClass = TestInvariants.tearDownClass  # exploring: what it collected


TestPromotionGap.settings = settings(
    TestInvariants.settings,
    max_examples=int(os.environ.get("DEALREG_PROPERTY_EXAMPLES", "20")))


TestMoreInvariants.settings = settings(
    TestInvariants.settings,
    max_examples=int(os.environ.get("DEALREG_PROPERTY_EXAMPLES", "25")))


class TestRecentRules(RecentRules.TestCase):  # type: ignore[name-defined,misc]
    @classmethod
    def tearDownClass(cls) -> None:
        print_recent("RecentRules")


def print_recent(machine: str) -> None:
    """How often each session-23 rule fired (a rule that never fires checks nothing)."""
    print(f"\n{machine}: the session-23 rules fired:")
    for name in sorted(RECENT):
        print(f" - {name}: {RECENT[name]}")
    if _COLLECT:
        print(f"{len(FOUND)} kinds of invariant violation found:")
        for text in FOUND.values():
            print(" -", text[:600])
    RECENT.clear()


TestRecentRules.settings = settings(
    TestInvariants.settings,
    max_examples=int(os.environ.get("DEALREG_PROPERTY_EXAMPLES", "20")))


class TestCustomerRules(CustomerRules.TestCase):  # type: ignore[name-defined,misc]
    @classmethod
    def tearDownClass(cls) -> None:
        print("\nCustomerRules: the session-27 rules fired:")
        for name in sorted(SESSION27):
            print(f" - {name}: {SESSION27[name]}")
        print(f"workload {CUSTOMERS.summary()}")
        SESSION27.clear()
        TestInvariants.tearDownClass()


TestCustomerRules.settings = settings(
    TestInvariants.settings,
    max_examples=int(os.environ.get("DEALREG_PROPERTY_EXAMPLES", "12")))


class TestSpellingRules(SpellingRules.TestCase):  # type: ignore[name-defined,misc]
    @classmethod
    def tearDownClass(cls) -> None:
        print("\nSpellingRules: the session-28 spelling rules fired:")
        for name in sorted(SPELLINGS):
            print(f" - {name}: {SPELLINGS[name]}")
        print(f"workload {SPELLED.summary()}")
        SPELLINGS.clear()
        TestInvariants.tearDownClass()


TestSpellingRules.settings = settings(
    TestInvariants.settings,
    max_examples=int(os.environ.get("DEALREG_PROPERTY_EXAMPLES", "6")))


# --- the issue's observations, replayed through the same machine ---------------------------
# Deterministic step lists the random search may take long to hit: each must break no
# invariant (they fail while the defect they name is there).

def _replay(steps: Any) -> None:
    machine = Invariants()
    try:
        machine.partners()
        steps(machine)
        machine.invariants_hold()
    finally:
        machine.teardown()


def test_no_partner_reads_a_rivals_submission_finer_than_the_deadline_unit() -> None:
    """Invariant 20 on the session-29 case and the session-30 one: p-02 (silver) holds the
    customer; p-01 (gold) registers it 7 min 7 s later and beats the approval, so a dispute
    opens over both at p-01's moment (the holder reads it to the hour, session 30); p-04
    (platinum) registers it 23 min 23 s after that and joins the dispute late. Nobody acts:
    both levels (P2D, P3D) pass and the fallback settles it. The deadlines fall due on the
    hour (`escalation.deadline_unit` PT1H), so p-04's decision, its protection, its
    timeline and its dispute read no rival's moment. With `due_on` exact (the deadline at
    the SLA) p-04 read p-01's submission plus five days to the microsecond."""
    spec = SPECS[0]
    machine = RivalMoments()
    try:
        machine.partners()
        machine.register(spec, "p-02", {"analytics"}, "resell")
        machine.moment_passes(7)
        machine.register(spec, "p-01", {"analytics"}, "resell")
        machine.moment_passes(23)
        machine.register(spec, "p-04", {"analytics"}, "resell")
        _holder, opener, late = machine.model.regs.values()
        assert opener.dispute is not None and late.dispute == opener.dispute, (opener, late)
        machine.invariants_hold()
        machine.time_passes(24 * 8)
        assert not machine.model.disputes[opener.dispute].open
        machine.invariants_hold()
    finally:
        machine.teardown()


def test_a_joiner_under_a_unit_reads_no_rivals_submission_through_an_older_document() -> None:
    """Invariant 20 across a change of document (session 30): the short ladder without a
    unit is published (an upgraded deployment's older document), p-02 holds the customer,
    p-01 registers it 7 min 7 s later and a dispute opens at p-01's moment with exact
    deadlines; the short ladder with PT1H is published; p-04 registers it later and joins
    under it. Its join moves the pending deadline onto the hour, so the fallback's
    decision p-04 reads is on the hour. Before the rule the dispute kept the exact deadlines
    of its document and p-04 read p-01's submission plus both 6 h levels."""
    spec = SPECS[0]
    machine = RivalMoments()
    try:
        machine.partners()
        machine.unit_changes()
        assert machine.model.policies[max(machine.model.policies)] \
            .escalation.deadline_unit is None
        machine.register(spec, "p-02", {"analytics"}, "resell")
        machine.moment_passes(7)
        machine.register(spec, "p-01", {"analytics"}, "resell")
        machine.moment_passes(23)
        machine.unit_changes()
        machine.moment_passes(41)
        machine.register(spec, "p-04", {"analytics"}, "resell")
        _holder, opener, late = machine.model.regs.values()
        assert opener.dispute is not None and late.dispute == opener.dispute, (opener, late)
        machine.invariants_hold()
        machine.time_passes(30)
        assert not machine.model.disputes[opener.dispute].open
        machine.invariants_hold()
    finally:
        machine.teardown()


def test_no_partner_reads_when_a_rival_drew_its_approval_into_a_dispute() -> None:
    """Invariant 20 on the second session-30 case: p-01 holds the customer for
    analytics (gold), p-03 for crm, and p-02 (silver) beats p-03's approval (a dispute over
    those two); p-05 (gold) registers it for both 7 min 7 s later, ties with p-01 and beats
    p-02 and p-03, and joins their dispute with p-01's approval beside it. p-01 read its
    entry (the dispute's `opened_at`, its timeline) at p-05's moment when `entered_by`
    rounded openings alone."""
    spec = SPECS[0]
    machine = RivalMoments()
    try:
        machine.partners()
        machine.register(spec, "p-01", {"analytics"}, "resell")
        machine.register(spec, "p-03", {"crm"}, "resell")
        machine.register(spec, "p-02", {"crm"}, "resell")
        machine.register_a_moment_later(spec, 0, "p-05", 7, ("analytics", "crm"))
        holder, _approved_crm, tied, late = machine.model.regs.values()
        assert tied.dispute is not None and late.dispute == tied.dispute, (tied, late)
        assert holder.dispute == tied.dispute, holder
        machine.invariants_hold()
    finally:
        machine.teardown()


def _ids(machine: Invariants) -> list[str]:
    return list(machine.model.regs)


def test_an_award_keeps_the_approvals_that_never_conflicted_with_the_winner() -> None:
    spec = SPECS[0]

    def steps(m: Invariants) -> None:
        m.register(spec, "p-01", {"analytics"}, "resell")  # gold: approved {analytics}
        m.register(spec, "p-02", {"crm"}, "resell")  # silver: approved {crm}
        m.register(spec, "p-04", {"analytics", "crm"}, "resell")  # platinum: one dispute
        dispute = next(iter(m.model.disputes.values()))
        m.resolve(0, dispute.members.index(_ids(m)[0]), "award")  # award the {analytics} one

    _replay(steps)


def test_a_contest_after_the_winner_withdrew_opens_no_dispute_of_one() -> None:
    spec = SPECS[0]

    def steps(m: Invariants) -> None:
        m.register(spec, "p-04", {"analytics"}, "resell")  # platinum, approved
        m.time_passes(30)  # beyond the tie window
        m.register(spec, "p-01", {"analytics"}, "resell")  # rejected first_submitted
        m.withdraw(0)  # the winner lets go
        m.contest(0)  # the loser contests its rejection

    _replay(steps)


def test_an_exited_partner_never_wins_a_co_sell() -> None:
    spec = SPECS[0]

    def steps(m: Invariants) -> None:
        m.register(spec, "p-04", {"analytics"}, "resell")
        m.time_passes(30)
        m.register(spec, "p-01", {"analytics"}, "resell")  # rejected first_submitted
        m.partner_status("p-01", "exited")
        m.contest(0)
        if any(d.open for d in m.model.disputes.values()):
            m.resolve(0, 0, "co_sell")

    _replay(steps)


def test_a_rejection_is_contested_once_and_an_award_is_final() -> None:
    spec = SPECS[0]

    def steps(m: Invariants) -> None:
        m.register(spec, "p-04", {"analytics"}, "resell")
        m.time_passes(30)
        m.register(spec, "p-01", {"analytics"}, "resell")  # rejected first_submitted
        m.contest(0)
        dispute = next(d for d in m.model.disputes.values() if d.open)
        m.resolve(0, dispute.members.index(_ids(m)[0]), "award")  # the first one wins
        m.contest(0)  # and the loser contests the award

    _replay(steps)


def test_a_suspended_partner_gains_no_time() -> None:
    spec = SPECS[0]

    def steps(m: Invariants) -> None:
        m.register(spec, "p-01", {"analytics"}, "resell")
        for _ in range(11):
            m.time_passes(24 * 8)  # 88 days: inside the extension window
        m.partner_status("p-01", "suspended")
        m.extend(0)

    _replay(steps)


# --- invariants 12-16, reached on purpose ---------------------------------------------------
# The random runs seldom line these states up (a release with a line, a dispute holding a
# protection at its end, a copy going stale); each step list below does, and each breaks
# no invariant (mutating the rule it names makes the machine report it: README, "How we
# prove it").

HEUSER = next(r for r in SPECS if r.domain == "heuser-holdings.com")
HEUSER_BY_NAME = next(r for r in SPECS if r.company_id == HEUSER.company_id and r.name_only)
"""One customer under two keys on two partitions: `dom:heuser-holdings.com` and a name-only
key (under `match.name_only: review` only a possible duplicate of it)."""


def _member(m: Invariants, reg_index: int) -> int:
    dispute = next(d for d in m.model.disputes.values() if d.open)
    return dispute.members.index(_ids(m)[reg_index])


def test_a_withdrawn_registration_bars_only_its_own_partner_for_the_cooloff() -> None:
    spec = SPECS[0]

    def steps(m: Invariants) -> None:
        m.register(spec, "p-01", {"analytics"}, "resell")
        m.withdraw(0)
        m.reregister(0)  # p-01 again: rejected reregistration_cooloff
        m.register(spec, "p-02", {"analytics"}, "resell")  # another partner: free at once
        assert [r.rule for r in m.model.regs.values()] == [
            "no_conflict", "reregistration_cooloff", "no_conflict"]

    _replay(steps)


def test_a_release_promotes_the_line_in_precedence_order() -> None:
    spec = SPECS[0]

    def steps(m: Invariants) -> None:
        m.register(spec, "p-04", {"analytics"}, "resell")  # platinum owner
        m.time_passes(30)  # beyond the tie window
        m.register(spec, "p-02", {"analytics"}, "resell")  # silver: rejected first_submitted
        m.time_passes(7)  # within the tie window of the silver one
        m.register(spec, "p-01", {"analytics"}, "resell")  # gold: rejected first_submitted
        m.withdraw(0)  # the owner lets go: gold is ahead of silver (tier)
        _owner, silver, gold = m.model.regs.values()
        assert (gold.status, gold.rule, silver.status) == (
            "approved", "promoted_on_release", "rejected")

    _replay(steps)


def test_a_release_promotes_no_one_rejected_before_the_release_window() -> None:
    spec = SPECS[0]

    def steps(m: Invariants) -> None:
        m.register(spec, "p-04", {"analytics"}, "resell")
        m.time_passes(30)
        m.register(spec, "p-02", {"analytics"}, "resell")  # rejected first_submitted
        m.time_passes(24 * 31)  # release_window (30 days) has passed
        m.withdraw(0)
        assert m.model.regs[_ids(m)[1]].status == "rejected"

    _replay(steps)


def test_extensions_and_one_disputes_hold_bound_a_protection() -> None:
    spec = SPECS[0]

    def steps(m: Invariants) -> None:
        m.publish_policy("keep_open")  # disputes wait for a person: they hold at the end
        m.register(spec, "p-04", {"analytics"}, "resell")
        m.time_passes(30)
        m.register(spec, "p-01", {"analytics"}, "resell")  # rejected first_submitted
        m.contest(0)  # dispute 1 over the owner and p-01
        m.time_passes(24 * 92)  # the owner's end passes while dispute 1 is open: held
        m.resolve(0, _member(m, 0), "award")  # the owner keeps it: dispute_grace more
        m.register(spec, "p-02", {"analytics"}, "resell")  # rejected
        m.contest(1)  # dispute 2: it may not hold the protection again
        m.time_passes(24 * 31)  # past the grace: the owner's protection ends
        assert m.model.regs[_ids(m)[0]].status == "expired"
        m.register(SPECS[2], "p-03", {"crm"}, "resell")
        m.time_passes(24 * 11 * 8)  # 88 days: inside the extension window
        m.extend(3)
        m.time_passes(24 * 8)  # inside the window of the extended end: one extension only
        m.extend(3)
        assert m.model.regs[_ids(m)[-1]].extensions == 1

    _replay(steps)


def test_a_partner_note_naming_a_party_is_refused_and_a_neutral_one_passes() -> None:
    spec = SPECS[0]

    def steps(m: Invariants) -> None:
        m.register(spec, "p-04", {"analytics"}, "resell")
        m.time_passes(30)
        m.register(spec, "p-01", {"analytics"}, "resell")
        m.contest(0)
        for kind in ("partner_name", "partner_id", "crm"):
            m.resolve(0, _member(m, 0), "award", kind, shout=kind == "partner_name")
            assert any(d.open for d in m.model.disputes.values()), kind
        m.resolve(0, _member(m, 0), "award", "neutral")
        assert not any(d.open for d in m.model.disputes.values())

    _replay(steps)


def test_a_claim_on_another_partition_is_copied_and_its_decision_keyed_by_its_own_key(
        ) -> None:
    def steps(m: Invariants) -> None:
        m.file_claim(HEUSER, "rep-1", "named_account", {"crm"})
        m.register(HEUSER_BY_NAME, "p-04", {"crm", "security"}, "co_sell")  # possible dup
        assert m.model.regs[_ids(m)[1]].rule == "possible_duplicate"
        m.resolve(0, 0, "distinct")  # the claim's decision comes from the other partition

    _replay(steps)


def test_a_copy_of_a_withdrawn_registration_guards_no_longer() -> None:
    def steps(m: Invariants) -> None:
        m.register(HEUSER, "p-01", {"analytics"}, "resell")
        m.register(HEUSER_BY_NAME, "p-05", {"analytics"}, "resell")  # copy of p-01's made
        m.resolve(0, 0, "distinct")
        m.withdraw(0)  # p-01's ends on its own partition
        m.register(HEUSER_BY_NAME, "p-02", {"analytics"}, "resell")  # meets p-05, not p-01

    _replay(steps)


JONES = next(r for r in SPECS if r.domain == "jones-holdings.co.uk")
JONES_BY_NAME = next(r for r in SPECS if r.company_id == JONES.company_id and r.name_only)
"""One customer under two keys on two partitions, the name-only key's partition ahead of the
other's when the clock jumps (the order the CI run found)."""


def test_an_expired_claim_stays_expired_when_another_partition_keeps_its_copy() -> None:
    """A fallback on the domain key's partition kept the copy of the direct claim; its
    `approved` decision reached readers after the claim's own partition had expired it, and
    brought it back, approved past its end (invariant 15), with no expiry ever to follow."""

    def steps(m: Invariants) -> None:
        m.file_claim(JONES_BY_NAME, "rep-1", "opportunity", {"crm", "analytics"})  # 90 days
        m.publish_policy("short_ladder")  # 6 h levels: the review falls back on day 1
        m.register(JONES, "p-03", {"crm", "analytics"}, "resell")  # possible duplicate
        assert m.model.regs[_ids(m)[1]].rule == "possible_duplicate"
        m.time_passes(24 * 92)  # the claim expires, the fallback keeps both
        assert m.model.regs[_ids(m)[0]].status == "expired"

    _replay(steps)


def test_a_registration_another_partition_rejected_stays_rejected_when_its_own_expires_it(
        ) -> None:
    """A review on the name key's partition awarded the account to its own registration and
    rejected the copy of the domain key's approval; the domain key's partition never hears
    of that and expires the registration at its end: readers kept showing it rejected
    (the model), not expired (DESIGN.md, "The cross-key race"; invariant 8)."""

    def steps(m: Invariants) -> None:
        m.register(HEUSER, "p-01", {"analytics"}, "resell")
        m.register(HEUSER_BY_NAME, "p-05", {"analytics"}, "resell")  # possible duplicate
        m.resolve(0, _member(m, 1), "award")  # the copy of p-01's approval is rejected
        assert m.model.regs[_ids(m)[0]].status == "rejected"
        m.time_passes(24 * 92)  # its own partition expires it

    _replay(steps)


def test_a_split_giving_a_copy_a_share_moves_no_end_its_own_partition_keeps() -> None:
    """A review on the name key's partition split the account with the copy of a domain-key
    approval two days before its end; the split held the copy's protection two weeks past
    it, and the copy's own partition then expired it on its date: readers saw it end before
    the end they had been shown (invariant 2)."""

    def steps(m: Invariants) -> None:
        m.register(HEUSER, "p-01", {"analytics"}, "resell")
        for _ in range(11):
            m.time_passes(24 * 8)  # 88 days: two days of protection left
        m.register(HEUSER_BY_NAME, "p-05", {"analytics"}, "resell")  # possible duplicate
        m.resolve(0, _member(m, 0), "split")  # 60% to the copy of p-01's, 40% to p-05's
        assert m.model.regs[_ids(m)[0]].shared_by is not None
        m.time_passes(24 * 8)  # its own partition expires p-01's on its date

    _replay(steps)


def test_a_copy_guards_only_the_products_its_registration_still_holds() -> None:
    """An award by product left p-01's registration the CRM only; the edge reported it to
    the name key's partition with the products filed (analytics too), and that partition's
    copy kept the scope it was first reported with, so a newcomer there for analytics went
    to review against a registration that no longer held it."""

    def steps(m: Invariants) -> None:
        m.register(HEUSER, "p-01", {"analytics", "crm"}, "resell")  # gold, approved
        m.register(HEUSER_BY_NAME, "p-05", {"crm"}, "referral")  # copies p-01's there
        m.register(HEUSER, "p-04", {"analytics"}, "resell")  # platinum: a challenger
        x, _, z = _ids(m)
        dispute = next(d for d in m.model.disputes.values() if d.open)
        m.run(m.pipeline.commands.resolve(ADMIN, dispute.id, ResolutionRequest(
            outcome="award", note="by product", awards={"analytics": z, "crm": x})))
        m.settle()
        assert m.model.regs[x].scope == ("crm",)
        m.withdraw(2)  # p-04 lets analytics go
        m.register(HEUSER_BY_NAME, "p-02", {"analytics"}, "resell")
        assert m.model.regs[_ids(m)[-1]].rule == "no_conflict"

    _replay(steps)


def test_an_award_beside_a_possible_duplicate_leaves_the_customer_one_owner() -> None:
    """Rule 7 (session 22): p-02's name-only Jones and p-01's jones-holdings.co.uk (another
    partition: a copy, a possible duplicate) stood side by side after a person said
    `distinct`. p-04's jones-holdings.co.uk then outranks p-01 (tier) and is the name-only
    one's possible duplicate: that approval used to ride along as evidence only, so an
    award to p-04 rejected p-01 but left p-02 approved, two exclusive owners of one company
    and no person ever deciding between them (invariant 1). Now it is a member, flagged,
    and the award covers it."""

    def steps(m: Invariants) -> None:
        m.register(JONES_BY_NAME, "p-02", {"security"}, "resell")
        m.register(JONES, "p-01", {"security"}, "resell")  # possible duplicate: a review
        m.resolve(0, 0, "distinct")
        m.register(JONES, "p-04", {"security"}, "resell")  # beats p-01 by tier
        newcomer = _ids(m)[2]
        assert m.model.regs[newcomer].rule == "tier"
        dispute = next(d for d in m.model.disputes.values() if d.open)
        assert set(dispute.members) == set(_ids(m)) and dispute.reason == "challenger"
        m.resolve(0, dispute.members.index(newcomer), "award")
        assert [r.status for r in m.model.regs.values()] == ["rejected", "rejected",
                                                              "approved"]

    _replay(steps)


def test_a_fallback_elsewhere_never_grants_a_copy_its_own_partition_holds_in_review() -> None:
    """p-05 is in a tie with p-01 on the domain key's partition; the name key's possible-
    duplicate review fell back ("two customers, each keeps its own") and approved the copy
    of p-05 too: readers showed it approved beside p-01, which its own partition's tie
    fallback had preferred, and past its end, since no partition held it approved to expire
    it (invariant 15)."""

    def steps(m: Invariants) -> None:
        m.publish_policy("short_ladder")  # 6 h levels: both reviews fall back on day 1
        m.register(HEUSER, "p-01", {"analytics"}, "resell")
        m.register(HEUSER, "p-05", {"analytics"}, "resell")  # gold tie: in review
        m.register(HEUSER_BY_NAME, "p-02", {"analytics"}, "resell")  # possible duplicate
        m.time_passes(7)
        m.time_passes(7)  # both fall back
        assert m.model.regs[_ids(m)[1]].status == "rejected"
        m.time_passes(24 * 31)

    _replay(steps)


def test_an_award_elsewhere_to_a_copy_in_review_grants_it_nothing_and_takes_nothing() -> None:
    """Under keep_open p-05 waits in its tie with p-01 on the domain key's partition; the
    name key's review awarded p-05's copy. The copy was approved there (its own partition
    never expires what it holds in review: approved past its end), and p-01's approval
    was taken for it. Now the award only decides the name key's own member: p-02 loses,
    p-05 stays in review and p-01 keeps its approval."""

    def steps(m: Invariants) -> None:
        m.publish_policy("keep_open")
        m.register(HEUSER, "p-01", {"analytics"}, "resell")
        m.register(HEUSER, "p-05", {"analytics"}, "resell")  # gold tie: in review, kept open
        m.register(HEUSER_BY_NAME, "p-02", {"analytics"}, "resell")  # review with copies
        opened = [d for d in m.model.disputes.values() if d.open]
        m.resolve(len(opened) - 1, opened[-1].members.index(_ids(m)[1]), "award")
        assert [r.status for r in m.model.regs.values()] == [
            "approved", "in_review", "rejected"]
        m.time_passes(24 * 92)

    _replay(steps)


def test_a_close_frees_the_review_its_copy_held_on_another_partition() -> None:
    """A direct claim on the domain key went to review beside the copy of a name-key
    registration (only a possible duplicate: no link); the registration closed lost on its
    own partition, but the edge re-reported only to a linked key, so the review stayed open
    with one live party and the claim waited in it (invariant 5)."""

    def steps(m: Invariants) -> None:
        m.register(JONES_BY_NAME, "p-03", {"security"}, "resell")
        m.file_claim(JONES, "rep-1", "opportunity", {"security"})  # possible duplicate
        assert m.model.regs[_ids(m)[1]].status == "in_review"
        m.close(0, "lost")
        assert m.model.regs[_ids(m)[1]].status == "approved"

    _replay(steps)


def test_a_released_claim_frees_the_review_its_copy_held_on_another_partition() -> None:
    """A named-account claim's copy sat in a possible-duplicate review on the name key's
    partition; the rep released the claim, and the edge re-reported nothing, so the review
    waited on a released claim with one live party (invariant 5)."""

    def steps(m: Invariants) -> None:
        m.file_claim(HEUSER, "rep-1", "named_account", {"crm"})
        m.register(HEUSER_BY_NAME, "p-04", {"crm"}, "resell")  # possible duplicate
        claim, reg = _ids(m)
        assert m.model.regs[reg].status == "in_review"
        m.model.regs[claim].withdrawn = True
        m.command(m.pipeline.commands.release_claim(ADMIN, claim))
        m.settle()
        assert m.model.regs[reg].status == "approved"

    _replay(steps)


def test_a_fallback_beside_a_possible_duplicate_leaves_the_customer_one_owner() -> None:
    """The same collision left to the ladder: the fallback takes p-04 (tier) and, since the
    name-only Jones is a member weighed against p-04, takes it away too (rule 7). Left out,
    or spared as an unreviewed possible duplicate is, it stayed approved beside p-04."""

    def steps(m: Invariants) -> None:
        m.register(JONES_BY_NAME, "p-02", {"security"}, "resell")
        m.register(JONES, "p-01", {"security"}, "resell")
        m.resolve(0, 0, "distinct")
        m.register(JONES, "p-04", {"security"}, "resell")
        for _ in range(3):
            m.time_passes(24 * 8)  # past the last level: final_breach_fallback
        assert [(r.status, r.rule) for r in m.model.regs.values()] == [
            ("rejected", "final_breach_fallback"), ("rejected", "final_breach_fallback"),
            ("approved", "final_breach_fallback")]

    _replay(steps)


def test_an_award_never_keeps_a_member_whose_own_policy_claims_the_whole_account() -> None:
    """A dispute opened under `account_product`; a rival registers after `scope: account`
    was published and joins it (its own policy makes it overlap everyone). The award to the
    {analytics} member must take the whole-account member away too: weighed only under the
    dispute's policy, its {crm} looked clear and it was approved beside the winner."""
    spec = SPECS[0]

    def steps(m: Invariants) -> None:
        m.register(spec, "p-02", {"analytics"}, "resell")  # silver: approved {analytics}
        m.register(spec, "p-01", {"analytics", "crm"}, "resell")  # gold: one dispute (v1)
        m.publish_policy("scope_account")
        m.register(spec, "p-04", {"crm"}, "resell")  # platinum, whole account: joins it
        dispute = next(iter(m.model.disputes.values()))
        m.resolve(0, dispute.members.index(_ids(m)[0]), "award")  # award the {analytics} one
        assert m.model.regs[_ids(m)[2]].status == "rejected"

    _replay(steps)


def test_a_copy_keeps_the_whole_account_its_own_policy_gave_it() -> None:
    """p-04 holds Jones Holdings by domain under `scope: account`; the policy narrows back
    to `account_product`; p-05 registers it by name only, a key on another partition, where
    p-04's registration is a copy. Stamped with the report's policy, the copy looked like
    {analytics} alone and p-05's {crm} was approved beside it (found by the machines at 300
    examples): the report now says the copy holds the whole account (`whole_account`)."""
    jones = Registration(seq=5, company_id="co-00008", partner_id="p-01",
                         name="Jones Holdings Plc", variant="case", country="GB",
                         domain="jones-holdings.co.uk", crm_account_id="CRM-12-00008",
                         products=("security",), collision=True)
    by_name = Registration(seq=6, company_id="co-00008", partner_id="p-04",
                           name="jones holdings plc", variant="case", country="GB",
                           domain=None, crm_account_id=None, products=("security",),
                           collision=True)
    assert partition_for("dom:jones-holdings.co.uk", PARTITIONS) != partition_for(
        "name:GB:jones-holdings", PARTITIONS)

    def steps(m: Invariants) -> None:
        m.publish_policy("scope_account")
        m.register(jones, "p-04", {"analytics"}, "resell")  # the whole account
        m.publish_policy("default")  # account_product again
        m.register(by_name, "p-05", {"crm"}, "resell")
        assert m.model.regs[_ids(m)[-1]].status != "approved"

    _replay(steps)


# --- the session-23 rules, replayed through RecentRules ---------------------------------------

def _replay_recent(steps: Any) -> None:
    machine = RecentRules()
    try:
        machine.partners()
        steps(machine)
        machine.invariants_hold()
    finally:
        machine.teardown()


def test_racing_first_registrations_meet_in_one_cross_key_review_in_the_machine() -> None:
    """Two partners register one Faker customer by domain and by name + CRM id (keys on
    two partitions) through two registration processes, neither decided before the other
    is appended: both partitions approve, and the re-report that follows each decision
    brings them into one open `cross_key` review (exactly one)."""

    def steps(m: RecentRules) -> None:
        m.race(RACES[0], "p-01", 1, {"analytics"})
        a, b = m.model.regs.values()
        assert (a.status, b.status) == ("approved", "approved")
        assert partition_for(a.key or "", PARTITIONS) != partition_for(b.key or "",
                                                                       PARTITIONS)
        reviews = [d for d in m.model.disputes.values()
                   if d.open and d.reason == "cross_key"]
        assert [set(d.members) for d in reviews] == [{a.id, b.id}]

    _replay_recent(steps)


def test_a_party_racing_itself_across_partitions_opens_no_review_in_the_machine() -> None:
    """Found by `RecentRules` at 60 examples (session 28, failing on main before it): p-04
    wins a race by CRM id (its rival p-05 has exited), then races p-05 again by domain and
    wins there too. The re-report brought p-04's own CRM registration to the domain's
    partition, where a `cross_key` review opened between p-04 and itself: open with one
    live party (invariant 5). A party's own copy is never its rival
    (`links.rivals_of_copy`); p-04 holds both keys, as a party's own filings under two
    keys may (invariant 1's known limit)."""

    def steps(m: RecentRules) -> None:
        m.partner_status("p-05", "exited")
        m.race(RACES[0], "p-05", 4, {"analytics"})  # p-05 by domain, p-04 by CRM id
        m.race(RACES[0], "p-04", 1, {"analytics"})  # p-04 by domain, p-05 by CRM id
        mine = [r for r in m.model.regs.values() if r.partner == "p-04"]
        assert [r.status for r in mine] == ["approved", "approved"]
        assert [d.members for d in m.model.disputes.values() if d.open] == []

    _replay_recent(steps)


def test_a_race_without_the_re_report_leaves_two_owners_the_machine_reports() -> None:
    """The machine can fail: with no re-report run (the decisions wake no re-reporter),
    the race leaves two exclusive owners and nobody reviewing them, and invariant 1 says
    so."""
    m = RecentRules()
    try:
        m.partners()
        m.pipeline.follow_ups = False
        m.race(RACES[0], "p-01", 1, {"analytics"})
        m.one_exclusive_owner_per_customer_and_scope()
        found, m.model.violations = m.model.violations, []
        assert len(found) == 1 and found[0].startswith("invariant 1: race-0"), found
    finally:
        m.teardown()


def test_a_salesforce_id_is_one_customer_in_either_spelling_and_a_case_twin_another(
        ) -> None:
    """The 15, 18 and lower-suffixed 18 spellings are one customer (one key, a tie); the
    case twin is another customer, never on that key. Until session 26 the twin was
    approved beside the holder unseen; the rival review showed any other CRM id on a name
    held with a CRM id and no domain walked past that way, so the twin (the same name, no
    domains to compare) now goes to a person as a `possible_duplicate`."""
    sf15, sf18, sf18_lower, twin = SALESFORCE[:4]
    assert len(sf15.crm_account_id or "") == 15 and len(sf18.crm_account_id or "") == 18

    def steps(m: RecentRules) -> None:
        m.register_salesforce(sf15, "p-01", {"analytics"})
        m.register_salesforce(sf18, "p-02", {"analytics"})
        m.register_salesforce(sf18_lower, "p-03", {"analytics"})
        m.register_salesforce(twin, "p-05", {"analytics"})
        first, second, third, other = m.model.regs.values()
        assert first.key == second.key == third.key != other.key
        assert (first.status, other.status) == ("approved", "in_review")
        assert other.rule == "possible_duplicate", other.rule
        assert second.status != "approved" and third.status != "approved"

    _replay_recent(steps)


def test_companies_reached_at_one_free_mail_provider_or_platform_stay_apart() -> None:
    def steps(m: RecentRules) -> None:
        for spec, partner in zip(CONTACTED, PARTNERS * 3, strict=False):
            m.register_by_contact(spec, partner, {"analytics"})
        regs = list(m.model.regs.values())
        assert len({r.key for r in regs}) == len(regs) == len(CONTACTED)
        assert all(r.status == "approved" and r.rule == "no_conflict" for r in regs)

    _replay_recent(steps)


def test_a_contest_is_one_appeal_per_rival_registration_in_the_machine() -> None:
    """Withdraw the contested registration, register again, contest again: refused (one
    appeal against the same rival registration); the machine's checks hold throughout."""
    spec = SPECS[0]

    def steps(m: RecentRules) -> None:
        m.register(spec, "p-04", {"analytics"}, "resell")  # platinum owner
        m.time_passes(30)  # beyond the tie window
        m.register(spec, "p-01", {"analytics"}, "resell")  # rejected first_submitted
        m.appeal_again(1, lose=False)  # contest, withdraw, register again, contest
        owner, first, again = m.model.regs.values()
        assert first.status == "withdrawn" and again.status == "rejected"
        assert again.beaten_by == (owner.id,)
        assert [d.members for d in m.model.disputes.values() if d.open] == []
        assert RECENT["appeal refused: contested that rival before"] >= 1

    _replay_recent(steps)


def test_a_contest_is_one_appeal_against_a_rival_it_met_as_a_copy_elsewhere() -> None:
    """Found by `RecentRules` at 100 examples (failing on the older main too): a partner
    lost to the copy of a rival's registration on another partition (its customer's CRM
    key), contested, and a person awarded the rival; it registered the customer again,
    now filed under the rival's own key (its domain), lost to the same registration there
    and contested again: a fresh level-1 dispute against the rival a person had just heard
    it against (invariant 9), since that partition's appeal memory (the rival's line)
    never saw the first contest. The contest's review now tells the rival's own partition
    (`CopiesInReview.appealed`), which refuses the second appeal."""
    domain, crm = RACES[0]

    def steps(m: RecentRules) -> None:
        m.race(RACES[0], "p-04", 3, {"security"})  # p-04 by domain, p-02 by CRM id: a review
        m.register(crm, "p-01", {"security"}, "resell")  # loses to p-04's copy (tier)
        owner, _, first = m.model.regs.values()
        assert first.status == "rejected" and first.beaten_by == (owner.id,)
        assert first.key != owner.key
        contestable = [r for r in m.model.regs.values() if r.contestable]
        m.appeal_again(contestable.index(first), lose=True)  # contest; the rival is awarded
        assert first.status == "rejected" and owner.status == "approved"
        m.register(domain, "p-01", {"security"}, "resell")  # on the owner's own key now
        again = list(m.model.regs.values())[-1]
        assert again.key == owner.key and again.beaten_by == (owner.id,)
        refused = RECENT["appeal refused: contested that rival before"]
        m.contest_this(again)
        assert again.status == "rejected" and again.rule == "tier"
        assert RECENT["appeal refused: contested that rival before"] == refused + 1
        assert [d.id for d in m.model.disputes.values() if d.open] == []

    _replay_recent(steps)


def test_a_contest_is_one_appeal_for_the_rival_s_whole_protection() -> None:
    """The appeal memory was the contested registration's: forgotten one protection period
    of *its own* policy after it ended. A partner rejected under a 30-day policy beside a
    rival approved under the 90-day default contested, lost before a person, and 31 days
    later registered again and contested the same rival in the same grant: a fresh level-1
    dispute (invariant 9, `check_appeal`: one appeal per rival protection). The appeal is
    now remembered beside the rival for its grant (`state.appealed`)."""
    spec = SPECS[0]

    def steps(m: RecentRules) -> None:
        m.register(spec, "p-04", {"analytics"}, "resell")  # default policy: 90 days
        m.publish_policy("short_ladder")  # 30 days from now on
        m.time_passes(30)
        m.register(spec, "p-01", {"analytics"}, "resell")  # rejected first_submitted
        owner, first = m.model.regs.values()
        assert first.contestable and m.policy_of(first).protection_period == timedelta(days=30)
        m.contest_this(first)
        dispute = next(d for d in m.model.disputes.values() if d.open)
        m.resolve(0, dispute.members.index(owner.id), "award")
        assert owner.status == "approved" and first.status == "rejected"
        m.time_passes(24 * 31)  # the first one is forgotten; the rival's grant is not over
        m.register(spec, "p-01", {"analytics"}, "resell")
        again = list(m.model.regs.values())[-1]
        assert again.status == "rejected" and again.beaten_by == (owner.id,)
        refused = RECENT["appeal refused: contested that rival before"]
        m.contest_this(again)
        assert again.status == "rejected" and again.rule == "first_submitted"
        assert RECENT["appeal refused: contested that rival before"] == refused + 1

    _replay_recent(steps)


def test_a_person_settles_the_cross_key_review_a_race_opened() -> None:
    """Found by `RecentRules` at 300 examples: the re-report's review was opened on the
    canonical key's partition but under the copy's key (the other partition), so the edge
    sent the person's acknowledgement and resolution, and the review's own timers, to a
    partition that had no such dispute (`unknown_dispute`). Nobody could settle it; the
    ladder's fallback did, late, and once the copy's registration had withdrawn it
    rejected the one live approval (invariant 2). The review is now keyed by the
    partition's own registration."""

    def steps(m: RecentRules) -> None:
        m.race(RACES[0], "p-01", 1, {"analytics"})
        a, b = m.model.regs.values()
        review = next(d for d in m.model.disputes.values() if d.open)
        m.acknowledge(0)
        m.resolve(0, review.members.index(a.id), "award")
        assert not review.open and (a.status, b.status) == ("approved", "rejected")

    _replay_recent(steps)


def test_a_race_review_never_rejects_the_approval_left_when_the_copy_withdrew() -> None:
    """The same review left to its ladder: the copy's registration withdraws after the
    deadlines passed; the review has one live party and ends without taking the remaining
    approval away."""

    def steps(m: RecentRules) -> None:
        m.race(RACES[0], "p-01", 1, {"analytics"})
        m.time_passes(24 * 8)  # both levels' deadlines passed
        for reg in list(m.model.regs.values()):
            if reg.status == "approved":
                m.withdraw(list(m.model.regs).index(reg.id))
                break

    _replay_recent(steps)


def test_a_race_review_left_to_its_ladder_through_a_long_jump_keeps_one_owner() -> None:
    """Found by `RecentRules` at 300 examples, a checker artefact: 92 days pass at once;
    the review's fallback (its deadline on day 5) approves the copy of one side and
    rejects the other, and the copy's own partition expires it on day 90, in one step.
    The model folded the expiry first and found the fallback had no winner; it now counts
    a winner that expired within the step folded."""

    def steps(m: RecentRules) -> None:
        m.race(RACES[0], "p-01", 1, {"analytics"})
        m.time_passes(24 * 92)
        assert {r.status for r in m.model.regs.values()} == {"rejected", "expired"}

    _replay_recent(steps)


def test_evidence_across_a_name_link_says_it_matched_by_name() -> None:
    """Invariant 6, open since session 24 (the machine counted it as a "known limit"):
    keys linked only by a name (a race between `dom:` and a name + CRM-id `crm:` key of
    one Faker customer, linked by the race review's report) are one customer by that
    name. The settlement's decision about each side named the other side "matched by"
    the decided one's own key form (`domain` for the `dom:` side, `crm_account_id` for
    the `crm:` one), identifiers the other side never had: each opened its own key, so it
    is the other's customer only through the link, by name. The machine's check now
    holds with no exemption, also for the newcomers after it (explanation only: the same
    decisions)."""

    def steps(m: RecentRules) -> None:
        m.race(RACES[0], "p-01", 1, {"analytics"})
        first, second = list(m.model.regs)
        m.register(RACES[0][1], "p-03", {"analytics"}, "resell")  # crm key: rejected
        review = next(d for d in m.model.disputes.values() if d.open)
        m.resolve(0, 0, "award")
        m.register(RACES[0][0], "p-04", {"analytics"}, "resell")  # dom key: in review
        assert not review.open
        said: dict[tuple[str, str], str] = {}
        logged = m.run(m.pipeline.all_records(m.pipeline.topics.decisions))
        for records in logged.values():
            for record in records:
                _, decision = decode(record.value)
                if isinstance(decision, RegistrationDecided) \
                        and decision.dispute_id == review.id \
                        and decision.rule == "dispute_resolution":
                    for c in decision.conflicts:
                        said[(decision.registration_id, c.registration_id or "")] = \
                            c.matched_by
        assert said == {(first, second): "name", (second, first): "name"}

    _replay_recent(steps)


def test_evidence_about_a_key_s_opener_names_what_it_shares_not_a_later_member_s_crm_id(
) -> None:
    """Invariant 6, open since session 25 (`TestInvariants`' derandomized run under a
    finer model: `reg 17 says matched_by crm with reg 12: None vs ['CRM-12-00003']`).
    Wells International by its domain only (p-05) opens `dom:wells-international3.com`;
    p-04 joins it by that domain, bringing the CRM id; p-01 joins by the CRM id (the
    strongest match under the key). p-01 contests, and the award's decision about p-05
    named p-01 `matched_by crm_account_id`: for an opener the evidence was the member's
    own match, an identifier p-05 never had. It now says what the opener shares with its
    key's customer: how the key's first joiner matched it (`state.opener_shares`), the
    domain."""
    wells, wells_crm = SPECS[9], SPECS[2]
    assert wells.crm_account_id is None and wells_crm.domain == wells.domain

    def steps(m: Invariants) -> None:
        m.register(wells, "p-05", {"analytics"}, "resell")  # opens the dom: key
        m.register(SPECS[0], "p-04", {"analytics"}, "resell")  # by domain: tier review
        m.register(wells_crm, "p-01", {"analytics"}, "resell")  # by CRM id: rejected
        opener, _, late = _ids(m)
        m.contest(2)
        m.resolve(0, 1, "award")  # p-05 keeps it
        assert m.model.regs[opener].status == "approved"
        said = [c.matched_by for records in m.run(m.pipeline.all_records(
                    m.pipeline.topics.decisions)).values()
                for record in records for _, d in [decode(record.value)]
                if isinstance(d, RegistrationDecided) and d.registration_id == opener
                and d.rule == "dispute_resolution"
                for c in d.conflicts if c.registration_id == late]
        assert said == ["domain"]

    _replay(steps)


def test_a_claim_s_line_steps_up_once_the_review_elsewhere_freed_it() -> None:
    """A model artefact, session 26 (`MoreInvariants` at 200 examples, reduced): rep-2's
    claim on Heuser by name (B) is approved by a possible-duplicate review's fallback,
    p-03's registration there is rejected in its line; p-05 registers Heuser by domain
    again (A) and meets the claim's copy in a possible-duplicate review, which a person
    rejects all. Nothing stands on the claim's scope: its line steps up (p-03 promoted,
    `line_free`). The base machines' coarse model (any review that ever drew the copy
    holds the line back) flagged the promotion; every machine now checks the finer rule
    `ElsewhereInvariants` had (`Invariants.held_back`)."""

    def steps(m: Invariants) -> None:
        m.file_claim(HEUSER_BY_NAME, "rep-2", "opportunity", {"crm", "analytics"})
        m.register_rival(34, 0, 4, {"security", "analytics"})
        m.withdraw(15)
        m.time_passes(2208)
        m.register_rival(29, 0, 1, {"analytics"})
        m.file_claim(HEUSER_BY_NAME, "rep-2", "opportunity", {"crm", "analytics"})
        m.time_passes(2208)
        m.register_rival(45, 5, 3, {"crm", "analytics"})
        claim, line = _ids(m)[-2:]
        m.reregister(6)
        m.resolve(6, 6, "reject_all")
        assert (m.model.regs[claim].status, m.model.regs[line].rule) == (
            "rejected", "promoted_on_release")

    _replay(steps)


def test_a_person_settles_the_possible_duplicate_review_a_race_opened() -> None:
    """Session 25 rival, the race-review key fix's sibling: a name-only registration
    (p-02, `name:DE:heuser-holdings`) racing an identified one (p-01, `dom:`, another
    partition) through two registration processes meets it in the `possible_duplicate`
    review the post-decision re-report opens on the smaller key's partition
    (`links._review_decided_duplicates`). That review was keyed by the copy's key, the
    other partition: the edge sent the person's acknowledgement and resolution, and the
    review's timers, there (`unknown_dispute`), so nobody could settle it and on a quiet
    partition its fallback never came. It is now keyed by the partition's own
    registration, like the cross-key review."""

    def steps(m: RecentRules) -> None:
        edge = m.run(m.pipeline.other_edge())
        try:
            a = m.submit(HEUSER, "p-01", {"analytics"}, "resell")
            b = m.submit(HEUSER_BY_NAME, "p-02", {"analytics"}, "resell", edge=edge)
            m.settle()
        finally:
            m.run(m.pipeline.drop_edge(edge))
        assert a is not None and b is not None
        review = next(d for d in m.model.disputes.values() if d.open)
        assert (review.reason, set(review.members)) == ("possible_duplicate", {a.id, b.id})
        m.acknowledge(0)
        m.resolve(0, review.members.index(a.id), "award")
        assert not review.open and (a.status, b.status) == ("approved", "rejected")

    _replay_recent(steps)


def test_a_possible_duplicate_review_a_race_opened_reaches_its_fallback() -> None:
    """The same review left alone: its ladder's deadlines fire on its own partition (they
    were routed to the copy's partition, which has no such dispute) and the fallback
    settles it as two customers, as it settles any unreviewed possible duplicate."""

    def steps(m: RecentRules) -> None:
        edge = m.run(m.pipeline.other_edge())
        try:
            m.submit(HEUSER, "p-01", {"analytics"}, "resell")
            m.submit(HEUSER_BY_NAME, "p-02", {"analytics"}, "resell", edge=edge)
            m.settle()
        finally:
            m.run(m.pipeline.drop_edge(edge))
        review = next(d for d in m.model.disputes.values() if d.open)
        for _ in range(3):
            m.time_passes(24 * 8)  # every level's deadline passed; nothing else happens
        assert not review.open and review.outcome == "final_breach_fallback"

    _replay_recent(steps)


def test_a_name_only_possible_duplicate_settled_stays_a_possible_duplicate_in_evidence(
) -> None:
    """Invariant 6 between unlinked keys (session 27): a name-only Jones Holdings beside
    the one registered by its domain goes to a person (`match.name_only: review`: the edge
    files it under its own `name:` key, on another partition, nothing linked; the review
    holds a copy). The award's decisions named each other `matched_by: name`,
    confident -- one customer, which no fact says. A copy's key is filed on its own
    partition, so `outcomes.unlinked_match` names it as before (`UNFILED`) but not
    confident."""
    named = next(s for s in SPECS if s.name_only and any(
        o.company_id == s.company_id and o.domain and not o.name_only for o in SPECS))
    dom = next(o for o in SPECS if o.company_id == named.company_id and o.domain
               and not o.name_only)

    def steps(m: Invariants) -> None:
        m.register(dom, "p-01", {"analytics"}, "resell")
        m.register(named, "p-02", {"analytics"}, "resell")
        first, second = (m.model.regs[r] for r in _ids(m))
        assert first.key != second.key and second.status == "in_review", (first, second)
        m.resolve(0, 0, "award")
        said = set()
        logged = m.run(m.pipeline.all_records(m.pipeline.topics.decisions))
        for records in logged.values():
            for record in records:
                _, decision = decode(record.value)
                if isinstance(decision, RegistrationDecided) \
                        and decision.rule == "dispute_resolution":
                    said |= {(decision.registration_id, c.matched_by, c.confident)
                             for c in decision.conflicts}
        assert said == {(first.id, "name", False), (second.id, "name", False)}, (
            said, first.key, second.key, partition_for(first.key or "", PARTITIONS),
            partition_for(second.key or "", PARTITIONS))

    _replay(steps)


def _replay_customers(steps: Any) -> None:
    machine = CustomerRules()
    try:
        machine.partners()
        steps(machine)
        machine.invariants_hold()
    finally:
        machine.teardown()


def test_a_crm_close_by_reference_skips_a_rival_s_copy_of_it_in_the_machine() -> None:
    """Invariant 18 in the machine: a rival files the holder's customer under the holder's
    reference (rejected, it holds nothing); the CRM's close by that reference ends the
    holder's registration, won; then a second copy, now that nothing can be closed under
    the reference but the rival's rejected ones, is refused with nothing appended."""
    spec = next(s for s in CUSTOMER_SPECS if s.domain and s.countryless)

    def steps(m: CustomerRules) -> None:
        m.register(spec, "p-04", {"analytics"}, "resell")
        m.time_passes(7)  # beyond the tie window: the rival is rejected first_submitted
        m.rival_copies_reference(0, 0, 1, {"analytics"}, "won")
        holder, rival = list(m.model.regs.values())
        assert (holder.status, rival.status, rival.ref) == ("won", "rejected", holder.ref)
        m.close_by_reference(0, "lost")  # nothing closable: refused, nothing appended
        assert holder.status == "won"

    _replay_customers(steps)


def test_a_country_less_filing_and_a_recased_guid_are_the_known_customer_in_the_machine(
) -> None:
    """Invariant 3 in the machine: a company keyed in the CRM by a GUID, filed by a rival
    without a country by that GUID in lower case, and by another with the GUID swapped in
    case and no domain, is one key; by its name alone without a country, no account."""
    spec = next(s for s in GUIDED if s.domain and not s.crm_recased)

    def steps(m: CustomerRules) -> None:
        m.register(spec, "p-01", {"analytics"}, "resell")
        m.register_countryless(0, 1, "crm", {"analytics"})
        m.register_recased_guid(0, 2, "swap", False, {"analytics"})
        m.register_countryless(0, 3, "name", {"analytics"})
        keys = {m.model.canonical(r.key or "") for r in m.model.regs.values()}
        assert len(m.model.regs) == 3 and len(keys) == 1, keys
        assert [r.status for r in m.model.regs.values()][1:] == ["rejected", "rejected"]

    _replay_customers(steps)


@pytest.mark.parametrize(("countryless", "restart"),
                         [("hold", True), ("ask", True), ("ask", False)])
def test_a_name_filed_without_a_country_is_weighed_after_a_restart_in_the_machine(
        countryless: str, restart: bool) -> None:
    """Found by `CustomerRules` (session 28): the projections filed a name in the directory
    read model only with a country, so a registration service re-warmed from it (a
    restart, or a distributed process) forgot a name filed without one. A partner filed
    "Wells International LLC" without a country by its GUID; after a restart a rival's
    filing of the same name with a country and a domain was approved `no_conflict`
    beside it, unseen (without the restart: a possible duplicate, sent to a person).
    Session 29: that holds under a policy saying `match.countryless_names: hold` (as every
    document from before the option reads); under `ask`, the default, the name asks but
    does not hold, so the rival giving a country is approved `no_conflict` -- after a
    restart as without one -- and invariant 1's oracle counts no second owner
    (`asks_only`)."""
    spec = next(s for s in CUSTOMER_SPECS if s.seq == 17)
    bare = dataclasses.replace(spec, countryless=True, domain=None,
                               crm_account_id=CUSTOMER_OF[spec.company_id].crm_account_id)

    def steps(m: CustomerRules) -> None:
        if countryless == "hold":
            published = m.run(m.pipeline.commands.reference.publish(
                Policy(match=MatchPolicy(countryless_names="hold")), published_by="test"))
            m.model.policies[published.policy.version] = published.policy
        m.register(bare, "p-03", {"analytics"}, "resell")
        if restart:
            m.restart()
        m.register(spec, "p-05", {"analytics"}, "resell")
        first, rival = list(m.model.regs.values())
        assert first.status == "approved", first
        assert (rival.status, rival.rule) == (
            ("in_review", "possible_duplicate") if countryless == "hold"
            else ("approved", "no_conflict")), rival

    _replay_customers(steps)


def _replay_spellings(steps: Any) -> None:
    machine = SpellingRules()
    try:
        machine.partners()
        steps(machine)
        machine.invariants_hold()
        machine.spellings_are_one_customer()
        machine.check_chains()
    finally:
        machine.teardown()


def test_a_countryless_rival_meets_a_foreign_qualified_holder_in_the_machine() -> None:
    """Invariant 1, found by `SpellingRules.foreign_qualified` on the code before session
    30's fix: a company's subsidiary filed in the company's country as "<name> (UK)" and
    the same spelling filed without a country by a rival (another CRM id) were both
    approved `no_conflict` -- "<name> uk" there, "<name>" here, about 0.7 apart."""

    def steps(m: SpellingRules) -> None:
        m.foreign_qualified(0, 1, {"analytics"})
        holder, rival = (r for r in m.model.regs.values() if r.company in SUBSIDIARY_SPECS)
        assert holder.status == "approved", holder
        assert rival.status != "approved", rival

    _replay_spellings(steps)


def test_a_dash_qualifier_before_a_trade_name_is_the_holder_s_customer_in_the_machine(
) -> None:
    """Invariants 1 and 19, found in session 29 with `SpellingRules`' spellings: p-01 holds
    "Heuser Holdings Ag" (DE) by name alone; p-04 files "Heuser Holdings AG - DACH dba
    Humphrey Cloud", the same company with a home region on its legal name and its trade
    name. The dash qualifier was dropped only at the end of the whole name, so the legal
    name stayed "heuser holdings ag dach", another customer: both approved `no_conflict`,
    two owners of one company (a bracketed "(DACH)" was read as home)."""
    holder = next(s for s in SPELLED_SPECS if s.seq == 19)
    rival = dataclasses.replace(holder, name="Heuser Holdings AG - DACH dba Humphrey Cloud",
                                variant="dba", qualified=True)

    def steps(m: SpellingRules) -> None:
        m.register(holder, "p-01", {"analytics"}, "resell")
        m.register(rival, "p-04", {"analytics"}, "resell")
        first, second = m.model.regs.values()
        assert first.status == "approved" and second.status != "approved", (first, second)
        assert first.key == second.key, (first.key, second.key)

    _replay_spellings(steps)


def test_a_crm_id_in_braces_or_full_width_is_the_holder_s_customer_in_the_machine() -> None:
    """Invariant 19, found in session 29 with `SpellingRules`' spellings: a rival files a
    held company by its CRM id alone (name and country beside it), a Salesforce id typed in
    full width, or a GUID in braces (as Dynamics 365's `getId()` gives it). Each was another
    CRM id under `match.crm_ids: any_spelling`: a new key, the rival only a name's possible
    duplicate of the holder, where the id makes it the holder's customer."""
    by_sf = next(s for s in SPELLED_SPECS if s.seq == 24)
    sf = SPELLED_OF[by_sf.company_id].crm_account_id
    by_guid = next(s for s in SPELLED_SPECS if s.seq == 3)
    assert by_guid.crm_account_id is not None

    def steps(m: SpellingRules) -> None:
        m.register(dataclasses.replace(by_sf, crm_account_id=sf, domain=None), "p-01",
                   {"analytics"}, "resell")
        m.register(dataclasses.replace(by_sf, crm_account_id=companies_mod._full_width(sf),
                                       domain=None, crm_respelled=True),
                   "p-02", {"analytics"}, "resell")
        m.register(by_guid, "p-01", {"analytics"}, "resell")
        m.register(dataclasses.replace(by_guid, domain=None, crm_respelled=True,
                                       crm_account_id="{" + by_guid.crm_account_id + "}"),
                   "p-03", {"analytics"}, "resell")
        regs = list(m.model.regs.values())
        for holder, rival in (regs[0:2], regs[2:4]):
            assert m.model.canonical(holder.key or "") == m.model.canonical(rival.key or ""), (
                holder.key, rival.key)
            assert holder.status == "approved" and rival.status == "rejected", (holder, rival)

    _replay_spellings(steps)


def test_a_trading_as_or_aka_name_is_the_holder_s_customer_in_the_machine() -> None:
    """Invariants 1 and 19, session 30 (the generator's convention 12 in `SpellingRules`):
    p-01 holds "jones holdings plc" (GB) by name alone; p-02 files "jones holdings plc T/A
    Johnson Express" by name alone, p-03 "Jones Holdings PLC aka Johnson Express" -- the
    same company known by its trade name. "t/a" and "aka" were words of one odd name
    ("jones holdings ta johnson express"), another customer: each approved `no_conflict`
    beside the holder, two owners of one company, where "dba" makes them its customer."""
    holder = next(s for s in SPELLED_SPECS if s.seq == 18)
    trading = next(s for s in SPELLED_SPECS if s.seq == 6)
    assert " T/A " in trading.name and trading.company_id == holder.company_id
    aka = dataclasses.replace(trading, name="Jones Holdings PLC aka Johnson Express")

    def steps(m: SpellingRules) -> None:
        m.register(holder, "p-01", {"analytics"}, "resell")
        m.register(trading, "p-02", {"analytics"}, "resell")
        m.register(aka, "p-03", {"analytics"}, "resell")
        first, *rivals = m.model.regs.values()
        assert first.status == "approved", first
        for rival in rivals:
            assert rival.status != "approved" and rival.key == first.key, (first, rival)

    _replay_spellings(steps)


def _customer(seq: int) -> Registration:
    return next(s for s in CUSTOMER_SPECS if s.seq == seq)


def test_a_trade_name_rejected_after_review_leaves_no_name_in_the_directory_replay() -> None:
    """Invariant 3, found by `CustomerRules` on main in session 30 (its exact steps): p-01
    files "Wells International LLC dba Jones Consulting Systems" by name alone; weighed
    against four filings of Wells International it waits for a person (under
    `keep_open`), who awards the review to a direct claim. The rejection takes back its
    names (`unfiled_names`); the order-free directory keeps the row, its latest filer named
    in `account_names_unfiled`, so the name is not filed (`name_filed`). The machine read
    the raw `account_names` rows (its oracle from before the order-free directory) and
    reported the trade name still filed; the code was right. After a restart the edge,
    warmed from the directory, holds no name under the key either."""

    def steps(m: CustomerRules) -> None:
        m.restart()
        m.file_claim(kind="opportunity", rep="rep-2", products={"crm"}, spec=_customer(21))
        m.partner_status("p-04", "active")
        m.partner_status("p-03", "exited")
        m.file_claim(kind="opportunity", rep="rep-1", products={"crm"}, spec=_customer(7))
        m.file_claim(kind="named_account", rep="rep-1", products={"security", "analytics"},
                     spec=_customer(6))
        m.register_rival(index=15, partner=2, pick=3, products={"analytics"})
        m.publish_policy("tier_first")
        m.file_claim(kind="opportunity", rep="rep-2", products={"security", "analytics"},
                     spec=_customer(22))
        m.restart()
        m.restart()
        m.file_claim(kind="named_account", rep="rep-2", products={"security"}, spec=_customer(17))
        m.publish_policy("tier_first")
        m.publish_policy("default")
        m.register_recased_guid(index=23, partner=2, case="swap", domain=False,
                                products={"crm"})
        m.register_rival(index=47, partner=4, pick=3, products={"analytics"})
        m.publish_policy("default")
        m.rival_copies_reference(index=31, partner=3, pick=4, products={"analytics"},
                                 then="lost")
        m.rival_copies_reference(index=36, partner=2, pick=4, products={"crm"},
                                 then=None)
        m.rival_copies_reference(index=38, partner=3, pick=1, products={"security", "analytics"},
                                 then="won")
        m.restart()
        m.partner_status("p-03", "exited")
        m.file_claim(kind="named_account", rep="rep-2", products={"security"}, spec=_customer(18))
        m.rival_copies_reference(index=42, partner=4, pick=5, products={"security", "analytics"},
                                 then=None)
        m.rival_copies_reference(index=43, partner=4, pick=0, products={"crm"},
                                 then=None)
        m.publish_policy("keep_open")
        before = SESSION27["trade name rejected after review"]
        m.reject_waiting_trade_name(index=16, other=37, rival=4, products={"security", "crm"})
        m.report()
        assert SESSION27["trade name rejected after review"] == before + 1
        rejected = list(m.model.regs.values())[-1]
        assert (rejected.status, rejected.key) == (
            "rejected", "name:US:wells-international-dba-jones-consulting-systems"), rejected
        m.restart()  # the edge warms from the directory read model
        edge = m.pipeline.commands.directory._index.filed_names(rejected.key)
        assert {n for n, _ in edge} == set(), edge

    _replay_customers(steps)

def test_a_copy_settled_on_another_partition_is_the_one_open_invariant_6_gap() -> None:
    """The derandomized `CustomerRules` run's second session-30 finding (s30-crfix): a
    country-less registration filed by CRM id alone, home under a `dom:` key, waits in
    review there, is copied into a trade name's review on another partition and rejected by
    the person's award there: its copy is named `matched_by: domain`, an identifier it does
    not have. Open (DESIGN, "A copy's own evidence"); the checker lets exactly this item
    through (`copy_named_by_its_key_form`) and checks every other, so this replay passes
    while the gap stays visible in the run's statistics."""
    def steps(m: CustomerRules) -> None:
        m.file_claim(kind="opportunity", rep="rep-2", products={"crm"}, spec=_customer(23))
        m.extend(index=47)
        m.restart()
        m.publish_policy("short_ladder")
        m.register_countryless(how="crm", index=0, partner=3, products={"crm"})
        m.resolve(index=4, outcome="distinct", winner=5)
        m.register_countryless(how="domain", index=49, partner=4,
                               products={"security", "analytics"})
        m.register_countryless(how="crm", index=45, partner=0, products={"security", "analytics"})
        m.rival_copies_reference(index=42, partner=1, pick=2, products={"analytics", "crm"},
                                 then="won")
        m.file_claim(kind="opportunity", rep="rep-1", products={"security"}, spec=_customer(4))
        m.rival_copies_reference(index=42, partner=4, pick=2, products={"analytics", "crm"},
                                 then="lost")
        m.reject_waiting_trade_name(index=38, other=19, rival=1, products={"security", "crm"})
        m.report()

    _replay_customers(steps)


def test_a_partner_s_second_filing_of_its_own_customer_is_not_a_second_owner() -> None:
    """Found by the derandomized `CustomerRules` run on main (session 30, s30-inv1): p-03
    holds "Jones Consulting Systems Ltd dba Jones Holdings PLC" (name alone, GB, approved
    `no_conflict`: the direct claim filed the name without a country, which asks only);
    `file_trade_name_again` filed it again as "... dba Sandoval Global Corporation". A
    chain of three names is one name naming no customer (session 28, invariant 19), so
    the product approved it `no_conflict` -- and invariant 1 counted p-03's two approvals
    as two owners of Jones. The oracle was wrong, not the product: the machine's trade-name
    rules add a trade name only to a name that has none (`trade_name_holder`)."""
    def steps(m: CustomerRules) -> None:
        m.file_claim(kind="opportunity", rep="rep-2", products={"crm"}, spec=_customer(23))
        m.extend(index=47)
        m.restart()
        m.publish_policy("short_ladder")
        m.register_countryless(how="crm", index=0, partner=3, products={"crm"})
        m.resolve(index=4, outcome="distinct", winner=5)
        m.register_countryless(how="domain", index=49, partner=4,
                               products={"security", "analytics"})
        m.register_countryless(how="crm", index=45, partner=0, products={"security", "analytics"})
        m.rival_copies_reference(index=42, partner=1, pick=2, products={"analytics", "crm"},
                                 then="won")
        m.file_claim(kind="opportunity", rep="rep-1", products={"security"}, spec=_customer(4))
        m.rival_copies_reference(index=42, partner=4, pick=2, products={"analytics", "crm"},
                                 then="lost")
        m.reject_waiting_trade_name(index=38, other=19, rival=1, products={"security", "crm"})
        m.file_trade_name_again(index=2, other=43, products={"security"})
        m.file_claim(kind="opportunity", rep="rep-2", products={"security"}, spec=_customer(11))
        m.publish_policy("short_ladder")
        m.register_recased_guid(index=20, partner=1, case="swap", domain=False,
                                products={"crm", "analytics"})
        m.restart()
        m.register_recased_guid(index=35, partner=2, case="lower", domain=True,
                                products={"security", "analytics"})
        m.close_by_reference(index=11, outcome="won")
        m.reject_waiting_trade_name(index=43, other=17, rival=1,
                                    products={"security", "analytics"})
        m.extend(index=39)
        m.publish_policy("short_ladder")
        m.rival_copies_reference(index=7, partner=2, pick=5, products={"crm", "analytics"},
                                 then="lost")
        m.rival_copies_reference(index=25, partner=3, pick=1, products={"crm", "analytics"},
                                 then="lost")
        holder = next(r for r in m.model.regs.values() if r.partner == "p-03"
                      and r.status == "approved" and r.spec.company_id == "s27-co-00006")
        # Its own "A dba B", approved beside the direct claim's country-less name (asks only).
        assert holder.spec.name == "Jones Consulting Systems Ltd dba Jones Holdings PLC"
        chain = normalize_name(f"{holder.spec.name} dba Sandoval Global Corporation", "GB")
        assert name_forms(chain) == (chain,)  # a chain: one name, naming no customer
        before = len(m.model.regs)
        m.file_trade_name_again(index=25, other=19, products={"analytics"})
        assert len(m.model.regs) == before  # not filed: the machine files no chain here
        m.report()

    _replay_customers(steps)


def test_a_contest_won_after_a_country_less_filing_asks_it_only_in_the_machine() -> None:
    """Found by the derandomized `CustomerRules` run once the chain was skipped (s30-inv1):
    p-02's "Heuser Holdings Ag" (name alone, DE) is rejected beside p-04's; p-01 then files
    Heuser by its domain without a country (approved `no_conflict` for crm, beside p-04's
    other products); p-02 contests, and p-04's close leaves the contest moot: p-02 is
    approved for analytics and crm beside p-01's crm. By rule (session 29,
    `match.countryless_names: ask`) a name filed without a country protects its holder by
    its identifiers alone, and p-02 shares none with p-01, so the contest was right not to
    draw p-01 in. The oracle (`asks_only`) exempted only a later *filing*; a contest or
    promotion weighs a filing rejected before as a newcomer (`revived_after`)."""
    spec = next(s for s in CUSTOMER_SPECS if s.seq == 19 and s.name == "Heuser Holdings Ag")

    def steps(m: CustomerRules) -> None:
        m.register(spec, "p-04", {"security", "analytics"}, "resell")
        m.register_rival(index=32, partner=3, pick=5, products={"crm", "analytics"})
        m.register_rival(index=50, partner=2, pick=0, products={"crm"})
        m.register_countryless(how="name", index=27, partner=3, products={"security"})
        m.contest(index=36)
        m.register_countryless(how="domain", index=19, partner=3, products={"security"})
        m.publish_policy("tier_first")
        m.close(index=28, outcome="won")
        by_partner = {r.partner: r for r in m.model.regs.values()}
        rival, countryless = by_partner["p-02"], by_partner["p-01"]
        assert countryless.spec.countryless and countryless.id > rival.id
        assert (rival.status, rival.rule, countryless.status) == (
            "approved", "no_conflict", "approved")
        assert set(rival.scope) & set(countryless.scope) == {"crm"}
        m.report()

    _replay_customers(steps)
