"""Resource shapes of the public contract (api-v1.md), shared by the command and query APIs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.events.registration import MatchedBy, PartyType, RegistrationStatus


class ConflictView(BaseModel):
    registration_id: str | None
    party_type: PartyType
    matched_by: MatchedBy
    score: float


class DecisionView(BaseModel):
    rule: str
    policy_version: int
    explanation: str
    conflicts: list[ConflictView] = Field(default_factory=list)


class RegistrationView(BaseModel):
    id: str
    partner_id: str | None
    account_key: str | None
    account: dict[str, Any] | None
    opportunity: dict[str, Any] | None
    motion: str | None
    external_ref: str | None = None
    status: RegistrationStatus
    submitted_at: datetime | None
    decided_at: datetime | None
    protected_until: datetime | None
    extensions: int = 0
    dispute_id: str | None = None
    credit_percent: Decimal | None = None
    decision: DecisionView | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RegistrationView:
        return cls.model_validate(row)


class OwnerView(BaseModel):
    party_type: PartyType
    party_id: str | None
    registration_id: str | None
    products: list[str]
    motion: str | None
    status: str
    protected_until: datetime | None
    credit_percent: Decimal | None = None


class OwnershipView(BaseModel):
    account_key: str | None
    owners: list[OwnerView]
    open_disputes: list[str] = Field(default_factory=list)


class Health(BaseModel):
    status: Literal["ok", "starting", "degraded"]
    detail: dict[str, Any] = Field(default_factory=dict)
