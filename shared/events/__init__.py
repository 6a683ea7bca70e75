"""The event catalogue: one class per event type, versioned names, upcasters beside them.

Services import events from here and nothing else of each other.
"""

from shared.events.catalogue import (
    CATALOGUE,
    Account,
    Amount,
    ConflictEvidence,
    DomainEvent,
    Opportunity,
    PartnerSnapshot,
    RegistrationDecided,
    RegistrationSubmitted,
)
from shared.events.codec import decode, encode, new_envelope
from shared.events.envelope import Envelope
from shared.events.upcasting import Upcaster, UpcasterRegistry, upcasters

__all__ = [
    "CATALOGUE",
    "Account",
    "Amount",
    "ConflictEvidence",
    "DomainEvent",
    "Envelope",
    "Opportunity",
    "PartnerSnapshot",
    "RegistrationDecided",
    "RegistrationSubmitted",
    "Upcaster",
    "UpcasterRegistry",
    "decode",
    "encode",
    "new_envelope",
    "upcasters",
]
