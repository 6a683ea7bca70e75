"""Rules of engagement as a pure function of the events (the walking skeleton's rule:
approve unless the account already has an approved registration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.events import DomainEvent, RegistrationDecided, RegistrationSubmitted
from shared.events.registration import ConflictEvidence

DEFAULT_PROTECTION = timedelta(days=90)


@dataclass
class AdjudicationState:
    """What one partition's adjudicator remembers. Mutated in place for speed: `decide`
    returns it so callers never depend on that."""

    # account key -> (registration id, partner id, submitted at) of the approved owner
    approved: dict[str, tuple[str, str, datetime]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """Facts about the event being decided that come from its envelope."""

    event_id: str
    time: datetime


def decide(
    state: AdjudicationState, event: DomainEvent, context: DecisionContext
) -> tuple[AdjudicationState, list[DomainEvent]]:
    if isinstance(event, RegistrationSubmitted):
        return state, [_decide_registration(state, event)]
    return state, []


def _decide_registration(
    state: AdjudicationState, event: RegistrationSubmitted
) -> RegistrationDecided:
    owner = state.approved.get(event.account_key)
    if owner is None:
        state.approved[event.account_key] = (
            event.registration_id, event.partner_id, event.submitted_at
        )
        return RegistrationDecided(
            registration_id=event.registration_id,
            partner_id=event.partner_id,
            account_key=event.account_key,
            status="approved",
            rule="no_conflict",
            policy_version=event.policy_version,
            explanation=(
                f"Approved: no other active registration for the account {event.account_key} "
                f"(policy v{event.policy_version})."
            ),
            decided_at=event.submitted_at,
            protected_until=event.submitted_at + DEFAULT_PROTECTION,
        )
    owner_id, owner_partner, owner_submitted = owner
    days = (event.submitted_at - owner_submitted).days
    return RegistrationDecided(
        registration_id=event.registration_id,
        partner_id=event.partner_id,
        account_key=event.account_key,
        status="rejected",
        rule="first_submitted",
        policy_version=event.policy_version,
        explanation=(
            f"Rejected: the account {event.account_key} is protected by another partner's "
            f"registration submitted {days} days earlier (first_submitted, "
            f"policy v{event.policy_version})."
        ),
        conflicts=(
            ConflictEvidence(
                registration_id=owner_id,
                party_type="partner",
                party_id=owner_partner,
                matched_by="domain",
                score=1.0,
            ),
        ),
        decided_at=event.submitted_at,
    )
