"""Every event type the system knows, importable from one place."""

from shared.events.account_links import (
    AccountLinkReported,
    AccountsLinked,
    AccountsUnlinked,
    ReportedRegistration,
)
from shared.events.base import CATALOGUE, DomainEvent, event_type
from shared.events.claims import (
    ClaimDecided,
    ClaimFiled,
    ClaimReleased,
)
from shared.events.disputes import (
    DisputeAcknowledged,
    DisputeAcknowledgementRecorded,
    DisputeActionRejected,
    DisputeEscalated,
    DisputeFiled,
    DisputeJoined,
    DisputeOpened,
    DisputeReminderDue,
    DisputeResolutionSubmitted,
    DisputeResolved,
    DisputeSlaBreached,
    ProductAward,
    RelayedDecision,
    SettlementRelayed,
    Split,
)
from shared.events.lifecycle import (
    OpportunityClosed,
    PartnerStatusChanged,
    ProtectionEnded,
    ProtectionExtended,
    RegistrationActionRejected,
    RegistrationExtensionRequested,
    RegistrationWithdrawn,
)
from shared.events.reference import OwnerUpdated, PartnerUpdated, PolicyPublished
from shared.events.registration import (
    Account,
    Amount,
    ConflictEvidence,
    Opportunity,
    PartnerSnapshot,
    RegistrationDecided,
    RegistrationSubmitted,
)
from shared.events.timers import (
    TimerFired,
)

__all__ = [
    "CATALOGUE",
    "Account",
    "AccountLinkReported",
    "AccountsLinked",
    "AccountsUnlinked",
    "Amount",
    "ClaimDecided",
    "ClaimFiled",
    "ClaimReleased",
    "ConflictEvidence",
    "DisputeAcknowledged",
    "DisputeAcknowledgementRecorded",
    "DisputeActionRejected",
    "DisputeEscalated",
    "DisputeFiled",
    "DisputeJoined",
    "DisputeOpened",
    "DisputeReminderDue",
    "DisputeResolutionSubmitted",
    "DisputeResolved",
    "DisputeSlaBreached",
    "DomainEvent",
    "Opportunity",
    "OpportunityClosed",
    "OwnerUpdated",
    "PartnerSnapshot",
    "PartnerStatusChanged",
    "PartnerUpdated",
    "PolicyPublished",
    "ProductAward",
    "ProtectionEnded",
    "ProtectionExtended",
    "RegistrationActionRejected",
    "RegistrationDecided",
    "RegistrationExtensionRequested",
    "RegistrationSubmitted",
    "RegistrationWithdrawn",
    "RelayedDecision",
    "ReportedRegistration",
    "SettlementRelayed",
    "Split",
    "TimerFired",
    "event_type",
]
