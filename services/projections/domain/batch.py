"""One batch of log records folded into read-model rows, in memory.

The worker (and the rebuild) decodes a batch, asks `needs()` which existing rows to load,
loads them once, runs `Batch.fold` over every event in log order, and writes back only what
changed, in bulk. Each event is folded into the models that have not applied its record
yet (every model keeps its own positions, so one model can be rebuilt alone).

Models and what feeds them:

- `registrations`: registration and claim rows, pipeline totals, metrics inputs;
- `ownership`: ownership intervals (decisions only);
- `directory`: domains, CRM ids, names and name keys of submitted accounts, account links;
- `disputes`: dispute rows, members, SLA breaches (decisions; a filing adds a member);
- `timelines`: every event about a registration, claim or dispute;
- `notifications` (not in `MODELS`: never rebuilt, a replay must not notify again): the
  outbox of dispute notifications (`domain/notifications.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

from services.projections.domain import directory, disputes, notifications, ownership, timeline
from services.projections.domain import registrations as regs
from services.projections.domain.pipeline import Deltas, snapshot
from shared.events import (
    AccountLinkReported,
    AccountsLinked,
    AccountsUnlinked,
    ClaimDecided,
    ClaimFiled,
    ClaimReleased,
    CopiesInReview,
    DisputeAcknowledged,
    DisputeAcknowledgementRecorded,
    DisputeActionRejected,
    DisputeEscalated,
    DisputeFiled,
    DisputeJoined,
    DisputeOpened,
    DisputeReminderDue,
    DisputeResolutionSubmitted,
    DisputeResolved,
    DisputeSlaBreached,
    DomainEvent,
    HomeEndRelayed,
    OpportunityClosed,
    PartnerStatusChanged,
    ProtectionEnded,
    ProtectionExtended,
    RegistrationActionRejected,
    RegistrationDecided,
    RegistrationExtensionRequested,
    RegistrationSubmitted,
    RegistrationWithdrawn,
    SettlementRelayed,
    TimerFired,
)
from shared.events.base import UnhandledEventType
from shared.events.reference import OwnerUpdated, PartnerUpdated, PolicyPublished

Row = dict[str, Any]

REGISTRATIONS: Final = "registrations"
OWNERSHIP: Final = "ownership"
DIRECTORY: Final = "directory"
DISPUTES: Final = "disputes"
TIMELINES: Final = "timelines"
MODELS: Final = (REGISTRATIONS, OWNERSHIP, DIRECTORY, DISPUTES, TIMELINES)
NOTIFICATIONS: Final = "notifications"
"""The outbox model: folded by the runtime's projection worker, outside `MODELS` so that a
rebuild neither empties nor replays it (that would send every notification again)."""

_DISPUTE_DECISIONS: Final = (DisputeOpened, DisputeJoined, DisputeAcknowledgementRecorded,
                             DisputeReminderDue, DisputeEscalated, DisputeSlaBreached,
                             DisputeResolved)
_HOLDER_DECISIONS: Final = (RegistrationDecided, ClaimDecided, ProtectionExtended,
                            ProtectionEnded)


class Item(NamedTuple):
    """A decoded record: the envelope's id and time, the event, the models it feeds, and
    the event's JSON data as logged (upcast), which timelines store as it is.

    Immutable as a tuple (one is made per record: a frozen dataclass's `__init__` sets
    each field through `object.__setattr__`, about five times the cost)."""

    event_id: str
    time: datetime
    event: DomainEvent
    models: frozenset[str]
    data: dict[str, Any] | None = None
    traceparent: str | None = None
    """The envelope's W3C trace context (CloudEvents distributed-tracing extension), which
    the notifications it causes carry to their webhooks."""
    tracestate: str | None = None
    offset: int = -1
    """The record's offset in its topic partition: a submission's orders the filers of a
    directory name (`directory.later`; every filing of a key is on its intake partition)."""


@dataclass
class Needs:
    """Existing rows a batch must load before folding."""

    registrations: set[str] = field(default_factory=set)
    claims: set[str] = field(default_factory=set)
    disputes: set[str] = field(default_factory=set)
    holders: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.registrations or self.claims or self.disputes or self.holders)

    def within(self, other: Needs) -> Needs:
        """These ids that `other` holds too."""
        return Needs(self.registrations & other.registrations, self.claims & other.claims,
                     self.disputes & other.disputes, self.holders & other.holders)

    def add_written(self, batch: Batch) -> None:
        """Add the ids of the rows `batch` writes (a registration's, claim's or dispute's
        row; a holder's ownership intervals)."""
        self.registrations |= batch.dirty_registrations
        self.claims |= batch.dirty_claims
        self.disputes |= batch.dirty_disputes
        self.holders.update(holder for holder, _ in batch.intervals)


def _is_claim(event: ProtectionEnded | ProtectionExtended) -> bool:
    return event.party_type == "direct"


_Need = Callable[["Needs", Any], None]


def _need_registration(found: Needs, event: Any) -> None:
    found.registrations.add(event.registration_id)


def _need_claim(found: Needs, event: Any) -> None:
    found.claims.add(event.claim_id)


def _need_protected(found: Needs, event: Any) -> None:
    (found.claims if _is_claim(event) else found.registrations).add(event.registration_id)


def _need_holder(found: Needs, event: Any) -> None:
    found.holders.add(event.claim_id if isinstance(event, ClaimDecided)
                      else event.registration_id)


def _need_dispute(found: Needs, event: Any) -> None:
    found.disputes.add(event.dispute_id)
    if isinstance(event, DisputeOpened) and event.carries_on is not None:
        found.disputes.add(event.carries_on)  # its acknowledgement is carried (`_opened`)


def _need_notified(found: Needs, event: Any) -> None:
    found.disputes.add(event.dispute_id)  # the previous / current owner
    if isinstance(event, DisputeResolved):  # their partners
        found.registrations.update(event.registration_ids)


def _needs_of(kind: type[DomainEvent]) -> tuple[tuple[str, _Need], ...]:
    """Per model, what an event of type `kind` makes a batch load (worked out once per
    type: `needs` runs for every record of every batch)."""
    plan: list[tuple[str, _Need]] = []
    if issubclass(kind, RegistrationSubmitted | RegistrationDecided):
        plan.append((REGISTRATIONS, _need_registration))
    elif issubclass(kind, ClaimFiled | ClaimDecided):
        plan.append((REGISTRATIONS, _need_claim))
    elif issubclass(kind, ProtectionEnded | ProtectionExtended):
        plan.append((REGISTRATIONS, _need_protected))
    if issubclass(kind, _HOLDER_DECISIONS):
        plan.append((OWNERSHIP, _need_holder))
    if issubclass(kind, _DISPUTE_DECISIONS):
        plan.append((DISPUTES, _need_dispute))
    if issubclass(kind, DisputeEscalated | DisputeResolved):
        plan.append((NOTIFICATIONS, _need_notified))
    return tuple(plan)


_NEEDS_OF: dict[type[DomainEvent], tuple[tuple[str, _Need], ...]] = {}


def needs(items: Iterable[Item]) -> Needs:
    found = Needs()
    plans = _NEEDS_OF
    for item in items:
        event = item.event
        plan = plans.get(type(event))
        if plan is None:
            plan = plans[type(event)] = _needs_of(type(event))
        for model, need in plan:
            if model in item.models:
                need(found, event)
    return found


@dataclass
class Loaded:
    """Rows read from the store for a batch (keyed by id; intervals by holder id)."""

    registrations: dict[str, Row] = field(default_factory=dict)
    claims: dict[str, Row] = field(default_factory=dict)
    disputes: dict[str, Row] = field(default_factory=dict)
    open_intervals: dict[str, Row | None] = field(default_factory=dict)
    """Holder -> its open protection interval; None: known to have none."""

    def without(self, wanted: Needs) -> Needs:
        """What of `wanted` is not here (and must be read from the store)."""
        return Needs(registrations=wanted.registrations - self.registrations.keys(),
                     claims=wanted.claims - self.claims.keys(),
                     disputes=wanted.disputes - self.disputes.keys(),
                     holders=wanted.holders - self.open_intervals.keys())

    def merged(self, other: Loaded, wanted: Needs) -> Loaded:
        """These rows (the wanted ones) completed by `other`."""
        return Loaded(
            registrations={**{i: self.registrations[i] for i in wanted.registrations
                              if i in self.registrations}, **other.registrations},
            claims={**{i: self.claims[i] for i in wanted.claims if i in self.claims},
                    **other.claims},
            disputes={**{i: self.disputes[i] for i in wanted.disputes if i in self.disputes},
                      **other.disputes},
            open_intervals={**{i: self.open_intervals[i] for i in wanted.holders
                               if i in self.open_intervals}, **other.open_intervals},
        )


class Batch:
    """Folds events into rows; `changes()` says what to write."""

    def __init__(self, loaded: Loaded) -> None:
        self.registrations = loaded.registrations
        self.claims = loaded.claims
        self.disputes = loaded.disputes
        self.open_intervals: dict[str, Row | None] = dict(loaded.open_intervals)
        self._before = {rid: snapshot(row) for rid, row in loaded.registrations.items()}
        self.dirty_registrations: set[str] = set()
        self.dirty_claims: set[str] = set()
        self.dirty_disputes: set[str] = set()
        self.intervals: dict[tuple[str, str], Row] = {}
        self.members: dict[tuple[str, str], Row] = {}
        self.breaches: dict[tuple[str, int], Row] = {}
        self.timeline: dict[tuple[str, str], Row] = {}
        self.domains: dict[str, Row] = {}
        self.crm_ids: dict[str, Row] = {}
        self.names: dict[tuple[str, str, str], Row] = {}
        self.name_keys: dict[tuple[str, str, str], Row] = {}
        self.unfiled_names: dict[tuple[str, str, str], Row] = {}
        """(account key, name, filing) -> an `account_names_unfiled` row: a rejected
        filing took the name back (`directory.unfiled`); a name row whose latest filer it
        is is not filed, whichever is folded first (session 30)."""
        self.unfiled_back: dict[tuple[str, str, str], Row] = {}
        """`account_names_unfiled` rows to delete: a rejection undone files the names
        again by the same filing (`directory.refiled`), which a later rejection of it
        takes back once more (second rival review, session 30)."""
        self._offset = -1
        """The offset of the item being folded (`Item.offset`)."""
        self.link_facts: dict[tuple[str, str], Row] = {}
        """(alias, canonical) -> what this batch's partitions decided about the link:
        `holders` (links minus unlinks) and the earliest link's facts (None if it only
        ended links), merged into `account_link_facts` (`directory.merge_link`)."""
        self.outbox: dict[str, Row] = {}
        self.events = 0

    # --- folding ------------------------------------------------------------------------

    def fold(self, item: Item) -> None:
        self.events += 1
        event, models = item.event, item.models
        if NOTIFICATIONS in models and isinstance(event, notifications.NOTIFIED):
            # Before the disputes fold: an escalation's previous owner is still on the row.
            dispute = self.disputes.get(getattr(event, "dispute_id", ""))
            for row in notifications.rows(item.event_id, item.time, event, item.data,
                                          dispute, self.registrations):
                row["traceparent"], row["tracestate"] = item.traceparent, item.tracestate
                self.outbox.setdefault(row["id"], row)
        if type(event) not in _ACCOUNTED:
            raise UnhandledEventType("the projections", event)
        self._offset = item.offset
        for model, handler in _DISPATCH.get(type(event), ()):
            if model in models:
                handler(self, item.event_id, event)
        if TIMELINES in models:
            for row in timeline.entries(item.event_id, item.time, event, item.data):
                self.timeline.setdefault((row["subject_id"], row["event_id"]), row)

    def fold_all(self, items: Sequence[Item]) -> Batch:
        """`fold` every item in order: the same steps, each event's worked out once per
        event type and set of models (`_plan`), not per event."""
        plans = _PLANS
        timeline_rows = self.timeline
        entries = timeline.entries
        for item in items:
            event = item.event
            plan = plans.get((type(event), item.models))
            if plan is None:
                plan = _plan(type(event), item.models)
                if plan is None:  # notified, or not accounted for: the full steps
                    self.fold(item)
                    continue
            self.events += 1
            self._offset = item.offset  # orders a submission's names (`directory.later`)
            for handler in plan[0]:
                handler(self, item.event_id, event)
            if plan[1]:
                for row in entries(item.event_id, item.time, event, item.data):
                    timeline_rows.setdefault((row["subject_id"], row["event_id"]), row)
        return self

    def _registration(self, registration_id: str) -> Row:
        self.dirty_registrations.add(registration_id)
        row = self.registrations.get(registration_id)
        if row is None:
            row = self.registrations[registration_id] = regs.empty_row(registration_id)
        return row

    def _claim(self, claim_id: str) -> Row:
        self.dirty_claims.add(claim_id)
        row = self.claims.get(claim_id)
        if row is None:
            row = self.claims[claim_id] = regs.empty_claim(claim_id)
        return row

    # registrations model

    def _submitted(self, _: str, event: RegistrationSubmitted) -> None:
        regs.apply_submitted(self._registration(event.registration_id), event)

    def _decided(self, _: str, event: RegistrationDecided) -> None:
        regs.apply_decided(self._registration(event.registration_id), event)

    def _claim_filed(self, _: str, event: ClaimFiled) -> None:
        regs.apply_claim_filed(self._claim(event.claim_id), event)

    def _claim_decided(self, _: str, event: ClaimDecided) -> None:
        regs.apply_claim_decided(self._claim(event.claim_id), event)

    def _extended(self, _: str, event: ProtectionExtended) -> None:
        row = (self._claim if _is_claim(event) else self._registration)(event.registration_id)
        regs.apply_extended(row, event)

    def _ended(self, _: str, event: ProtectionEnded) -> None:
        if _is_claim(event):
            regs.apply_ended(self._claim(event.registration_id), event, claim=True)
        else:
            regs.apply_ended(self._registration(event.registration_id), event)

    # ownership model

    def _holding_decided(self, event_id: str, event: RegistrationDecided) -> None:
        holding = ownership.Holding(
            event.registration_id, event.account_key, "partner", event.partner_id,
            event.status, _list(event.scope_products), event.credit_percent,
            event.protected_until)
        self._interval_rows(event.registration_id, ownership.change(
            self.open_intervals.get(event.registration_id), holding, event_id,
            event.decided_at))

    def _holding_claim(self, event_id: str, event: ClaimDecided) -> None:
        holding = ownership.Holding(
            event.claim_id, event.account_key, "direct", event.rep_id, event.status,
            _list(event.scope_products), event.credit_percent, event.protected_until)
        self._interval_rows(event.claim_id, ownership.change(
            self.open_intervals.get(event.claim_id), holding, event_id, event.decided_at))

    def _holding_extended(self, event_id: str, event: ProtectionExtended) -> None:
        self._interval_rows(event.registration_id, ownership.extend(
            self.open_intervals.get(event.registration_id), event.protected_until,
            event_id, event.decided_at))

    def _holding_ended(self, event_id: str, event: ProtectionEnded) -> None:
        self._interval_rows(event.registration_id, ownership.end(
            self.open_intervals.get(event.registration_id), event_id, event.ended_at,
            holder_id=event.registration_id, account_key=event.account_key,
            party_type=event.party_type, party_id=event.party_id,
            incumbent_until=event.incumbent_until))

    def _interval_rows(self, holder_id: str, rows: list[Row]) -> None:
        current: Row | None = None
        for row in rows:
            self.intervals[(row["holder_id"], row["opened_by"])] = row
            if row["kind"] == ownership.PROTECTION and row["valid_to"] is None:
                current = row
        if rows:
            self.open_intervals[holder_id] = current

    # directory model

    def _account(self, _: str, event: RegistrationSubmitted | ClaimFiled) -> None:
        filing = (event.registration_id if isinstance(event, RegistrationSubmitted)
                  else event.claim_id)
        domains, crm_ids, names, keys = directory.facts(event.account_key, event.account,
                                                        filing, self._offset)
        for row in domains:
            self.domains.setdefault(row["domain"], row)
        for row in crm_ids:
            self.crm_ids.setdefault(row["crm_account_id"], row)
        for row in names:
            self._name(row)
        for row in keys:
            self.name_keys.setdefault((row["country"], row["key"], row["name"]), row)

    def _name(self, row: Row) -> None:
        at = (row["country"], row["name"], row["account_key"])
        held = self.names.get(at)
        self.names[at] = row if held is None else directory.later(held, row)

    def _unfiled(self, _: str, event: RegistrationDecided | ClaimDecided) -> None:
        """A filing rejected at its decision takes back the name forms it newly filed
        (`unfiled_names`, session 29), and one whose rejection is undone files them again
        (`refiled_names`): both folded order-free (session 30, `directory`)."""
        filing = (event.registration_id if isinstance(event, RegistrationDecided)
                  else event.claim_id)
        if event.refiled_names:
            for row in directory.refiled(event.account_key, event.refiled_names,
                                         event.refiled_country, filing, event.decided_at):
                self._name(row)
                at = (row["account_key"], row["name"], filing)
                self.unfiled_names.pop(at, None)
                self.unfiled_back[at] = {"account_key": at[0], "name": at[1],
                                         "filed_by": filing}
        if event.unfiled_names:
            for row in directory.unfiled(event.account_key, filing, event.unfiled_names):
                at = (row["account_key"], row["name"], filing)
                self.unfiled_back.pop(at, None)
                self.unfiled_names[at] = row
            # Filings of the forms rejected while this one waited counted for nothing: a
            # row one of them filed last is taken back too (session 30 crfix).
            for cofiler in event.unfiled_cofilers:
                for row in directory.unfiled(event.account_key, cofiler,
                                             event.unfiled_names):
                    at = (row["account_key"], row["name"], cofiler)
                    self.unfiled_back.pop(at, None)
                    self.unfiled_names[at] = row

    def _linked(self, _: str, event: AccountsLinked) -> None:
        self._link_fact(directory.link(event))

    def _unlinked(self, _: str, event: AccountsUnlinked) -> None:
        self._link_fact(directory.unlink(event))

    def _link_fact(self, fact: Row) -> None:
        pair = (fact["account_key"], fact["canonical_key"])
        held = self.link_facts.get(pair)
        self.link_facts[pair] = fact if held is None else directory.merge_link(held, fact)

    # disputes model

    def _dispute(self, dispute_id: str) -> Row:
        self.dirty_disputes.add(dispute_id)
        row = self.disputes.get(dispute_id)
        if row is None:
            row = self.disputes[dispute_id] = disputes.empty_dispute(dispute_id)
        return row

    def _members(self, dispute_id: str, ids: Iterable[str]) -> None:
        for member in ids:
            self.members.setdefault((dispute_id, member),
                                    {"dispute_id": dispute_id, "member_id": member})

    def _breach(self, row: Row | None) -> None:
        if row is not None:
            self.breaches[(row["dispute_id"], row["level"])] = row

    def _filed(self, _: str, event: DisputeFiled) -> None:
        self._members(event.dispute_id, (event.registration_id,))

    def _opened(self, _: str, event: DisputeOpened) -> None:
        carried = (self.disputes.get(event.carries_on) if event.carries_on is not None
                   else None)  # read, not written: its own events (merged) wrote it
        disputes.apply_opened(self._dispute(event.dispute_id), event, carried)
        self._members(event.dispute_id, event.registration_ids)

    def _joined(self, _: str, event: DisputeJoined) -> None:
        disputes.apply_joined(self._dispute(event.dispute_id), event)
        self._members(event.dispute_id, event.registration_ids)

    def _acknowledged(self, _: str, event: DisputeAcknowledgementRecorded) -> None:
        disputes.apply_acknowledged(self._dispute(event.dispute_id), event)

    def _reminded(self, _: str, event: DisputeReminderDue) -> None:
        disputes.apply_reminder(self._dispute(event.dispute_id), event)

    def _escalated(self, _: str, event: DisputeEscalated) -> None:
        self._breach(disputes.apply_escalated(self._dispute(event.dispute_id), event)[1])

    def _sla_breached(self, _: str, event: DisputeSlaBreached) -> None:
        self._breach(disputes.apply_sla_breached(self._dispute(event.dispute_id), event)[1])

    def _resolved(self, _: str, event: DisputeResolved) -> None:
        self._breach(disputes.apply_resolved(self._dispute(event.dispute_id), event)[1])
        self._members(event.dispute_id, event.registration_ids)

    # --- results ------------------------------------------------------------------------

    def changed_registrations(self) -> list[Row]:
        return [self.registrations[r] for r in sorted(self.dirty_registrations)]

    def changed_claims(self) -> list[Row]:
        return [self.claims[c] for c in sorted(self.dirty_claims)]

    def changed_disputes(self) -> list[Row]:
        return [self.disputes[d] for d in sorted(self.dirty_disputes)]

    def pipeline(self) -> Deltas:
        deltas = Deltas()
        for rid in self.dirty_registrations:
            deltas.change(self._before.get(rid), self.registrations[rid])
        return deltas

    def carry(self) -> Loaded:
        """This batch's rows as the next batch would load them (valid once committed, for
        a process that is the only writer, like a rebuild)."""
        return Loaded(registrations=self.registrations, claims=self.claims,
                      disputes=self.disputes, open_intervals=dict(self.open_intervals))

    def touched_registrations(self) -> set[str]:
        """Ids whose rows changed: waiters for a decision (`Prefer: wait`) are woken."""
        return self.dirty_registrations | self.dirty_claims


def _list(products: tuple[str, ...] | None) -> list[str] | None:
    return list(products) if products is not None else None


Handler = Callable[[Batch, str, Any], None]
_DISPATCH: Final[dict[type[DomainEvent], tuple[tuple[str, Handler], ...]]] = {
    RegistrationSubmitted: ((REGISTRATIONS, Batch._submitted), (DIRECTORY, Batch._account)),
    RegistrationDecided: ((REGISTRATIONS, Batch._decided), (OWNERSHIP, Batch._holding_decided),
                          (DIRECTORY, Batch._unfiled)),
    ClaimFiled: ((REGISTRATIONS, Batch._claim_filed), (DIRECTORY, Batch._account)),
    ClaimDecided: ((REGISTRATIONS, Batch._claim_decided), (OWNERSHIP, Batch._holding_claim),
                   (DIRECTORY, Batch._unfiled)),
    ProtectionExtended: ((REGISTRATIONS, Batch._extended),
                         (OWNERSHIP, Batch._holding_extended)),
    ProtectionEnded: ((REGISTRATIONS, Batch._ended), (OWNERSHIP, Batch._holding_ended)),
    AccountsLinked: ((DIRECTORY, Batch._linked),),
    AccountsUnlinked: ((DIRECTORY, Batch._unlinked),),
    DisputeFiled: ((DISPUTES, Batch._filed),),
    DisputeOpened: ((DISPUTES, Batch._opened),),
    DisputeJoined: ((DISPUTES, Batch._joined),),
    DisputeAcknowledgementRecorded: ((DISPUTES, Batch._acknowledged),),
    DisputeReminderDue: ((DISPUTES, Batch._reminded),),
    DisputeEscalated: ((DISPUTES, Batch._escalated),),
    DisputeSlaBreached: ((DISPUTES, Batch._sla_breached),),
    DisputeResolved: ((DISPUTES, Batch._resolved),),
}
"""Which handler folds which event type into which model. Event types not listed here
(lifecycle requests, timer firings, refusals, partner status) only reach timelines."""

FOLDED: Final = frozenset(_DISPATCH)

_TIMELINE_ONLY: Final[frozenset[type[DomainEvent]]] = frozenset({
    # Requests the adjudicator answers with a decision (which the models fold), refusals,
    # clock ticks, partner status (about a partner, not an account) and the edge's link
    # reports (the adjudicator's AccountsLinked is what the directory folds).
    RegistrationWithdrawn, RegistrationExtensionRequested, OpportunityClosed, ClaimReleased,
    DisputeAcknowledged, DisputeResolutionSubmitted, DisputeActionRejected,
    RegistrationActionRejected, TimerFired, PartnerStatusChanged, AccountLinkReported,
})
_RELAYS: Final[frozenset[type[DomainEvent]]] = frozenset({
    # The adjudicator's note to another partition (relay.py): what it decides there
    # arrives as decisions, which the models fold; the settlement's own are folded already.
    SettlementRelayed, CopiesInReview, HomeEndRelayed,
})
_REFERENCE: Final[frozenset[type[DomainEvent]]] = frozenset({
    # On the reference topic, which the projection worker does not read.
    PolicyPublished, PartnerUpdated, OwnerUpdated,
})
_SUBMISSIONS: Final[frozenset[type[DomainEvent]]] = frozenset({RegistrationSubmitted,
                                                               ClaimFiled})
_HOLDERS: Final[frozenset[type[DomainEvent]]] = frozenset(_HOLDER_DECISIONS)
_LINKS: Final[frozenset[type[DomainEvent]]] = frozenset({AccountsLinked, AccountsUnlinked})
_DECIDED: Final[frozenset[type[DomainEvent]]] = frozenset(_HOLDER_DECISIONS[:2])
"""RegistrationDecided, ClaimDecided: the directory folds their `unfiled_names`."""
_DISPUTING: Final[frozenset[type[DomainEvent]]] = frozenset(_DISPUTE_DECISIONS)
IGNORED: Final[dict[str, frozenset[type[DomainEvent]]]] = {
    REGISTRATIONS: _TIMELINE_ONLY | _RELAYS | _REFERENCE | _LINKS | {DisputeFiled, *_DISPUTING},
    OWNERSHIP: _TIMELINE_ONLY | _RELAYS | _REFERENCE | _SUBMISSIONS | _LINKS | {DisputeFiled,
                                                                      *_DISPUTING},
    DIRECTORY: _TIMELINE_ONLY | _RELAYS | _REFERENCE | {
        *(_HOLDERS - _DECIDED), DisputeFiled, *_DISPUTING},
    DISPUTES: _TIMELINE_ONLY | _RELAYS | _REFERENCE | _SUBMISSIONS | _LINKS | _HOLDERS,
    TIMELINES: timeline.IGNORED,
    NOTIFICATIONS: notifications.IGNORED,
}
"""Per model, the catalogue types it deliberately does not fold. With `handled()` they
cover the catalogue exactly (tests/unit/test_exhaustive_dispatch.py); an event of a type
some model neither handles nor ignores raises `UnhandledEventType` instead of vanishing."""


def handled(model: str) -> frozenset[type[DomainEvent]]:
    """The event types `model` folds."""
    if model == TIMELINES:
        return timeline.HANDLED
    if model == NOTIFICATIONS:
        notified: frozenset[type[DomainEvent]] = frozenset(notifications.NOTIFIED)
        return notified
    return frozenset(t for t, pairs in _DISPATCH.items() if any(m == model for m, _ in pairs))


_ACCOUNTED: Final = frozenset.intersection(*(handled(m) | IGNORED[m] for m in IGNORED))

_Plan = tuple[tuple[Handler, ...], bool]
_PLANS: dict[tuple[type[DomainEvent], frozenset[str]], _Plan] = {}
"""(event type, models) -> the handlers `fold` runs for it, in order, and whether it
feeds timelines (`Batch.fold_all`)."""


def _plan(kind: type[DomainEvent], models: frozenset[str]) -> _Plan | None:
    """What `fold` does with an event of type `kind` for `models`, remembered; None when
    it notifies (the outbox rows need the full steps) or is not accounted for (`fold`
    raises)."""
    if kind not in _ACCOUNTED or (NOTIFICATIONS in models
                                  and issubclass(kind, notifications.NOTIFIED)):
        return None
    plan = (tuple(handler for model, handler in _DISPATCH.get(kind, ()) if model in models),
            TIMELINES in models)
    if len(_PLANS) < 4096:  # a handful of types times the model sets seen
        _PLANS[(kind, models)] = plan
    return plan
