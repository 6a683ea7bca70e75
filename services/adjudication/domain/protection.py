"""Status transitions of one entry that every rule shares: granting protection, and
retiring an entry that is no longer active (kept for one protection period, then forgotten).
"""

from __future__ import annotations

from services.adjudication.domain.instants import span_us
from services.adjudication.domain.state import (
    EXPIRY,
    FORGET_ENTRY,
    AdjudicationState,
    Entry,
)
from shared.policy import Policy


def grant(state: AdjudicationState, entry: Entry, policy: Policy, at: int) -> None:
    """Approve `entry` from `at`: protected for the policy's period (a named-account claim
    is protected until released: it is the rep's territory, not a deal)."""
    entry.status = "approved"
    state.activate(entry)
    if entry.kind == "named_account":
        entry.protected_until = None
        return
    entry.protected_until = at + span_us(policy.protection_period)
    state.schedule(entry.protected_until, EXPIRY, entry.id)


def hold_for_review(state: AdjudicationState, entry: Entry, at: int) -> None:
    entry.status = "in_review"
    entry.protected_until = None
    state.activate(entry)


def retire(state: AdjudicationState, entry: Entry, status: str, policy: Policy, at: int) -> None:
    """Leave the active set with `status`; forget the entry one protection period later."""
    state.deactivate(entry)
    entry.status = status
    if entry.id in state.justifies:
        state.ended.append(entry.id)  # its links are revisited (links.revisit)
    entry.retain_until = at + span_us(policy.protection_period)
    state.schedule(entry.retain_until, FORGET_ENTRY, entry.id)
