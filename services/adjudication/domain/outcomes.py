"""Decision events built from entries: the one place that turns state into output.

Built with `shared.events.trusted` (no validation): every value comes from the state, which
holds only what validated events and the policy put there, and is converted here to its
field's exact type (float scores, tuples, datetimes). tests/unit/events/test_trusted_events.py
re-validates every decision of the mixed workload and compares the bytes."""

from __future__ import annotations

from collections.abc import Sequence

from services.adjudication.domain.instants import from_us
from services.adjudication.domain.matching import Collision, key_evidence
from services.adjudication.domain.state import Entry
from shared.events import (
    ClaimDecided,
    ConflictEvidence,
    DomainEvent,
    RegistrationDecided,
    trusted,
)
from shared.events.claims import ClaimKind
from shared.events.registration import MatchedBy, PartyType, RegistrationStatus


def evidence(collision: Collision, decided_key: str) -> ConflictEvidence:
    entry = collision.entry
    matched_by: MatchedBy = _matched_by(collision.matched_by)
    return trusted(
        ConflictEvidence,
        registration_id=entry.id,
        party_type=_party_type(entry.party_type),
        party_id=entry.party_id,
        matched_by=matched_by,
        score=float(round(collision.score, 4)),
        account_key=entry.account_key if entry.account_key != decided_key else None,
        confident=bool(collision.confident),
    )


def member_evidence(entry: Entry, decided_key: str,
                    decided: Entry | None = None) -> ConflictEvidence:
    """Evidence for a fellow member `entry` of a dispute, in a decision about `decided`
    (filed under `decided_key`): how they were found to be one customer. A name match on
    either side makes it a name match (the weakest link); otherwise it is how `decided`
    matched its key's customer, or, when it opened the key (or is not given), how `entry`
    did. A `decided` that opened a key of its own (another key than `entry`'s) matched
    through that key's form: a name key can only have matched by name."""
    theirs = entry.evidence or (key_evidence(entry.account_key), 1.0)
    mine = (decided.evidence if decided is not None else None) or theirs
    if (decided is not None and decided.evidence is None
            and decided.account_key != entry.account_key):
        mine = (key_evidence(decided.account_key), 1.0)
    names = [score for kind, score in (mine, theirs) if kind == "name"]
    kind, score = ("name", min(names)) if names else mine
    return evidence(Collision(entry, kind, score, True), decided_key)


def decision(
    entry: Entry,
    rule: str,
    policy_version: int,
    explanation: str,
    at: int,
    conflicts: Sequence[ConflictEvidence] = (),
    flags: tuple[str, ...] = (),
) -> DomainEvent:
    """A RegistrationDecided (partners) or ClaimDecided (direct) with the entry's status."""
    status: RegistrationStatus = _status(entry.status)
    until = from_us(entry.protected_until) if entry.protected_until is not None else None
    products = tuple(sorted(entry.products)) if entry.products is not None else None
    conflicts = tuple(conflicts)
    flags = tuple(flags)
    if entry.party_type == "partner":
        return trusted(
            RegistrationDecided,
            registration_id=entry.id,
            partner_id=entry.party_id,
            account_key=entry.account_key,
            status=status,
            rule=rule,
            policy_version=policy_version,
            explanation=explanation,
            conflicts=conflicts,
            decided_at=from_us(at),
            protected_until=until,
            dispute_id=entry.dispute_id,
            scope_products=products,
            credit_percent=entry.credit_percent,
            extensions=entry.extensions,
            flags=flags,
        )
    kind: ClaimKind = "named_account" if entry.kind == "named_account" else "opportunity"
    return trusted(
        ClaimDecided,
        claim_id=entry.id,
        kind=kind,
        rep_id=entry.party_id,
        account_key=entry.account_key,
        status=status,
        rule=rule,
        policy_version=policy_version,
        explanation=explanation,
        conflicts=conflicts,
        decided_at=from_us(at),
        protected_until=until,
        dispute_id=entry.dispute_id,
        scope_products=products,
        credit_percent=entry.credit_percent,
        flags=flags,
    )


def _matched_by(value: str) -> MatchedBy:
    if value == "crm_account_id":
        return "crm_account_id"
    if value == "name":
        return "name"
    return "domain"


def _party_type(value: str) -> PartyType:
    return "direct" if value == "direct" else "partner"


_STATUSES: dict[str, RegistrationStatus] = {
    "submitted": "submitted", "approved": "approved", "rejected": "rejected",
    "in_review": "in_review", "expired": "expired", "withdrawn": "withdrawn",
    "won": "won", "lost": "lost",
}


def _status(value: str) -> RegistrationStatus:
    return _STATUSES[value]


party_type = _party_type
