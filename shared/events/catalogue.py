"""Every event type the system knows, importable from one place."""

from shared.events.base import CATALOGUE, DomainEvent, event_type
from shared.events.registration import (
    Account,
    Amount,
    ConflictEvidence,
    Opportunity,
    PartnerSnapshot,
    RegistrationDecided,
    RegistrationSubmitted,
)

__all__ = [
    "CATALOGUE",
    "Account",
    "Amount",
    "ConflictEvidence",
    "DomainEvent",
    "Opportunity",
    "PartnerSnapshot",
    "RegistrationDecided",
    "RegistrationSubmitted",
    "event_type",
]
