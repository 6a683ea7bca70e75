"""Account links: facts that two keys are one customer, with a provenance and a lifetime.

A link is made when an active registration's account matches entries under another key
(adjudicate.py), or when the registration service reports a key on another partition
(`AccountLinkReported`, below). Either way it records who showed it (`Link.justified_by`),
the evidence and when; it is followed transitively (`AdjudicationState.cluster`); it is
refused when the two keys' customers carry different identifiers (never a bridge); and it
is revisited when a registration that justified it ends: a link nothing active justifies
any more goes away (`AccountsUnlinked`).

Cross-partition copies. When the two keys of one customer hash to different partitions, no
adjudicator sees both (see DESIGN.md, "The cross-key race"). The registration service
reports the alias key's active registrations to the canonical key's partition ahead of
every new registration there. The adjudicator keeps them as copies (`Entry.mirror`): they
belong to their own partition's adjudicator, which keeps deciding their lifecycle; here
they only guard against collisions. A report is a snapshot: a copy it no longer lists, or
lists as ended, ends; a copy it lists is refreshed (status, products, protection, tier). A copy ends
by itself at its `protected_until`, and any copy not refreshed within a protection period
(its lease) lapses, so nothing reported once lives forever. If a new copy collides with an
active exclusive entry of the canonical key, a `cross_key` dispute opens over them: both
sides may hold an approval, and only a person may take one away.
"""

from __future__ import annotations

import sys
from typing import Final

from services.adjudication.domain import outcomes
from services.adjudication.domain.disputes import draw_into_dispute, same_party_under
from services.adjudication.domain.instants import from_us, span_us, to_us
from services.adjudication.domain.lifecycle import end
from services.adjudication.domain.matching import (
    Collision,
    find_collisions,
    held_exclusively,
    is_exclusive,
)
from services.adjudication.domain.protection import awaits_home
from services.adjudication.domain.state import (
    ACTIVE,
    COPY_LEASE,
    EXPIRY,
    AdjudicationState,
    Entry,
)
from shared.events import (
    AccountLinkReported,
    AccountsLinked,
    AccountsUnlinked,
    DomainEvent,
    HomeEndRelayed,
    ReportedRegistration,
)
from shared.events.registration import RegistrationStatus
from shared.policy import Policy


def report(
    state: AdjudicationState, out: list[DomainEvent], event: AccountLinkReported, policy: Policy
) -> None:
    at = state.clock
    canonical, alias = event.account_key, event.alias_key
    lease = at + span_us(policy.protection_period)
    listed: set[str] = set()
    fresh: list[Entry] = []
    for reported in event.registrations:
        listed.add(reported.registration_id)
        existing = state.entries.get(reported.registration_id)
        if existing is not None and (not existing.mirror or existing.status in _FINAL):
            continue  # decided here (not a copy), or reported ended for good already
        if reported.status not in ACTIVE:
            if existing is not None and existing.active:
                _end_copy(state, out, existing, reported.status, at)
            continue
        starting = existing is None or not existing.active
        if existing is None:
            existing = _copy(state, reported, alias, policy)
            state.keep(existing)
        if starting:
            fresh.append(existing)  # new, or lapsed here and still active there: guard
        _refresh(state, existing, reported, lease, starting)
    # Copies of this alias the snapshot no longer lists ended on their own partition.
    for entry in [] if event.partial else list(state.active_under(alias)):
        if entry.mirror and entry.id not in listed:
            _end_copy(state, out, entry, "expired", at)
    if event.possible_duplicate:
        # Only possibly the same customer: the copies guard, nothing is linked, and the
        # registration that matched goes to a person (adjudicate: `possible_duplicate`).
        if event.registration_id is not None and (event.registration_id not in state.entries
                                                  or event.contest):
            # Ahead of a new registration, or of a contest of a decided one (consumed by
            # `disputes.file`).
            state.suspects.setdefault(event.registration_id, []).append(
                (alias, event.matched_by, event.score))
        elif event.after_decision:
            _review_decided_duplicates(state, out, fresh, event, policy, at)
        return
    justifiers = [e.id for e in state.active_under(alias) if e.mirror]
    if event.registration_id is not None:
        justifiers.append(event.registration_id)
    linked = False
    for justifier in justifiers:
        linked |= state.link(alias, canonical, event.matched_by, event.score, justifier, at)
    if linked:
        out.append(
            AccountsLinked(
                account_key=alias,
                canonical_key=canonical,
                matched_by=event.matched_by,
                score=event.score,
                registration_id=event.registration_id,
                linked_at=from_us(at),
                policy_version=policy.version,
                explanation=(
                    f"The accounts {alias} and {canonical} are the same customer (reported "
                    f"by the registration service, matched by {event.matched_by})."
                ),
            )
        )
    for mirror in fresh:
        if not mirror.active or not is_exclusive(mirror, policy):
            continue
        rivals = rivals_of_copy(state, mirror, policy)
        if rivals:
            # The review lives on this partition: it is keyed by this partition's own
            # registration, never by the copy's key (another partition), or the edge would
            # route a person's acknowledgement and resolution, and the review's timers, to
            # a partition without it (the race re-report's review, found by RecentRules).
            home = rivals[0].entry
            seen = {c.entry.id: c for c in find_collisions(state, home, None, policy)}
            others = [mirror, *(c.entry for c in rivals[1:])]
            evidence = [outcomes.evidence(seen[e.id], home.account_key) for e in others
                        if e.id in seen]
            draw_into_dispute(state, out, home, others, "cross_key", "cross_key", policy,
                              at, evidence)


