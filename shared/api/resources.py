"""Resource shapes of the public contract (api-v1.md), shared by the command and query APIs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.registration import MatchedBy, PartyType, RegistrationStatus


class ConflictView(BaseModel):
    registration_id: str | None
    party_type: PartyType
    matched_by: MatchedBy | Literal["same_customer"] = Field(
        description="`same_customer` for a competitor's entry shown to a partner")
    score: float


class DecisionView(BaseModel):
    rule: str
    policy_version: int
    explanation: str
    conflicts: list[ConflictView] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list,
                             description="Extra findings, e.g. `possible_duplicate`")


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
    """One party protecting (part of) an account. `products` empty: the whole account.
    For a partner caller, a competitor's `party_id`, `registration_id`, `motion`,
    `credit_percent` and `since` are null, and equal competitor scopes are one entry."""

    party_type: PartyType
    party_id: str | None
    registration_id: str | None
    products: list[str]
    motion: str | None
    status: str
    protected_until: datetime | None
    credit_percent: Decimal | None = None
    since: datetime | None = Field(None, description="When this protection took effect")


class IncumbentView(BaseModel):
    """A party that won the account recently (`incumbent` precedence), until when."""

    party_type: PartyType
    party_id: str | None
    since: datetime | None = Field(description="Null for a partner caller when it is "
                                   "another party's")
    until: datetime | None


class AccountMatchView(BaseModel):
    matched_by: Literal["account_key", "crm_account_id", "domain", "name"]
    score: float = 1.0


class OwnershipView(BaseModel):
    account_key: str | None
    owners: list[OwnerView]
    open_disputes: list[str] = Field(
        default_factory=list,
        description="Open disputes on the account (for a partner: only those it is party to)")
    open_dispute_count: int = Field(
        0, description="How many open disputes (for a partner: of those it is party to)")
    incumbents: list[IncumbentView] = Field(default_factory=list)
    as_of: datetime | None = None
    match: AccountMatchView | None = None
    linked_keys: list[str] = Field(
        default_factory=list, description="Other keys found to be the same customer")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "account_key": "dom:acme.com",
        "owners": [{"party_type": "partner", "party_id": None, "registration_id": None,
                    "products": ["analytics"], "motion": None, "status": "approved",
                    "protected_until": "2027-04-06T09:00:00Z", "credit_percent": None,
                    "since": "2027-01-06T09:00:00Z"}],
        "open_disputes": [], "open_dispute_count": 0, "incumbents": [],
        "as_of": "2027-02-01T00:00:00Z", "match": {"matched_by": "domain", "score": 1.0},
        "linked_keys": [],
    }]})


class SplitView(BaseModel):
    registration_id: str | None
    percent: Decimal


class ProductAwardView(BaseModel):
    product: str
    registration_id: str | None


class ResolutionView(BaseModel):
    outcome: str = Field(description="award | split | co_sell | reject_all | distinct | "
                                     "final_breach_fallback | moot | merged")
    registration_id: str | None = Field(None, description="The awarded registration")
    splits: list[SplitView] = Field(default_factory=list)
    awards: list[ProductAwardView] = Field(
        default_factory=list, description="An award by product: who won which product")
    approved_ids: list[str | None] = Field(default_factory=list)
    rejected_ids: list[str | None] = Field(default_factory=list)
    resolved_by: str | None = None
    note: str = Field("", description="Internal: owners, channel roles and admins only")
    partner_note: str | None = Field(
        None, description="Written for the involved partners (the only resolution text "
        "partners receive)")
    merged_into: str | None = None
    resolved_at: datetime | None = None
    rule: str | None = None
    explanation: str | None = None


class BreachView(BaseModel):
    level: int
    deadline: datetime
    outcome: Literal["escalated", "kept_open", "fallback"]


class RefusalView(BaseModel):
    """Adjudication's refusal of a staff command on a dispute (nothing changed)."""

    action: str = Field(description="acknowledge | resolve")
    reason: str = Field(description="e.g. invalid_resolution, already_resolved, not_assigned")
    explanation: str
    actor_id: str | None = None
    refused_at: datetime | None = None
    command_id: str = Field(description="the refused command's event id (its timeline entry)")


class DisputeView(BaseModel):
    """A dispute. For a partner caller (the partner view, `shared/api/partner_view.py`):
    only its own registrations are listed, the resolution shows `partner_note` but not
    `note` or `resolved_by`, and text names no other party."""

    id: str
    status: Literal["open", "resolved"]
    level: int
    owner_id: str | None
    due_at: datetime | None
    acknowledged_at: datetime | None
    registration_ids: list[str | None]
    resolution: ResolutionView | None = None
    account_key: str | None = None
    reason: str | None = None
    opened_at: datetime | None = None
    reminder_at: datetime | None = None
    resolved_at: datetime | None = None
    breached: bool = Field(False, description="Past the last level's deadline, kept open")
    breaches: list[BreachView] = Field(default_factory=list)
    explanation: str | None = None
    last_refusal: RefusalView | None = Field(None, description=(
        "Set when the latest acknowledge or resolve sent on this dispute was refused by "
        "adjudication (nothing changed; e.g. an award naming a member that left): why. "
        "Staff only; partners never see it."))

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "dsp_5f0c1e9a7b2d4c6e8a0b1c2d3e", "status": "open", "level": 1, "owner_id": "cm-1",
        "due_at": "2027-01-08T09:00:00Z", "acknowledged_at": None,
        "registration_ids": ["reg_01jd2x", "reg_01jd1y"], "resolution": None,
        "account_key": "dom:acme.com", "reason": "tie",
        "opened_at": "2027-01-06T09:00:00Z", "reminder_at": "2027-01-07T09:00:00Z",
        "resolved_at": None, "breached": False, "breaches": [], "explanation": "...",
    }]})


class Health(BaseModel):
    status: Literal["ok", "starting", "degraded"]
    detail: dict[str, Any] = Field(default_factory=dict)
