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
opens a `cross_key` dispute if they collide with its own. Reports are snapshots, repeated
ahead of every new registration on the canonical key (and once a registration is decided
approved, for keys of its customer its own reports did not cover: two first registrations
racing across partitions); `AccountsUnlinked` says a link
ended with the registrations that justified it (services/adjudication/DESIGN.md).
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


@event_type
class AccountsUnlinked(DomainEvent):
    """Decision: the link between `account_key` and `canonical_key` (an earlier
    `AccountsLinked`) no longer holds: every registration that showed the two keys to be
    one customer has ended (`registration_id` is the last of them). Readers drop the link;
    the facts filed under each key stay."""

    TYPE: ClassVar[str] = "dealreg.account.unlinked.v1"

    account_key: str
    canonical_key: str
    registration_id: str | None = None
    unlinked_at: datetime
    policy_version: int
    rule: str = "accounts_unlinked"
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
    tier: str = ""
    """The partner's tier at submission ("" when unknown: reports before it was carried)."""
    whole_account: bool = False
    """Decided under a policy with `scope: account`: it holds the whole account whatever
    its products, also after the policy narrows (False in reports before it was carried)."""


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
    """Every active registration under `alias_key` as the edge's read model knows it: a
    snapshot, so a copy reported earlier and missing now (or reported ended) has ended."""
    reported_at: datetime
    policy_version: int
    registration_id: str | None = None
    """The registration (under `account_key`) whose account matched both keys, appended
    right after this report: with the copies, what justifies the link."""
    partial: bool = False
    """True when the read model held more active registrations than were listed: copies
    not listed are then not taken to have ended."""
    possible_duplicate: bool = False
    """True when the edge found `alias_key` only a *possible* duplicate of the account of
    `registration_id` (an identifier agrees and another contradicts it -- the same domain
    under another CRM id -- or a name in the review band): the copies guard, nothing is
    linked, and that registration goes to a person (`possible_duplicate` review)."""
    after_decision: bool = False
    """Sent by the post-decision re-report (session 24): both sides were decided before
    either was in the other's report. With `possible_duplicate`, the core opens the
    `possible_duplicate` review the sequential case would have opened, over each fresh
    copy and the entries of `account_key` it overlaps (reports before this field: False,
    decided as before)."""
