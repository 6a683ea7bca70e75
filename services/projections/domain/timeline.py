"""Timelines: every event and decision about a registration (or claim), oldest first.

Each event is stored once, under the subject it names: the registration or claim, or the
dispute for dispute events (most of which do not list the registrations). A
registration's timeline is its own entries plus those of every dispute it was ever a
member of (`dispute_members`), sorted by the event's own time, then by event id (decision
ids extend their input's id with `.d<n>`, so a decision sorts after its cause). Nothing
here depends on arrival order: an entry is keyed by `(subject, event id)` and written once.

Entries are compact: the event's data (as it was on the log, upcast to the current
version) without empty fields and without the field that names the subject (it is the
key), stored as JSON text; times as microseconds since the epoch.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

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

# Which field names the subject, and which field is the event's own time.
_SUBJECT_AND_TIME: Final[dict[type[DomainEvent], tuple[str, str | None]]] = {
    RegistrationSubmitted: ("registration_id", "submitted_at"),
    RegistrationDecided: ("registration_id", "decided_at"),
    RegistrationWithdrawn: ("registration_id", "withdrawn_at"),
    RegistrationExtensionRequested: ("registration_id", "requested_at"),
    RegistrationActionRejected: ("registration_id", "decided_at"),
    OpportunityClosed: ("registration_id", "closed_at"),
    ProtectionExtended: ("registration_id", "decided_at"),
    ProtectionEnded: ("registration_id", "ended_at"),
    ClaimFiled: ("claim_id", "filed_at"),
    ClaimDecided: ("claim_id", "decided_at"),
    ClaimReleased: ("claim_id", "released_at"),
    DisputeFiled: ("registration_id", "filed_at"),
    DisputeOpened: ("dispute_id", "opened_at"),
    DisputeJoined: ("dispute_id", "joined_at"),
    DisputeAcknowledged: ("dispute_id", "acknowledged_at"),
    DisputeAcknowledgementRecorded: ("dispute_id", "acknowledged_at"),
    DisputeReminderDue: ("dispute_id", "reminder_at"),
    DisputeEscalated: ("dispute_id", "breached_deadline"),
    DisputeSlaBreached: ("dispute_id", "breached_deadline"),
    DisputeResolutionSubmitted: ("dispute_id", "submitted_at"),
    DisputeResolved: ("dispute_id", "resolved_at"),
    DisputeActionRejected: ("dispute_id", "decided_at"),
    AccountsLinked: ("registration_id", "linked_at"),
    AccountsUnlinked: ("registration_id", "unlinked_at"),
}


IGNORED: Final[frozenset[type[DomainEvent]]] = frozenset({
    PartnerStatusChanged,  # about a partner, not a registration
    SettlementRelayed,  # what it decides arrives as decisions, each on its timeline
    CopiesInReview, HomeEndRelayed,  # the adjudicator's notes between partitions: likewise
    PolicyPublished, PartnerUpdated, OwnerUpdated,  # reference topic: not read here
})
HANDLED: Final[frozenset[type[DomainEvent]]] = frozenset(
    {*_SUBJECT_AND_TIME, TimerFired, AccountLinkReported})

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


_MICROSECOND: Final = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND  # exact (integer timedelta division)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


_EMPTIABLE: Final = (str, list, dict)


def _compact(data: dict[str, Any], drop: str) -> str:
    """The data without `drop`, nulls and empty strings, lists and objects (false and 0
    stay). Written for speed: it runs once per timeline row, in every rebuild."""
    return orjson.dumps({
        k: v for k, v in data.items()
        if (v or (v is not None and not isinstance(v, _EMPTIABLE))) and k != drop
    }).decode()


def entries(event_id: str, time: datetime, event: DomainEvent,
            data: dict[str, Any] | None = None) -> list[Row]:
    """The timeline rows of one event (none for events about no registration). `data` is
    the event's JSON data as logged (its `to_data()` when not given)."""
    known = _SUBJECT_AND_TIME.get(type(event))
    if known is not None:  # the usual case first (neither of the two below is listed)
        field, time_field = known
        subject = getattr(event, field)
        if subject is None:
            return []
        at = getattr(event, time_field) if time_field else time
        return [_row(subject, event_id, at, event.TYPE,
                     _compact(data if data is not None else event.to_data(), field))]
    if isinstance(event, TimerFired):
        subject = event.registration_id or event.dispute_id
        if subject is None:
            return []
        drop = "registration_id" if event.registration_id else "dispute_id"
        return [_row(subject, event_id, time, event.TYPE,
                     _compact(data if data is not None else event.to_data(), drop))]
    if isinstance(event, AccountLinkReported):
        text = _compact(data if data is not None else event.to_data(), "")
        return [_row(r.registration_id, event_id, event.reported_at, event.TYPE, text)
                for r in event.registrations]
    if type(event) in IGNORED:
        return []  # e.g. a partner's status change: about a partner, not a registration
    raise UnhandledEventType("the timelines", event)


def _row(subject: str, event_id: str, at: datetime, type_: str, data: str) -> Row:
    return {"subject_id": subject, "event_id": event_id, "at_us": to_us(at), "type": type_,
            "data": data}


_DECISION_SUFFIX: Final = re.compile(r"^(.*)\.d(\d+)$")


def order_key(row: Row) -> tuple[int, str, int, str]:
    """Oldest first; a decision right after its cause, then by its position in the batch of
    decisions the cause produced (`.d2` before `.d10`)."""
    event_id: str = row["event_id"]
    match = _DECISION_SUFFIX.match(event_id)
    if match:
        return row["at_us"], match.group(1), int(match.group(2)) + 1, event_id
    return row["at_us"], event_id, 0, event_id