def rivals_of_copy(state: AdjudicationState, mirror: Entry, policy: Policy) -> list[Collision]:
    """This partition's own exclusive holders a fresh copy collides with, the ones a review
    weighs it against: never the copy's own party (same partner, or the direct team as
    the policy counts it), as at filing a party's own registrations are never its rivals.
    A review of a party's copy beside its own approval here had one party from the start,
    and nothing ever made it moot (invariant 5; session 28, `RecentRules`: p-04 won a race
    by CRM id against an exited partner, then raced by domain and won again)."""
    return [c for c in find_collisions(state, mirror, None, policy)
            if held_exclusively(state, c.entry) and not c.entry.mirror
            and not same_party_under(c.entry, mirror, policy)]


def _review_decided_duplicates(state: AdjudicationState, out: list[DomainEvent],
                               fresh: list[Entry], event: AccountLinkReported,
                               policy: Policy, at: int) -> None:
    """A possible duplicate found only after both sides were decided (the edge's
    post-decision re-report; session 24, rival review: a name-only registration and an
    identified one of the same name racing on two partitions were both approved, where
    one after the other goes to a person). Each fresh copy goes to the review the
    sequential case opens: `possible_duplicate`, beside the entries of the reported key it
    overlaps (found as the edge's suspects are: a non-confident match, nothing linked)."""
    for mirror in fresh:
        if not mirror.active or not is_exclusive(mirror, policy):
            continue
        state.suspects[mirror.id] = [(event.account_key, event.matched_by, event.score)]
        try:
            rivals = rivals_of_copy(state, mirror, policy)
        finally:
            state.suspects.pop(mirror.id, None)
        if rivals:
            # Keyed by this partition's own registration, never by the copy's key (another
            # partition), as the cross-key review above: else the edge routed a person's
            # acknowledgement and resolution, and the review's timers, to a partition
            # without it (session 25 rival: nobody could settle it, and on a quiet
            # partition its fallback never came).
            home = rivals[0].entry
            evidence = [outcomes.evidence(Collision(mirror, event.matched_by, event.score,
                                                    False), home.account_key),
                        *(outcomes.fellow_evidence(state, c.entry, home.account_key, home)
                          for c in rivals[1:])]
            draw_into_dispute(state, out, home, [mirror, *(c.entry for c in rivals[1:])],
                              "possible_duplicate", "possible_duplicate", policy, at, evidence)
            # Kept with the copy: a settlement names the two by the report (invariant 6).
            mirror.reported = outcomes.add_reports(
                mirror.reported, [(event.account_key, event.matched_by, event.score)])


def _copy(state: AdjudicationState, reported: ReportedRegistration, alias: str,
          policy: Policy) -> Entry:
    products = reported.products
    return Entry(
        id=reported.registration_id,
        account_key=state.shared_key(alias),
        party_type=reported.party_type,
        party_id=sys.intern(reported.party_id),
        kind="registration" if reported.party_type == "partner" else "opportunity",
        motion=reported.motion,
        products=(state.intern_products(products)
                  if products and not reported.whole_account else None),
        submitted_at=to_us(reported.submitted_at),
        tier=sys.intern(reported.tier),
        policy_version=policy.version,
        status=reported.status,
        mirror=True,
    )


