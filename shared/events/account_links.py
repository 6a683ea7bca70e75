"""Events that tie two account keys to one real customer.

The edge gives a new customer a key before adjudication sees it; two registrations for the
same customer arriving at once can therefore get two keys (one by domain, one by name or
CRM id). The adjudicator matches by the account's facts, not by key, so it still sees the
collision when both keys live on its partition, and says so with `AccountsLinked`: the
registration service aliases `account_key` to `canonical_key` in its directory so later
commands converge on one key, and projections show the two as one account.

When the two keys live on different partitions no single adjudicator sees both; the
registration service then appends `AccountLinkReported` (keyed by the canonical key) with
what it knows of the other key's active registrations, and the canonical key's adjudicator
opens a `cross_key` dispute if they collide with its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from shared.events.base import DomainEvent, event_type
from shared.events.registration import MatchedBy, Motion, PartyType, RegistrationStatus


@event_type
class AccountsLinked(DomainEvent):
    """Decision: `account_key` and `canonical_key` name the same customer."""

    TYPE: ClassVar[str] = "dealreg.account.linked.v1"

    account_key: str
    canonical_key: str
    matched_by: MatchedBy
    score: float
    registration_id: str | None = None
    linked_at: datetime
    policy_version: int
    rule: str = "accounts_linked"
    explanation: str


class ReportedRegistration(BaseModel):
    """What the edge's read model knows of a registration filed under the alias key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    registration_id: str
    party_type: PartyType
    party_id: str
    motion: Motion | Literal["direct"]
    products: tuple[str, ...] = ()
    status: RegistrationStatus
    submitted_at: datetime
    protected_until: datetime | None = None


@event_type
class AccountLinkReported(DomainEvent):
    """Intake: the registration service found `alias_key` to be `account_key`'s customer
    (keyed by `account_key`, the canonical key)."""

    TYPE: ClassVar[str] = "dealreg.account.link_reported.v1"

    account_key: str
    alias_key: str
    matched_by: MatchedBy
    score: float = 1.0
    registrations: tuple[ReportedRegistration, ...] = ()
    reported_at: datetime
    policy_version: int
