"""The notifications model: decision events about disputes become outbox rows (pure).

Each row is one delivery: one notification to one recipient over one channel. Its id is
derived from the decision event id, the recipient and the channel, so a replay (or a second
projection process) writes the same ids and the store keeps the first (`ON CONFLICT DO
NOTHING`): a delivery is created effectively once, in the transaction that stores the
projection positions. The delivery worker (`services/projections/notifications.py`) sends
them. Addresses and secrets are not copied here: they are read at send time, so a changed
URL or a rotated secret applies to every pending delivery.

Partners hear about `dispute.resolved` only, over webhook only, and only about their own
registrations (invariant 7): the payload is the partner view's (`shared.api.partner_view`,
`WEBHOOK_DATA`): the dispute's id, outcome and when, the `partner_note`, the partner's own
registrations with their result; never a competitor's partner id, registration ids, the
internal note or who resolved. Which partner a registration belongs to comes from the
registrations read model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import orjson

from shared.api import partner_view
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
from shared.events.reference import OwnerUpdated, PartnerUpdated, PolicyPublished

Row = dict[str, Any]

CHANNELS: Final = ("webhook", "email")
MAX_PAYLOAD_BYTES: Final = 20_000
NOTIFIED: Final = (DisputeOpened, DisputeReminderDue, DisputeEscalated, DisputeResolved)
_TYPES: Final[dict[type[DomainEvent], str]] = {
    DisputeOpened: "dispute.opened",
    DisputeReminderDue: "dispute.reminder",
    DisputeEscalated: "dispute.escalated",
    DisputeResolved: "dispute.resolved",
}
IGNORED: Final[frozenset[type[DomainEvent]]] = frozenset({
    # Nobody is notified of these: only a dispute's opening, reminder, escalation and
    # resolution reach its owner (and a resolution the partners involved).
    RegistrationSubmitted, RegistrationDecided, RegistrationWithdrawn,
    RegistrationExtensionRequested, RegistrationActionRejected, OpportunityClosed,
    ProtectionExtended, ProtectionEnded, ClaimFiled, ClaimDecided, ClaimReleased,
    AccountsLinked, AccountsUnlinked, AccountLinkReported, DisputeFiled, DisputeJoined,
    DisputeAcknowledged,
    DisputeAcknowledgementRecorded, DisputeResolutionSubmitted, DisputeActionRejected,
    DisputeSlaBreached, PartnerStatusChanged, TimerFired, SettlementRelayed,
    CopiesInReview, HomeEndRelayed,
    PolicyPublished, PartnerUpdated, OwnerUpdated,
})
_TRIMMABLE: Final = ("evidence", "explanation", "note", "splits")


def delivery_id(event_id: str, recipient_kind: str, recipient_id: str, channel: str) -> str:
    """Stable across replays and retries: the Standard Webhooks `webhook-id`."""
    digest = hashlib.sha256(
        f"{event_id}\x00{recipient_kind}\x00{recipient_id}\x00{channel}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def payload(kind: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """`{"type", "timestamp", "data"}`, trimmed of long free text to stay under 20 kB."""
    dispute = dict(data["dispute"])
    body: dict[str, Any] = {"type": kind, "timestamp": at.isoformat(),
                            "data": {**data, "dispute": dispute}}
    for field in _TRIMMABLE:
        if len(orjson.dumps(body)) < MAX_PAYLOAD_BYTES:
            break
        dispute.pop(field, None)
    return body


def _previous_owner(dispute: Row | None, new_owner: str) -> str | None:
    """The owner a dispute escalated away from. `owners` lists every owner in order; the
    row may or may not include this escalation yet (models advance independently)."""
    owners = list((dispute or {}).get("owners") or [])
    if owners and owners[-1] == new_owner:
        owners.pop()
    return owners[-1] if owners else None


def _row(event_id: str, at: datetime, kind: str, dispute_id: str, recipient_kind: str,
         recipient_id: str, channel: str, body: dict[str, Any]) -> Row:
    return {
        "id": delivery_id(event_id, recipient_kind, recipient_id, channel),
        "event_id": event_id,
        "dispute_id": dispute_id,
        "type": kind,
        "recipient_kind": recipient_kind,
        "recipient_id": recipient_id,
        "channel": channel,
        "payload": body,
        "status": "pending",
        "attempts": 0,
        "retry_from": 0,
        "next_attempt_at": at,
        "lease_until": None,
        "last_error": None,
        "created_at": at,
        "delivered_at": None,
    }


def _result(event: DisputeResolved, registration_id: str) -> dict[str, Any]:
    credit = next((str(s.percent) for s in event.splits
                   if s.registration_id == registration_id), None)
    if registration_id in event.rejected_ids:
        status: str | None = "rejected"
    elif credit is not None or registration_id in event.approved_ids \
            or registration_id == event.awarded_registration_id:
        status = "approved"
    else:
        status = None  # unchanged by this resolution (e.g. merged into another dispute)
    return {"id": registration_id, "status": status, "credit_percent": credit}


def partner_rows(event_id: str, at: datetime, event: DisputeResolved,
                 registrations: Mapping[str, Row]) -> list[Row]:
    """One `dispute.resolved` webhook per partner with a registration in the dispute, in the
    partner view (the sender skips partners without a webhook URL)."""
    own: dict[str, list[str]] = {}
    holders: dict[str, partner_view.Holder] = {}
    for registration_id in event.registration_ids:
        row = registrations.get(registration_id) or {}
        partner = row.get("partner_id")
        if partner:
            own.setdefault(str(partner), []).append(registration_id)
            holders[registration_id] = partner_view.holder(
                "partner", str(partner), row.get("account_key"), row.get("account"))
    data = {**event.to_data(), "dispute_id": event.dispute_id}
    out: list[Row] = []
    for partner_id, ids in own.items():
        scope = partner_view.Scope.of(partner_view.Viewer("partner", partner_id), holders,
                                      event.registration_ids)
        body = partner_view.resolved_webhook(at.isoformat(), data,
                                             [_result(event, i) for i in ids], scope)
        out.append(_row(event_id, at, "dispute.resolved", event.dispute_id, "partner",
                        partner_id, "webhook", body))
    return out


def rows(event_id: str, at: datetime, event: DomainEvent, data: dict[str, Any] | None,
         dispute: Row | None, registrations: Mapping[str, Row] | None = None) -> list[Row]:
    """The deliveries a decision event causes. `dispute` is the dispute's read-model row
    as loaded (for the previous owner of an escalation and the owner of a resolution);
    `registrations` the rows of a resolved dispute's registrations (for their partners)."""
    kind = _TYPES.get(type(event))
    if kind is None:
        return []
    fields = dict(data) if data is not None else event.to_data()
    account_key = getattr(event, "account_key", None)
    dispute_id: str = getattr(event, "dispute_id", "")
    recipients: list[tuple[str, dict[str, Any]]] = []
    if isinstance(event, DisputeOpened | DisputeReminderDue):
        recipients.append((event.owner_id, {}))
    elif isinstance(event, DisputeEscalated):
        recipients.append((event.owner_id, {"role": "new_owner"}))
        previous = _previous_owner(dispute, event.owner_id)
        if previous is not None and previous != event.owner_id:
            recipients.append((previous, {"role": "previous_owner"}))
    elif isinstance(event, DisputeResolved):
        owner = (dispute or {}).get("owner_id")
        if owner:
            recipients.append((owner, {}))
    out: list[Row] = []
    for owner_id, extra in recipients:
        body = payload(kind, at, {"dispute": {"id": dispute_id, **fields},
                                  "account_key": account_key, **extra})
        for channel in CHANNELS:
            out.append(_row(event_id, at, kind, dispute_id, "owner", owner_id, channel, body))
    if isinstance(event, DisputeResolved):
        out.extend(partner_rows(event_id, at, event, registrations or {}))
    return out
