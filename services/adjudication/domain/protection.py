"""Status transitions of one entry that every rule shares: granting protection, and
retiring an entry that is no longer active (kept for one protection period, then forgotten).
"""

from __future__ import annotations

from typing import Final

from services.adjudication.domain.instants import span_us
from services.adjudication.domain.state import (
    EXPIRY,
    FORGET_ENTRY,
    AdjudicationState,
    Entry,
)
from shared.policy import Policy

INACTIVE_PARTNER: Final = frozenset({"suspended", "exited"})


def inactive(state: AdjudicationState, entry: Entry) -> bool:
    """Whether `entry`'s partner is suspended or exited by the latest status this partition
    saw: such a partner keeps what it holds (until exit) but gains nothing new — no
    approval by a contest, a co-sell, a fallback or a promotion."""
    return (entry.party_type == "partner"
            and state.partner_status.get(entry.party_id, "active") in INACTIVE_PARTNER)


def grant(state: AdjudicationState, entry: Entry, policy: Policy, at: int) -> None:
    """Approve `entry` from `at`: protected for the policy's period (a named-account claim
    is protected until released: it is the rep's territory, not a deal)."""
    entry.status = "approved"
    entry.held_by = None  # a fresh protection: a dispute may hold it once (held_by_dispute)
    state.activate(entry)
    if entry.kind == "named_account":
        entry.protected_until = None
        return
    entry.protected_until = at + span_us(policy.protection_period)
    state.schedule(entry.protected_until, EXPIRY, entry.id)


def held_by_dispute(state: AdjudicationState, entry: Entry) -> bool:
    """Whether `entry`'s protection is held open by its open dispute: with the policy's
    `dispute_protection: extend`, an approved member does not expire while a person is
    still deciding (the dispute may well leave it the owner)."""
    if entry.dispute_id is None or not may_hold(entry, entry.dispute_id):
        return False
    dispute = state.disputes.get(entry.dispute_id)
    if dispute is None or dispute.status != "open":
        return False
    return state.policy(entry.policy_version).dispute_protection == "extend"


def awaits_home(state: AdjudicationState, entry: Entry) -> bool:
    """Whether `entry` is a copy of another partition's registration sitting in an open
    review here: it ends by its home's word (`HomeEndRelayed`, or a report listing it
    ended), never by its own clock (its reported end, its lease). The review told its
    home when it drew it in (`CopiesInReview`), and the home tells the review when the
    registration really ends there, however it ends; the end the copy was reported with
    is stale once the home extends it or holds it in a dispute of its own, and expiring
    it here closed the review moot and approved the survivor beside a registration still
    approved at home (two owners; DESIGN.md, "A copy in a review waits for its home's
    word")."""
    if not entry.mirror or entry.dispute_id is None:
        return False
    dispute = state.disputes.get(entry.dispute_id)
    return dispute is not None and dispute.status == "open"


def may_hold(entry: Entry, dispute_id: str) -> bool:
    """At most one dispute carries a protection past its end (the hold while open, the
    grace after): otherwise a rival filing a throwaway registration and contesting it every
    few days would keep the owner protected for ever (DESIGN.md, "Disputes hold a
    protection once"). A later dispute leaves the protection to end on its date. A copy of
    another partition's registration (`Entry.mirror`) is never carried: its own partition
    keeps, extends or ends it, and would expire it on its date after readers were shown a
    later end (invariant 2)."""
    return not entry.mirror and (entry.held_by is None or entry.held_by == dispute_id)


def extend_after_dispute(state: AdjudicationState, entry: Entry, dispute_id: str,
                         at: int) -> bool:
    """An approved member that keeps its approval when its dispute closes at `at`: with
    `dispute_protection: extend`, protected at least `dispute_grace` more -- unless another
    dispute carried it past its end already (`may_hold`). True if changed."""
    policy = state.policy(entry.policy_version)
    if (policy.dispute_protection != "extend" or entry.status != "approved"
            or entry.protected_until is None or not may_hold(entry, dispute_id)):
        return False
    floor = at + span_us(policy.dispute_grace)
    if entry.protected_until >= floor:
        return False
    entry.held_by = dispute_id
    entry.protected_until = floor
    state.schedule(floor, EXPIRY, entry.id)
    return True


def hold_for_review(state: AdjudicationState, entry: Entry, at: int) -> None:
    entry.status = "in_review"
    entry.protected_until = None
    state.activate(entry)


def retire(state: AdjudicationState, entry: Entry, status: str, policy: Policy, at: int) -> None:
    """Leave the active set with `status`; forget the entry one protection period later."""
    state.deactivate(entry)
    entry.status = status
    state.retired(entry, status)
    if entry.id in state.justifies:
        state.ended.append(entry.id)  # its links are revisited (links.revisit)
    if entry.id in state.watchers:
        state.unwatched.append(entry.id)  # reviews elsewhere hold its copy (relay.tell_ended)
    entry.retain_until = at + span_us(policy.protection_period)
    state.schedule(entry.retain_until, FORGET_ENTRY, entry.id)
