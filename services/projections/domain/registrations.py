"""Folding registration events into registration rows."""

from __future__ import annotations

from typing import Any

from shared.events import RegistrationDecided, RegistrationSubmitted

Row = dict[str, Any]

# Statuses a submission must never overwrite: a decision already arrived.
_DECIDED = {"approved", "rejected", "in_review", "expired", "withdrawn", "won", "lost"}


def empty_row(registration_id: str) -> Row:
    return {
        "id": registration_id,
        "partner_id": None,
        "account_key": None,
        "account": None,
        "opportunity": None,
        "motion": None,
        "external_ref": None,
        "status": "submitted",
        "submitted_at": None,
        "decided_at": None,
        "protected_until": None,
        "extensions": 0,
        "dispute_id": None,
        "credit_percent": None,
        "decision": None,
        "policy_version": None,
    }


def apply_submitted(row: Row, event: RegistrationSubmitted) -> Row:
    row.update(
        partner_id=event.partner_id,
        account_key=event.account_key,
        account=event.account.model_dump(mode="json"),
        opportunity=event.opportunity.model_dump(mode="json"),
        motion=event.motion,
        external_ref=event.external_ref,
        submitted_at=event.submitted_at,
        policy_version=row["policy_version"] or event.policy_version,
    )
    if row["status"] not in _DECIDED:
        row["status"] = "submitted"
    return row


def apply_decided(row: Row, event: RegistrationDecided) -> Row:
    row.update(
        partner_id=row["partner_id"] or event.partner_id,
        account_key=row["account_key"] or event.account_key,
        status=event.status,
        decided_at=event.decided_at,
        protected_until=event.protected_until,
        dispute_id=event.dispute_id,
        policy_version=event.policy_version,
        decision={
            "rule": event.rule,
            "policy_version": event.policy_version,
            "explanation": event.explanation,
            "conflicts": [c.model_dump(mode="json") for c in event.conflicts],
        },
    )
    return row
