"""Events about disputes: a collision a person must settle, and its escalation ladder.

Intake events are what parties and escalation owners ask for; the adjudicator answers with
the decision events below, or with `DisputeActionRejected` when it refuses (the API maps
`unknown_dispute` to 404, `not_assigned`/`not_party` to 403, the rest to 409).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import DomainEvent, event_type
from shared.events.registration import ConflictEvidence

ActorRole = Literal["owner", "admin"]
Outcome = Literal["award", "split", "co_sell", "reject_all", "distinct"]
"""`distinct` settles a possible-duplicate review: the accounts are different customers,
so every registration in the dispute stands on its own (approved)."""
ResolvedOutcome = Literal[
    "award", "split", "co_sell", "reject_all", "distinct", "final_breach_fallback", "moot",
    "merged",
]
OpenReason = Literal["tie", "challenger", "possible_duplicate", "contested", "cross_key"]
DisputeAction = Literal["file", "acknowledge", "resolve"]
DisputeRefusal = Literal[
    "unknown_dispute", "unknown_registration", "not_assigned", "not_party",
    "already_resolved", "already_acknowledged", "already_disputed", "not_disputable",
    "invalid_resolution", "partner_inactive", "contest_window_passed",
]


class ProductAward(BaseModel):
    """One product of a partial award: `registration_id` owns `product` from now on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product: str
    registration_id: str


