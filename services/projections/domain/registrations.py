"""Folding registration and claim events into their current-state rows.

A row is the merge of two disjoint halves: the facts of the submission (intake topic) and
the state the adjudicator's decisions give it (decisions topic). Each half is written only
by its own events, and decisions about one registration arrive in log order (one decisions
partition per account), so the row is the same whichever topic is applied first.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from shared.events import (
    Amount,
    ClaimDecided,
    ClaimFiled,
    ProtectionEnded,
    ProtectionExtended,
    RegistrationDecided,
    RegistrationSubmitted,
)

Row = dict[str, Any]

DECIDED = frozenset({"approved", "rejected", "in_review", "expired", "withdrawn", "won", "lost"})
AUTO_RULES = frozenset({"no_conflict", "non_exclusive"})
"""First-decision rules that approve without a person (auto-approval in program metrics)."""

E4 = Decimal(10_000)


def to_e4(value: Decimal) -> int:
    """Money in ten-thousandths (exact: the API accepts at most four decimal places)."""
    return int((value * E4).to_integral_value())


def from_e4(value: int) -> Decimal:
    """Back to a decimal: two places when that is exact (the usual case), else four."""
    places = Decimal("0.01") if value % 100 == 0 else Decimal("0.0001")
    return (Decimal(value) / E4).quantize(places)


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
        "scope_products": None,
        "amount_e4": None,
        "currency": None,
        "ended_at": None,
        "end_reason": None,
        "closed_amount_e4": None,
        "closed_currency": None,
        "incumbent_until": None,
        "first_decided_at": None,
        "first_rule": None,
        "collided": None,
        "decision_latency_ms": None,
        "settled_at": None,
        "settle_ms": None,
    }


def empty_claim(claim_id: str) -> Row:
    return {
        "id": claim_id,
        "kind": None,
        "rep_id": None,
        "account_key": None,
        "account": None,
        "products": None,
        "status": "submitted",
        "filed_at": None,
        "decided_at": None,
        "protected_until": None,
        "extensions": 0,
        "dispute_id": None,
        "credit_percent": None,
        "decision": None,
        "policy_version": None,
        "scope_products": None,
        "ended_at": None,
        "end_reason": None,
    }


def _latency(row: Row) -> None:
    submitted: datetime | None = row["submitted_at"]
    decided: datetime | None = row["first_decided_at"]
    if submitted is not None and decided is not None:
        row["decision_latency_ms"] = max(0, round((decided - submitted).total_seconds() * 1000))
    settled: datetime | None = row.get("settled_at")
    if submitted is not None and settled is not None:
        row["settle_ms"] = max(0, round((settled - submitted).total_seconds() * 1000))


def _json(model: BaseModel) -> Any:
    """`model.model_dump(mode="json")`: its serializer called with the same (default)
    options, without `model_dump`'s Python wrapper, which cost as much as the dump itself
    (a rebuild dumps two or three models per registration)."""
    return model.__pydantic_serializer__.to_python(model, mode="json")


def _decision(rule: str, policy_version: int, explanation: str, conflicts: Any,
              flags: tuple[str, ...]) -> dict[str, Any]:
    return {
        "rule": rule,
        "policy_version": policy_version,
        "explanation": explanation,
        "conflicts": [_json(c) for c in conflicts],
        "flags": list(flags),
    }


def apply_submitted(row: Row, event: RegistrationSubmitted) -> Row:
    amount = event.opportunity.amount
    row.update(
        partner_id=event.partner_id,
        account_key=event.account_key,
        account=_json(event.account),
        opportunity=_json(event.opportunity),
        motion=event.motion,
        external_ref=event.external_ref,
        submitted_at=event.submitted_at,
        policy_version=row["policy_version"] or event.policy_version,
        amount_e4=to_e4(amount.value) if amount else None,
        currency=amount.currency if amount else None,
    )
    if row["status"] not in DECIDED:
        row["status"] = "submitted"
    _latency(row)
    return row


def apply_decided(row: Row, event: RegistrationDecided) -> Row:
    if row["first_decided_at"] is None:
        row["first_decided_at"] = event.decided_at
        row["first_rule"] = event.rule
        row["collided"] = bool(event.conflicts)
    if row.get("settled_at") is None and event.status != "in_review":
        # Time to decision as the partner lives it: `in_review` (a tie window, a possible
        # duplicate, a dispute) is still waiting; the first approval or rejection settles.
        row["settled_at"] = event.decided_at
    row.update(
        partner_id=row["partner_id"] or event.partner_id,
        account_key=row["account_key"] or event.account_key,
        status=event.status,
        decided_at=event.decided_at,
        protected_until=event.protected_until,
        extensions=event.extensions,
        dispute_id=event.dispute_id or row["dispute_id"],
        credit_percent=event.credit_percent,
        policy_version=event.policy_version,
        scope_products=list(event.scope_products) if event.scope_products is not None else None,
        decision=_decision(event.rule, event.policy_version, event.explanation,
                           event.conflicts, event.flags),
    )
    _latency(row)
    return row


def overruled(row: Row) -> bool:
    """Whether the row was rejected: a settlement on another partition can reject a copy of
    a registration that its own partition still holds approved (DESIGN.md, "The cross-key
    race"); that partition's later extensions, holds and end (expiry, withdrawal, close)
    of it change nothing here. The adjudicator itself never extends or ends what it
    rejected."""
    return bool(row["status"] == "rejected")


def apply_extended(row: Row, event: ProtectionExtended) -> Row:
    if overruled(row):
        return row
    row.update(protected_until=event.protected_until, extensions=event.extensions)
    return row


def apply_ended(row: Row, event: ProtectionEnded, *, claim: bool = False) -> Row:
    if overruled(row):
        return row
    row.update(status=event.status, ended_at=event.ended_at, end_reason=event.reason)
    if claim:
        return row
    if event.incumbent_until is not None:
        row["incumbent_until"] = event.incumbent_until
    if event.amount is not None:
        _closed_amount(row, event.amount)
    return row


def _closed_amount(row: Row, amount: Amount) -> None:
    row["closed_amount_e4"] = to_e4(amount.value)
    row["closed_currency"] = amount.currency


def apply_dispute_member(row: Row, dispute_id: str) -> Row:
    """The registration was drawn into (or moved to) this dispute."""
    row["dispute_id"] = dispute_id
    return row


def apply_claim_filed(row: Row, event: ClaimFiled) -> Row:
    row.update(
        kind=event.kind,
        rep_id=event.rep_id,
        account_key=event.account_key,
        account=_json(event.account),
        products=list(event.products),
        filed_at=event.filed_at,
        policy_version=row["policy_version"] or event.policy_version,
    )
    if row["status"] not in DECIDED:
        row["status"] = "submitted"
    return row


def apply_claim_decided(row: Row, event: ClaimDecided) -> Row:
    row.update(
        kind=row["kind"] or event.kind,
        rep_id=row["rep_id"] or event.rep_id,
        account_key=row["account_key"] or event.account_key,
        status=event.status,
        decided_at=event.decided_at,
        protected_until=event.protected_until,
        dispute_id=event.dispute_id or row["dispute_id"],
        credit_percent=event.credit_percent,
        policy_version=event.policy_version,
        scope_products=list(event.scope_products) if event.scope_products is not None else None,
        decision=_decision(event.rule, event.policy_version, event.explanation,
                           event.conflicts, event.flags),
    )
    return row


def sourced(motion: str | None) -> bool:
    """Partner-sourced (resell, co-sell) as opposed to influenced (referral, influence)."""
    return motion in ("resell", "co_sell")
