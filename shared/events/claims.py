"""Events about direct claims: a rep's (or the CRM's) claim on a named account or an
opportunity. Claims compete with partner registrations under the same rules of engagement;
a named-account claim is what `direct_named_account` precedence protects.

A partner's influence claim on someone else's deal is a registration with motion
`influence` (see `registration.py`): non-exclusive, so it never collides with the owner.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import Field

from shared.events.base import DomainEvent, event_type
from shared.events.registration import Account, ConflictEvidence, RegistrationStatus

ClaimKind = Literal["named_account", "opportunity"]


@event_type
class ClaimFiled(DomainEvent):
    """Accepted at the edge: account resolved, policy version stamped.

    A named-account claim covers the whole account (every product); an opportunity claim
    covers `products` (all of them when empty).
    """

    TYPE: ClassVar[str] = "dealreg.claim.filed.v1"

    claim_id: str
    kind: ClaimKind
    rep_id: str
    account_key: str
    account: Account
    products: tuple[str, ...] = ()
    filed_at: datetime
    policy_version: int


@event_type
class ClaimReleased(DomainEvent):
    """The rep (or the CRM) gives the claim up; its protection ends."""

    TYPE: ClassVar[str] = "dealreg.claim.released.v1"

    claim_id: str
    rep_id: str
    account_key: str
    released_at: datetime
    policy_version: int | None = None


@event_type
class ClaimDecided(DomainEvent):
    """The adjudicator's decision on a claim: the same shape as a registration decision."""

    TYPE: ClassVar[str] = "dealreg.claim.decided.v1"

    claim_id: str
    kind: ClaimKind
    rep_id: str
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
    credit_percent: Decimal | None = None
    flags: tuple[str, ...] = ()
    unfiled_names: tuple[str, ...] = Field(default=(), exclude_if=lambda v: not v)
    """As `RegistrationDecided.unfiled_names`."""
    unfiled_cofilers: tuple[str, ...] = Field(default=(), exclude_if=lambda v: not v)
    """As `RegistrationDecided.unfiled_cofilers`."""
    refiled_names: tuple[str, ...] = Field(default=(), exclude_if=lambda v: not v)
    """As `RegistrationDecided.refiled_names`."""
    refiled_country: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """As `RegistrationDecided.refiled_country`."""
