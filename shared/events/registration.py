"""Events about registrations: a partner's claim on an opportunity at an account."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import DomainEvent, event_type

Motion = Literal["resell", "referral", "co_sell", "influence"]
RegistrationStatus = Literal[
    "submitted", "approved", "rejected", "in_review", "expired", "withdrawn", "won", "lost"
]
PROTECTING: frozenset[str] = frozenset({"approved", "in_review"})
"""The statuses in which a registration or claim holds (or waits for) its protection: the
adjudicator's active entries, what a copy reported from another key guards, and the
decisions after which the edge re-reports (one rule, three readers)."""
PartyType = Literal["partner", "direct"]
MatchedBy = Literal["crm_account_id", "domain", "name"]


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Account(_Value):
    """The end customer as submitted, with its normalized facets beside the raw name."""

    name: str | None = None
    domain: str | None = None
    country: str | None = None
    crm_account_id: str | None = None


class Amount(_Value):
    value: Decimal
    currency: str


class Opportunity(_Value):
    title: str
    products: tuple[str, ...] = ()
    amount: Amount | None = None
    expected_close: date | None = None


class PartnerSnapshot(_Value):
    """The partner's standing when the registration was accepted, so rules need no look-up."""

    partner_id: str
    tier: str = "registered"
    status: str = "active"
    type: str = "reseller"


class ConflictEvidence(_Value):
    registration_id: str | None
    party_type: PartyType
    party_id: str | None = None
    matched_by: MatchedBy
    score: float
    account_key: str | None = None
    """The key the conflicting registration was filed under, when it differs from the
    decided one's (the same customer reached under two keys: see AccountsLinked)."""
    confident: bool = True
    """False for a name match inside the policy's review band (a possible duplicate)."""


@event_type
class RegistrationSubmitted(DomainEvent):
    """Accepted at the edge: validated, account resolved, policy and partner stamped."""

    TYPE: ClassVar[str] = "dealreg.registration.submitted.v1"

    registration_id: str
    partner_id: str
    partner: PartnerSnapshot
    account_key: str
    account: Account
    opportunity: Opportunity
    motion: Motion
    external_ref: str | None = None
    submitted_at: datetime
    policy_version: int


@event_type
class RegistrationDecided(DomainEvent):
    """The adjudicator's decision on a registration, explained by the rule that fired."""

    TYPE: ClassVar[str] = "dealreg.registration.decided.v1"

    registration_id: str
    partner_id: str
    account_key: str
    status: RegistrationStatus
    rule: str
    policy_version: int
    explanation: str
    conflicts: tuple[ConflictEvidence, ...] = ()
    decided_at: datetime
    protected_until: datetime | None = None
    dispute_id: str | None = None
    scope_products: tuple[str, ...] | None = None
    """The products the decision covers; None means the whole account (scope `account`)."""
    credit_percent: Decimal | None = None
    """Set when a dispute split the credit; None means full (or co-sell) credit."""
    extensions: int = 0
    flags: tuple[str, ...] = ()
    """Extra findings, e.g. `possible_duplicate` (a near match in the review band)."""
    unfiled_names: tuple[str, ...] = Field(default=(), exclude_if=lambda v: not v)
    """The normalised name forms this filing newly filed under `account_key` that the
    adjudicator took back because it was rejected at this decision (policy
    `match.rejected_names: unfiled`, session 29): the directory read model no longer files
    them under the key while this filing is their latest filer (`account_names_unfiled`,
    session 30). Written only when some were
    (a decision that unfiles nothing serializes as before); decisions written before
    session 29 lack it and unfile nothing."""
    unfiled_cofilers: tuple[str, ...] = Field(default=(), exclude_if=lambda v: not v)
    """With `unfiled_names` of a rejection after review: the filings (registrations or
    claims) that filed those forms under `account_key` while this one waited and were
    rejected themselves (they counted for nothing, `BroughtNames.rejected_void`). The
    directory read model takes the forms back from their rows too, as the latest filer of
    a form's row may be one of them (session 30 crfix). Written only when some were;
    older decisions lack it."""
    refiled_names: tuple[str, ...] = Field(default=(), exclude_if=lambda v: not v)
    """The normalised name forms an earlier rejection of this filing took back
    (`unfiled_names`) that the adjudicator files again under `account_key` now that the
    rejection is undone (this decision approves it or holds it in review: promoted next
    in line, contested, awarded; session 29): the directory read model files them again,
    in `refiled_country`, for good (no filer: session 30). Written only when
    non-empty."""
    refiled_country: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """The country of `refiled_names` (normalised as the filing's; None: the unknown
    country). Written only with `refiled_names`."""