def _refresh(state: AdjudicationState, copy: Entry, reported: ReportedRegistration,
             lease: int, starting: bool) -> None:
    """Bring a copy up to what its partition reported (status, the products it still holds:
    an award by product narrows them there, protection, tier), and (re)start its lease."""
    copy.status = reported.status
    copy.products = (state.intern_products(reported.products)
                     if reported.products and not reported.whole_account else None)
    copy.tier = sys.intern(reported.tier) if reported.tier else copy.tier
    protected_until = (to_us(reported.protected_until)
                       if reported.protected_until is not None else None)
    if protected_until is not None and protected_until != copy.protected_until:
        state.schedule(protected_until, EXPIRY, copy.id)
    copy.protected_until = protected_until
    # The lease lives in retain_until while the copy is active (retire() reuses it). One
    # lease timer per copy: a refresh only moves retain_until, and the timer, when it comes
    # due, moves itself there (so frequent reports do not pile timers on the heap).
    if starting:
        state.schedule(lease, COPY_LEASE, copy.id)
    copy.retain_until = lease
    state.activate(copy)


_FINAL: Final = frozenset({"withdrawn", "rejected"})
"""How a copy ends for good: its partition reported it ended (withdrawn, closed, rejected).
A copy that only lapsed, expired or went missing from a snapshot ends `expired` and comes
back if a later snapshot lists it active again (extended; a read model catching up)."""


def _end_copy(state: AdjudicationState, out: list[DomainEvent], copy: Entry, status: str,
              at: int) -> None:
    final: RegistrationStatus = (
        "rejected" if status == "rejected"
        else "withdrawn" if status in ("withdrawn", "won", "lost") else "expired")
    end(state, out, copy, "expired", final, "cross_key",
        "The copy of another partition's registration ended.", at)


def ended_at_home(state: AdjudicationState, out: list[DomainEvent], event: HomeEndRelayed,
                  policy: Policy) -> None:
    """Registrations held here as copies in a review ended on their own partition
    (relay.tell_ended): their copies end as a report listing them ended would end them,
    and leave their disputes (`lifecycle.end`). A rejection ends it `expired`, not for
    good: a contest there may approve it again, and a later report brings the copy back."""
    for word in event.ended:
        copy = state.entries.get(word.registration_id)
        if copy is None or not copy.mirror or not copy.active:
            continue
        _end_copy(state, out, copy, word.status if word.status in _CLOSED else "expired",
                  state.clock)


_CLOSED: Final = frozenset({"withdrawn", "won", "lost"})
"""Ends at home a copy keeps for good (`_FINAL`): nothing brings them back there."""


def on_lease_end(
    state: AdjudicationState, out: list[DomainEvent], deadline: int, target: str, level: int
) -> None:
    """A copy nobody refreshed for a protection period lapses: its own partition may have
    decided, extended or ended it since, and a stale copy must not guard forever."""
    copy = state.entries.get(target)
    if copy is None or not copy.mirror or not copy.active:
        return
    if copy.retain_until > deadline:  # refreshed since: the lease runs on
        state.schedule(copy.retain_until, COPY_LEASE, copy.id)
        return
    if awaits_home(state, copy):
        # In a review here: its home tells the review when it ends (relay.tell_ended);
        # the lease runs on from now, for when the review has closed.
        copy.retain_until = deadline + span_us(
            state.policy(copy.policy_version).protection_period)
        state.schedule(copy.retain_until, COPY_LEASE, copy.id)
        return
    _end_copy(state, out, copy, "expired", deadline)


def revisit(state: AdjudicationState, out: list[DomainEvent]) -> None:
    """Drop the links that only registrations which have now ended justified."""
    if not state.ended:
        return
    ended, state.ended = state.ended, []
    for registration_id in ended:
        for pair in state.justifies.pop(registration_id, ()):
            fact = state.link_facts.get(pair)
            if fact is None:
                continue
            if registration_id in fact.justified_by:
                fact.justified_by.remove(registration_id)
            if any(_live(state, other) for other in fact.justified_by):
                continue
            state.unlink(pair)
            entry = state.entries.get(registration_id)
            version = (entry.policy_version if entry is not None
                       else state.remember_policy(None).version)
            out.append(
                AccountsUnlinked(
                    account_key=fact.alias,
                    canonical_key=fact.canonical,
                    registration_id=registration_id,
                    unlinked_at=from_us(state.clock),
                    policy_version=version,
                    explanation=(
                        f"The accounts {fact.alias} and {fact.canonical} are no longer "
                        f"treated as one customer: no active registration shows it any more "
                        f"(the last, {registration_id}, ended)."
                    ),
                )
            )


def _live(state: AdjudicationState, registration_id: str) -> bool:
    entry = state.entries.get(registration_id)
    return entry is not None and entry.active
