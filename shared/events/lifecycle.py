"""Events about the life of a protection after its first decision: extension, withdrawal,
the CRM closing the opportunity, the partner's standing changing, and how it ends.

Intake events (commands accepted at the edge) come first, then the adjudicator's answers.
`registration_id` names a registration or a claim: both are protected the same way.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Literal

from shared.events.base import DomainEvent, event_type
from shared.events.registration import Amount, PartyType, RegistrationStatus

PartnerStatus = Literal["onboarding", "active", "suspended", "exited"]
EndReason = Literal["expired", "withdrawn", "won", "lost", "partner_exited", "released"]
LifecycleAction = Literal["extend", "withdraw", "close"]
LifecycleRefusal = Literal["unknown_registration", "not_party", "not_active", "max_extensions",
                           "outside_extension_window", "partner_inactive"]

# --- intake ------------------------------------------------------------------------------


@event_type
class RegistrationWithdrawn(DomainEvent):
    """The owning partner (or an integration for it) withdrew the registration."""

    TYPE: ClassVar[str] = "dealreg.registration.withdrawn.v1"

    registration_id: str
    partner_id: str
    account_key: str
    withdrawn_at: datetime
    policy_version: int | None = None


@event_type
class RegistrationExtensionRequested(DomainEvent):
    """The owning partner asks for one more extension period."""

    TYPE: ClassVar[str] = "dealreg.registration.extension_requested.v1"

    registration_id: str
    partner_id: str
    account_key: str
    requested_at: datetime
    policy_version: int | None = None


@event_type
class OpportunityClosed(DomainEvent):
    """The CRM closed the opportunity behind a registration or claim.

    The edge resolves a CRM `external_ref` to the registration id (and its account key,
    which routes the event) before appending.
    """

    TYPE: ClassVar[str] = "dealreg.opportunity.closed.v1"

    registration_id: str
    account_key: str
    outcome: Literal["won", "lost"]
    amount: Amount | None = None
    closed_at: datetime
    policy_version: int | None = None


@event_type
class PartnerStatusChanged(DomainEvent):
    """A partner's lifecycle status (or tier) changed in the partner directory.

    Not about one account: the registration service appends one copy to EVERY intake
    partition (the key names the partner, the partition is explicit), so each adjudicator
    sees it in order with that partition's registrations. `account_key` is the record key
    used, informational only.
    """

    TYPE: ClassVar[str] = "dealreg.partner.status_changed.v1"

    partner_id: str
    status: PartnerStatus
    tier: str | None = None
    account_key: str
    changed_at: datetime
    policy_version: int | None = None


# --- decisions ---------------------------------------------------------------------------


@event_type
class ProtectionExtended(DomainEvent):
    TYPE: ClassVar[str] = "dealreg.protection.extended.v1"

    registration_id: str
    party_type: PartyType
    party_id: str
    account_key: str
    protected_until: datetime
    extensions: int
    rule: str = "extension"
    policy_version: int
    explanation: str
    decided_at: datetime


@event_type
class ProtectionEnded(DomainEvent):
    """A registration or claim stopped protecting its scope, and why.

    `status` is the registration's new status; a win also makes its party the account's
    incumbent until `incumbent_until`.
    """

    TYPE: ClassVar[str] = "dealreg.protection.ended.v1"

    registration_id: str
    party_type: PartyType
    party_id: str
    account_key: str
    reason: EndReason
    status: RegistrationStatus
    rule: str
    policy_version: int
    explanation: str
    ended_at: datetime
    amount: Amount | None = None
    incumbent_until: datetime | None = None
    credit_percent: Decimal | None = None


@event_type
class RegistrationActionRejected(DomainEvent):
    """Adjudication refused an extension, withdrawal or close: the API's 404/403/409."""

    TYPE: ClassVar[str] = "dealreg.registration.action_rejected.v1"

    registration_id: str
    account_key: str
    action: LifecycleAction
    reason: LifecycleRefusal
    rule: str
    policy_version: int
    explanation: str
    decided_at: datetime
