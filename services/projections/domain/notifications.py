"""The notifications model: decision events about disputes become outbox rows (pure).

Each row is one delivery: one notification to one recipient over one channel. Its id is
derived from the decision event id, the recipient and the channel, so a replay (or a second
projection process) writes the same ids and the store keeps the first (`ON CONFLICT DO
NOTHING`): a delivery is created effectively once, in the transaction that stores the
projection positions. The delivery worker (`services/projections/notifications.py`) sends
them. Addresses and secrets are not copied here: they are read at send time, so a changed
URL or a rotated secret applies to every pending delivery.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Final

import orjson

from shared.events import (
    DisputeEscalated,
    DisputeOpened,
    DisputeReminderDue,
    DisputeResolved,
    DomainEvent,
)

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


def rows(event_id: str, at: datetime, event: DomainEvent, data: dict[str, Any] | None,
         dispute: Row | None) -> list[Row]:
    """The deliveries a decision event causes. `dispute` is the dispute's read-model row
    as loaded (for the previous owner of an escalation and the owner of a resolution)."""
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
            out.append({
                "id": delivery_id(event_id, "owner", owner_id, channel),
                "event_id": event_id,
                "dispute_id": dispute_id,
                "type": kind,
                "recipient_kind": "owner",
                "recipient_id": owner_id,
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
            })
    return out
