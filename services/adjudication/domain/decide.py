"""`decide(state, event, context) -> (state, decisions)`: the whole contract with the worker.

Per event: remember the policy the worker looked up, let time pass up to the event's
envelope time (deadlines fire first, see `timers.py`), then apply the event's own rule.
No I/O, no clock, no randomness: the same events in the same order give the same
decisions, byte for byte (invariant 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from services.adjudication.domain import disputes, lifecycle, links, relay
from services.adjudication.domain.adjudicate import (
    adjudicate,
    claim_entry,
    identity_of,
    registration_entry,
)
from services.adjudication.domain.instants import to_us
from services.adjudication.domain.state import AdjudicationState
from services.adjudication.domain.timers import advance
from shared.accounts.normalize import normalize_country
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
from shared.policy import Policy


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """What the worker knows about the event beyond its data.

    `time` is the envelope time (for a TimerFired: when it was fired). `policy` is the
    policy document whose version is stamped on the event (`policy_version_of(event)`);
    for an event that carries none, pass None and the newest version this state has seen
    applies. An unknown version is the worker's error to report, not a rule to guess.
    """

    event_id: str
    time: datetime
    policy: Policy | None = None


Out = list[DomainEvent]


def _registration(state: AdjudicationState, event: RegistrationSubmitted, policy: Policy,
                  out: Out) -> None:
    entry = registration_entry(state, event, policy)
    # The latest status this partition saw for the partner wins over the stamped snapshot:
    # the log order says which came first.
    status = state.partner_status.get(event.partner_id, event.partner.status)
    adjudicate(state, out, entry, identity_of(event.account), policy, status,
               event.account.name)


def _claim(state: AdjudicationState, event: ClaimFiled, policy: Policy, out: Out) -> None:
    adjudicate(state, out, claim_entry(state, event, policy), identity_of(event.account), policy,
               None, event.account.name)


def _timer(state: AdjudicationState, event: TimerFired, policy: Policy, out: Out) -> None:
    """Nothing beyond advancing the clock, which `decide` did already."""


_HANDLERS: Final[dict[type[DomainEvent], Callable[[AdjudicationState, Any, Policy, Out], None]]] = {
    RegistrationSubmitted: _registration,
    ClaimFiled: _claim,
    TimerFired: _timer,
    RegistrationWithdrawn: lambda s, e, p, o: lifecycle.withdraw(s, o, e, p),
    RegistrationExtensionRequested: lambda s, e, p, o: lifecycle.extend(s, o, e, p),
    OpportunityClosed: lambda s, e, p, o: lifecycle.close(s, o, e, p),
    ClaimReleased: lambda s, e, p, o: lifecycle.release(s, o, e, p),
    PartnerStatusChanged: lambda s, e, p, o: lifecycle.partner_status(s, o, e, p),
    DisputeFiled: lambda s, e, p, o: disputes.file(s, o, e, p),
    DisputeAcknowledged: lambda s, e, p, o: disputes.acknowledge(s, o, e, p),
    DisputeResolutionSubmitted: lambda s, e, p, o: disputes.submit_resolution(s, o, e, p),
    AccountLinkReported: lambda s, e, p, o: links.report(s, o, e, p),
    SettlementRelayed: lambda s, e, p, o: relay.apply(s, o, e, p),
    CopiesInReview: lambda s, e, p, o: relay.watch(s, o, e, p),
    HomeEndRelayed: lambda s, e, p, o: links.ended_at_home(s, o, e, p),
}

RELAYS: Final = (SettlementRelayed, CopiesInReview, HomeEndRelayed)
"""What `decide_relaying` derives for other partitions' intake (relay.py), never a
decision."""


IGNORED: Final[frozenset[type[DomainEvent]]] = frozenset({
    # The adjudicator's own decisions: they are written to the decisions topic, never to
    # intake, so meeting one here changes nothing.
    RegistrationDecided, ClaimDecided, ProtectionExtended, ProtectionEnded, AccountsLinked,
    AccountsUnlinked,
    DisputeOpened, DisputeJoined, DisputeAcknowledgementRecorded, DisputeReminderDue,
    DisputeEscalated, DisputeSlaBreached, DisputeResolved, DisputeActionRejected,
    RegistrationActionRejected,
    # Reference data: policies reach `decide` through the context, partner status through
    # `PartnerStatusChanged`; owners and partner details decide nothing.
    PolicyPublished, PartnerUpdated, OwnerUpdated,
})
"""Catalogue types `decide` deliberately does nothing with. Every other catalogue type has
a handler; a type in neither raises `UnhandledEventType` (checked against the catalogue
by tests/unit/test_exhaustive_dispatch.py)."""

HANDLED: Final = frozenset(_HANDLERS)

_STAMPED: dict[type[DomainEvent], bool] = {}


def policy_version_of(event: DomainEvent) -> int | None:
    """The policy version stamped on an intake event, if it carries one."""
    cls = type(event)
    stamped = _STAMPED.get(cls)
    if stamped is None:
        stamped = _STAMPED[cls] = "policy_version" in cls.model_fields
    if not stamped:
        return None
    version = event.__dict__["policy_version"]
    return version if isinstance(version, int) else None


def decide(
    state: AdjudicationState, event: DomainEvent, context: DecisionContext
) -> tuple[AdjudicationState, list[DomainEvent]]:
    """Apply one intake event; return the state (mutated in place) and the decisions.

    Every decision event carries the `account_key` it is about: key it by that on the
    decisions topic (a deadline reached while deciding one account's event may concern
    another account of the same partition). The relays a settlement makes
    (`decide_relaying`) are left out: a replay reads them from the intake log.
    """
    decisions, _ = decide_relaying(state, event, context)
    return state, decisions


def decide_relaying(
    state: AdjudicationState, event: DomainEvent, context: DecisionContext
) -> tuple[list[DomainEvent], list[SettlementRelayed | CopiesInReview | HomeEndRelayed]]:
    """`decide`, and the intake events it derived for other partitions (relay.py): the
    `SettlementRelayed` of a settlement that decided copies, the `CopiesInReview` of a
    dispute that drew copies in, the `HomeEndRelayed` of a registration whose copies
    such a review holds that ended here. The worker appends
    those to the intake topic, keyed by their `account_key`, in the same transaction as
    the decisions."""
    handler = _HANDLERS.get(type(event))
    if handler is None and type(event) not in IGNORED:
        raise UnhandledEventType("the adjudicator", event)  # before anything changed
    policy = state.remember_policy(context.policy)
    out: Out = []
    moment = to_us(context.time)
    if isinstance(event, TimerFired):
        moment = max(moment, to_us(event.deadline))
    advance(state, out, moment)
    if state.ended:  # (each call below returns at once when there is nothing to do)
        links.revisit(state, out)
    if handler is not None:
        version = policy_version_of(event)
        handler(state, event, state.policy(version) if version is not None else policy, out)
        if state.ended:
            links.revisit(state, out)
    if state.unwatched:
        relay.tell_ended(state, out)
    if state.refiled:
        _say_refiled(state, out)
    if state.unfiled_now:
        _say_unfiled(state, out)
    relays = [e for e in out if isinstance(e, RELAYS)]
    if relays:
        return [e for e in out if not isinstance(e, RELAYS)], relays
    return out, relays


def _say_unfiled(state: AdjudicationState, out: Out) -> None:
    """Write the names a rejection after review took back (`AdjudicationState.retired`)
    on that entry's rejecting decision, `unfiled_names`, as a rejection at the decision
    does (session 30): the directory read model removes them the same way."""
    for entry_id, forms in state.unfiled_now.items():
        for i in range(len(out) - 1, -1, -1):
            event = out[i]
            if isinstance(event, RegistrationDecided | ClaimDecided) and (
                    (event.registration_id if isinstance(event, RegistrationDecided)
                     else event.claim_id) == entry_id):
                update: dict[str, tuple[str, ...]] = {"unfiled_names": forms}
                void = state.unfiled_cofilers_now.get(entry_id)
                if void:
                    # Rejected filings of the forms since count for nothing: the
                    # directory's row of a form may name one as its latest filer.
                    update["unfiled_cofilers"] = void
                out[i] = event.model_copy(update=update)
                break
    state.unfiled_now.clear()
    state.unfiled_cofilers_now.clear()


def _say_refiled(state: AdjudicationState, out: Out) -> None:
    """Write the names an undone rejection filed again (`AdjudicationState.activate`) on
    that entry's approving (or reviewing) decision, `refiled_names`, so the directory read
    model files them again as the adjudicator did (session 29)."""
    for entry_id, (forms, country) in state.refiled.items():
        for i in range(len(out) - 1, -1, -1):
            event = out[i]
            if isinstance(event, RegistrationDecided | ClaimDecided) and (
                    (event.registration_id if isinstance(event, RegistrationDecided)
                     else event.claim_id) == entry_id):
                out[i] = event.model_copy(update={
                    "refiled_names": forms,
                    "refiled_country": normalize_country(country) if country else None})
                break
    state.refiled.clear()
