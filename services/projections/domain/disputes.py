"""Folding dispute decisions into the dispute queue: one row per dispute, its members, and
the SLA breaches of its levels.

Every event folded here is a decision about one dispute, produced by the adjudicator of
the dispute's account and written in order on one decisions partition, so a dispute row
only ever sees its events in log order. A row is created by whichever event comes first,
so a dispute whose opening predates a partial replay still gets a (partial) row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.events import (
    DisputeAcknowledgementRecorded,
    DisputeEscalated,
    DisputeJoined,
    DisputeOpened,
    DisputeReminderDue,
    DisputeResolved,
    DisputeSlaBreached,
)

Row = dict[str, Any]

ESCALATED = "escalated"
KEPT_OPEN = "kept_open"
FALLBACK = "fallback"


def empty_dispute(dispute_id: str) -> Row:
    return {
        "id": dispute_id,
        "account_key": None,
        "status": "open",
        "reason": None,
        "level": 1,
        "owner_id": None,
        "owners": [],
        "opened_at": None,
        "due_at": None,
        "reminder_at": None,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "registration_ids": [],
        "breached": False,
        "resolution": None,
        "outcome": None,
        "resolved_at": None,
        "resolve_ms": None,
        "rule": None,
        "explanation": None,
        "policy_version": None,
    }


def _assign(row: Row, owner_id: str) -> None:
    row["owner_id"] = owner_id
    if owner_id not in row["owners"]:
        row["owners"] = [*row["owners"], owner_id]


def _members(row: Row, ids: tuple[str, ...]) -> None:
    merged = list(row["registration_ids"])
    merged.extend(i for i in ids if i not in merged)
    row["registration_ids"] = merged


def _resolve_ms(row: Row) -> None:
    opened: datetime | None = row["opened_at"]
    resolved: datetime | None = row["resolved_at"]
    if opened is not None and resolved is not None:
        row["resolve_ms"] = max(0, round((resolved - opened).total_seconds() * 1000))


def apply_opened(row: Row, event: DisputeOpened, carried: Row | None = None) -> Row:
    """`carried`: the row of the open dispute this one carries on (`event.carries_on`),
    merged into it just before (its `DisputeResolved` precedes this opening in the log).
    Adjudication carried its level, owner and deadlines (this event's own fields) and its
    acknowledgement and final-level breach (not in this event): read from its row, as of
    now, so that the queue reads what adjudication holds (an owner's acknowledge of it is
    refused as already done). None (no such row: a partial replay): not carried."""
    if carried is not None:
        row.update(acknowledged_at=carried["acknowledged_at"],
                   acknowledged_by=carried["acknowledged_by"],
                   breached=row["breached"] or carried["breached"])
    row.update(
        account_key=event.account_key,
        reason=event.reason,
        level=event.level,
        opened_at=event.opened_at,
        due_at=event.due_at,
        reminder_at=event.reminder_at,
        rule=event.rule,
        explanation=event.explanation,
        policy_version=event.policy_version,
    )
    _assign(row, event.owner_id)
    _members(row, event.registration_ids)
    _resolve_ms(row)
    return row


def apply_joined(row: Row, event: DisputeJoined) -> Row:
    row["account_key"] = row["account_key"] or event.account_key
    if event.reason is not None:  # a review that a collision joined is a collision now
        row["reason"] = event.reason
    if event.due_at is not None:  # the joiner's policy moved the deadline onto its unit
        row["due_at"] = event.due_at
    _members(row, event.registration_ids)
    return row


def apply_acknowledged(row: Row, event: DisputeAcknowledgementRecorded) -> Row:
    row.update(acknowledged_at=event.acknowledged_at, acknowledged_by=event.actor_id)
    return row


def apply_reminder(row: Row, event: DisputeReminderDue) -> Row:
    row.update(reminder_at=event.reminder_at, due_at=event.due_at)
    return row


def apply_escalated(row: Row, event: DisputeEscalated) -> tuple[Row, Row]:
    """The level's deadline passed: the next owner has it now (acknowledgement resets).
    Returns the row and the breach of the level that was left."""
    row.update(level=event.to_level, due_at=event.due_at, reminder_at=event.reminder_at,
               acknowledged_at=None, acknowledged_by=None)
    _assign(row, event.owner_id)
    return row, breach(event.dispute_id, event.from_level, event.breached_deadline, ESCALATED)


def apply_sla_breached(row: Row, event: DisputeSlaBreached) -> tuple[Row, Row]:
    row["breached"] = True
    return row, breach(event.dispute_id, event.level, event.breached_deadline, KEPT_OPEN)


def apply_resolved(row: Row, event: DisputeResolved) -> tuple[Row, Row | None]:
    """Settled (or merged into another dispute). A final-breach fallback is also a breach
    of the last level, reported with it."""
    _members(row, event.registration_ids)
    row["account_key"] = row["account_key"] or event.account_key
    row.update(
        status="resolved",
        level=event.level,
        resolved_at=event.resolved_at,
        outcome=event.outcome,
        resolution={
            "outcome": event.outcome,
            "registration_id": event.awarded_registration_id,
            "splits": [s.model_dump(mode="json") for s in event.splits],
            # A list of {product, registration_id}: redaction nulls a competitor's id there
            # like any other registration_id (a {product: id} map would leak it).
            "awards": [a.model_dump(mode="json") for a in event.awards],
            "approved_ids": list(event.approved_ids),
            "rejected_ids": list(event.rejected_ids),
            "resolved_by": event.resolved_by,
            "actor_role": event.actor_role,
            "note": event.note,
            "partner_note": event.partner_note,
            "merged_into": event.merged_into,
            "resolved_at": event.resolved_at.isoformat(),
            "rule": event.rule,
            "policy_version": event.policy_version,
            "explanation": event.explanation,
        },
    )
    if event.outcome == "merged":
        row["resolve_ms"] = None  # absorbed, not settled: no time-to-resolve of its own
    else:
        _resolve_ms(row)
    if event.outcome == "final_breach_fallback":
        return row, breach(event.dispute_id, event.level, event.resolved_at, FALLBACK)
    return row, None


def breach(dispute_id: str, level: int, deadline: datetime, outcome: str) -> Row:
    return {"dispute_id": dispute_id, "level": level, "deadline": deadline, "outcome": outcome}


def member_rows(dispute_id: str, member_ids: tuple[str, ...] | list[str]) -> list[Row]:
    return [{"dispute_id": dispute_id, "member_id": m} for m in member_ids]