class Split(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    registration_id: str
    percent: Decimal = Field(gt=0, le=100)


# --- intake ------------------------------------------------------------------------------


@event_type
class DisputeFiled(DomainEvent):
    """A partner contests the decision on its own registration (`POST .../disputes`)."""

    TYPE: ClassVar[str] = "dealreg.dispute.filed.v1"

    dispute_id: str
    registration_id: str
    partner_id: str
    account_key: str
    reason: str
    filed_at: datetime
    policy_version: int


class RelayedDecision(BaseModel):
    """What a settlement decided about one registration it held only as a copy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    registration_id: str
    status: Literal["approved", "rejected"]
    credit_percent: Decimal | None = None
    scope_products: tuple[str, ...] | None = None
    """The products it was awarded (an award by product); None: its scope unchanged."""
    shown: bool = True
    """Whether the settlement sent readers a decision about it (not for a copy it left in
    review: `approved` then only says what the settlement gave it)."""
    line_free: bool = False
    """A rejection that left its scope held by nothing the settlement kept: its own
    partition lets its line step up (`on_release: promote_next`) as after any lost dispute."""
    kept: bool = False
    """An approval the settlement kept as it was, alone (nothing else it approved, and no
    other open review here holds the copy): nothing to apply; its own partition no longer
    counts that review as watching it (`release.let_go`)."""


@event_type
class SettlementRelayed(DomainEvent):
    """A dispute settled on another key (another partition) decided registrations filed
    under `account_key`, which it held only as copies: the adjudicator that decided it
    appends this to the intake of their own key, in the same transaction as the decision,
    and their own partition applies it (DESIGN.md, "A settlement's word reaches the copy's
    own partition"). One per settlement and key; its id derives from the settlement's
    input event id (`<input>.r<n>`)."""

    TYPE: ClassVar[str] = "dealreg.dispute.settlement_relayed.v1"

    account_key: str
    dispute_id: str
    decided_key: str
    """The key the settling dispute was on (another key of the same customer)."""
    outcome: ResolvedOutcome
    rule: str
    policy_version: int
    decided_at: datetime
    decisions: tuple[RelayedDecision, ...]


@event_type
class CopiesInReview(DomainEvent):
    """A dispute on another key (another partition) holds copies of registrations filed
    under `account_key` (`Entry.mirror`): the adjudicator that drew them in appends this to
    the intake of their own key, in the same transaction as the decision, so their own
    partition knows where to tell their end (DESIGN.md, "A home decision reaches the review
    elsewhere that holds a copy"). Its id derives from the input event id (`<input>.r<n>`)."""

    TYPE: ClassVar[str] = "dealreg.dispute.copies_in_review.v1"

    account_key: str
    dispute_id: str
    review_key: str
    """A key on the review's partition (one of its own members'): the end goes there."""
    registration_ids: tuple[str, ...]
    drawn_at: datetime
    contested_by: str | None = None
    """The partner whose contest opened the review (none: not a contest)."""
    appealed: tuple[str, ...] = ()
    """Of `registration_ids`, those `contested_by` contested losing to: their own partition
    remembers the appeal, so a contest there against the same registration is a second
    one (DESIGN.md, "Contests end"). Empty in events written before (session 25)."""
    appealed_here: tuple[str, ...] = ()
    """The review partition's own registrations (not copies) `contested_by` contested
    losing to: the partition of `account_key` remembers the appeal beside the copies of
    them it holds, so a contest there against such a copy is a second one (DESIGN.md,
    "Contests end"); sent also, with `registration_ids` empty, to a review key elsewhere
    that holds a copy of one of them (`state.watchers`). Empty in events written before
    (session 26)."""


class EndedAtHome(BaseModel):
    """How a registration ended on its own partition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    registration_id: str
    status: str
    """`rejected`, `withdrawn`, `won`, `lost`, `expired` (or `unknown`: forgotten there)."""


@event_type
class HomeEndRelayed(DomainEvent):
    """Registrations a review on `account_key`'s partition holds as copies (it said so by
    `CopiesInReview`) ended on their own partition, under `home_key`: that partition's
    adjudicator appends this to the intake of `account_key` in the same transaction as the
    decision that ended them, and the review's partition ends the copies like a report
    listing them ended, so the review never waits on them (invariant 5)."""

    TYPE: ClassVar[str] = "dealreg.registration.end_relayed.v1"

    account_key: str
    home_key: str
    ended: tuple[EndedAtHome, ...]
    ended_at: datetime


@event_type
class DisputeAcknowledged(DomainEvent):
    """The assigned owner (or an admin) took the dispute in hand."""

    TYPE: ClassVar[str] = "dealreg.dispute.acknowledged.v1"

    dispute_id: str
    account_key: str
    actor_id: str
    actor_role: ActorRole
    acknowledged_at: datetime
    policy_version: int | None = None


@event_type
class DisputeResolutionSubmitted(DomainEvent):
    """The assigned owner (or an admin) settles the dispute."""

    TYPE: ClassVar[str] = "dealreg.dispute.resolution_submitted.v1"

    dispute_id: str
    account_key: str
    actor_id: str
    actor_role: ActorRole
    outcome: Outcome
    registration_id: str | None = None
    splits: tuple[Split, ...] = ()
    awards: tuple[ProductAward, ...] = ()
    """An `award` by product (instead of one `registration_id`): each named registration
    wins the products given, so a dispute that bridges two scopes settles exactly."""
    note: str = ""
    """Internal: escalation owners, channel roles and admins only."""
    partner_note: str | None = None
    """For the involved partners (optional; added later, absent from older events)."""
    submitted_at: datetime
    policy_version: int | None = None


# --- decisions ---------------------------------------------------------------------------


@event_type
class DisputeOpened(DomainEvent):
    TYPE: ClassVar[str] = "dealreg.dispute.opened.v1"

    dispute_id: str
    account_key: str
    registration_ids: tuple[str, ...]
    reason: OpenReason
    level: int
    owner_id: str
    opened_at: datetime
    due_at: datetime
    reminder_at: datetime | None = None
    policy_version: int
    rule: str
    explanation: str
    evidence: tuple[ConflictEvidence, ...] = ()
    carries_on: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """The open dispute whose level, owner, deadlines and acknowledgement this one took
    over (a contest drawing in members already in review: `draw_into_dispute`; that
    dispute is merged into this one), so its deadlines count from that dispute's opening,
    not its own. None: its ladder starts at its opening. Written only when set (an opening
    that carries nothing serializes as before); openings written before session 28 lack it
    and are read by their sentence (`partner_view.carries_on`)."""


@event_type
class DisputeJoined(DomainEvent):
    """More registrations were drawn into an open dispute (a later rival, or a merge)."""

    TYPE: ClassVar[str] = "dealreg.dispute.joined.v1"

    dispute_id: str
    account_key: str
    added_ids: tuple[str, ...]
    registration_ids: tuple[str, ...]
    joined_at: datetime
    policy_version: int
    explanation: str
    evidence: tuple[ConflictEvidence, ...] = ()
    reason: OpenReason | None = None
    """The dispute's reason from now on, when the join changed it (a confident rival
    joining a possible-duplicate or cross-key review makes it a collision); None: unchanged."""
    due_at: datetime | None = Field(default=None, exclude_if=lambda v: v is None)
    """The level's deadline from now on, when the join moved it onto the joiner's policy's
    `escalation.deadline_unit` (session 30: a dispute opened under a document without a
    unit); None: unchanged, and left out, so a join that moves nothing serializes as before."""


@event_type
class DisputeAcknowledgementRecorded(DomainEvent):
    TYPE: ClassVar[str] = "dealreg.dispute.acknowledgement_recorded.v1"

    dispute_id: str
    account_key: str
    level: int
    owner_id: str
    actor_id: str
    acknowledged_at: datetime
    policy_version: int


@event_type
class DisputeReminderDue(DomainEvent):
    """The current level's deadline is near and the owner has not acknowledged."""

    TYPE: ClassVar[str] = "dealreg.dispute.reminder_due.v1"

    dispute_id: str
    account_key: str
    level: int
    owner_id: str
    reminder_at: datetime
    due_at: datetime
    policy_version: int


@event_type
class DisputeEscalated(DomainEvent):
    """A level's deadline passed: the next level's owner has the dispute now."""

    TYPE: ClassVar[str] = "dealreg.dispute.escalated.v1"

    dispute_id: str
    account_key: str
    from_level: int
    to_level: int
    owner_id: str
    breached_deadline: datetime
    due_at: datetime
    reminder_at: datetime | None = None
    policy_version: int
    explanation: str


@event_type
class DisputeSlaBreached(DomainEvent):
    """The last level's deadline passed and policy says `keep_open`: nobody is left to
    escalate to, the dispute stays with the last owner and is reported as breached."""

    TYPE: ClassVar[str] = "dealreg.dispute.sla_breached.v1"

    dispute_id: str
    account_key: str
    level: int
    owner_id: str
    breached_deadline: datetime
    policy_version: int
    explanation: str


@event_type
class DisputeResolved(DomainEvent):
    """Settled: by a person (`award`, `split`, `co_sell`, `reject_all`, `distinct`), by the
    final-breach fallback, because it became moot (its rivals withdrew, expired or closed),
    or by being merged into another open dispute (`merged_into`). The per-registration
    results follow as RegistrationDecided / ClaimDecided events."""

    TYPE: ClassVar[str] = "dealreg.dispute.resolved.v1"

    dispute_id: str
    account_key: str
    outcome: ResolvedOutcome
    registration_ids: tuple[str, ...]
    awarded_registration_id: str | None = None
    splits: tuple[Split, ...] = ()
    awards: tuple[ProductAward, ...] = ()
    approved_ids: tuple[str, ...] = ()
    rejected_ids: tuple[str, ...] = ()
    resolved_by: str | None = None
    actor_role: ActorRole | None = None
    note: str = ""
    """Internal: escalation owners, channel roles and admins only."""
    partner_note: str | None = None
    """For the involved partners (optional; added later, absent from older events)."""
    merged_into: str | None = None
    level: int
    resolved_at: datetime
    rule: str
    policy_version: int
    explanation: str


@event_type
class DisputeActionRejected(DomainEvent):
    """Adjudication refused a dispute action; nothing changed."""

    TYPE: ClassVar[str] = "dealreg.dispute.action_rejected.v1"

    dispute_id: str
    account_key: str
    action: DisputeAction
    actor_id: str
    reason: DisputeRefusal
    rule: str
    policy_version: int
    explanation: str
    decided_at: datetime
