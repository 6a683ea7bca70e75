"""A settlement's word about a copy reaches the copy's own partition (DESIGN.md, "A
settlement's word reaches the copy's own partition").

A dispute on one key may hold copies of registrations filed under another key of the same
customer on another partition (`Entry.mirror`, links.py). When its settlement rejects such
a copy, or gives an approved one a new credit share or scope, the decision is emitted keyed
by the copy's key, but the partition that owns the registration decides its lifecycle and
guards with it. So the settlement also yields one `SettlementRelayed` per copy key
(`disputes.relayed`), which the worker appends to the intake of that key in the same transaction as
the decision, and the owning partition applies it (`apply`), like any other intake event:

- a rejection retires the registration there (leaves its open dispute, stops its timers,
  and its line), whatever that partition decided about it since: the review that rejected it is
  the one that weighed it against the rival on the other key, which no decision here saw;
  its line steps up (`on_release`) only if the settlement left its scope free (`line_free`:
  a `reject_all`, a winner elsewhere that does not overlap it), else it is let go: the
  account went to a registration this partition does not hold; one that has already
  ended there stays as it ended (it guards nothing either way);
- a new share or scope takes effect on a registration approved there (after the
  rejections: one they freed there takes the share the settlement gave its copy in
  review); a scope only narrows what it holds there (`_held`: the review weighed the copy
  as reported, not a product this partition's own review gave a rival since), and one
  left holding nothing there is rejected like a loser; one that has ended meanwhile is
  restated as it ended (rule `ended_before_relay`), so readers, who may have seen the
  settlement's approval after the end, show the end again; one still in review there is
  left to its dispute there.

The converse (DESIGN.md, "A home decision reaches the review elsewhere that holds a copy"):
a dispute that draws in copies tells their own partition (`CopiesInReview`, disputes.py),
which remembers the review's key beside the registration (`watch`); when the registration
ends there, however it ends, that partition tells the review's (`tell_ended`: a
`HomeEndRelayed`, appended like a settlement's relay), which ends the copy as a report
listing it ended would (`links.ended_at_home`), so the review does not wait on it with one
live party (invariant 5). One already ended when the notice arrives is told at once.
"""

from __future__ import annotations

from typing import Final

from services.adjudication.domain import cooloff, explain, outcomes, release
from services.adjudication.domain.disputes import remove_member
from services.adjudication.domain.instants import from_us, to_us
from services.adjudication.domain.protection import retire
from services.adjudication.domain.state import AdjudicationState, Entry
from shared.events import (
    CopiesInReview,
    DomainEvent,
    EndedAtHome,
    HomeEndRelayed,
    RelayedDecision,
    SettlementRelayed,
)
from shared.policy import Policy

Out = list[DomainEvent]

ENDED_BEFORE: Final = "ended_before_relay"
"""The rule of a restatement: a share or scope relayed for a registration that had
already ended on its own partition."""


def apply(state: AdjudicationState, out: Out, event: SettlementRelayed, policy: Policy) -> None:
    """Apply a settlement made on another key to the registrations it names that this
    partition owns: its rejections first, together (retired first, then they leave their
    disputes, so a dispute here that held several of them is not settled in favour of one
    the same relay rejects), then its shares and scopes (on what stands after that: a
    registration the rejections freed here takes the share the settlement gave it)."""
    at = state.clock
    tag = explain.tag(event.rule, event.policy_version)
    where = (f"dispute {event.dispute_id}, a review on another key of this customer, was "
             f"settled as {event.outcome}")
    words = [(w, e) for w in event.decisions
             for e in (state.entries.get(w.registration_id),)
             if e is not None and not e.mirror]  # forgotten, or not this partition's
    for word, entry in words:
        if word.kept and event.decided_key in state.watchers.get(entry.id, ()):
            # Its review settled keeping it alone: it holds its line back no more.
            state.settled_watch.add((entry.id, event.decided_key))
    words = [(w, e) for w, e in words if not w.kept]
    # Ended here already: its end stands (readers show the rejection: `overruled`), but
    # one the settlement took away before it ended here starts no cool-off.
    for word, entry in words:
        if word.status == "rejected" and not entry.active:
            cooloff.lost_before(state, entry, to_us(event.decided_at))
    losers = [e for w, e in words if w.status == "rejected" and e.active]
    # A relayed scope only narrows: the review elsewhere weighed the copy as it was
    # reported, never what this partition settled since (a product its own review gave a
    # rival here). One left holding nothing here is rejected.
    emptied = {e.id for w, e in words if w.status == "approved" and e.status == "approved"
               and _held(w, e) == frozenset()}
    losers += [e for _, e in words if e.id in emptied]
    if losers:
        _reject(state, out, event, losers, where, tag, at, emptied)
    for word, entry in words:
        if word.status != "approved" or entry.id in emptied:
            continue
        if entry.status == "approved":
            entry.credit_percent = word.credit_percent
            held = _held(word, entry)
            if held is not None:
                entry.products = state.intern_products(tuple(sorted(held)))
            share = (f" with {entry.credit_percent}% of the credit"
                     if entry.credit_percent is not None else "")
            out.append(_decided(
                entry, event, f"Approved{share}: {where}{explain.scope(entry)}; it applies "
                f"here{explain.protected_until(entry)} {tag}.", at))
        elif word.shown and not entry.active:
            version = entry.policy_version
            out.append(_decided(
                entry, event, f"{entry.status.capitalize()}: {where} and gave this "
                f"registration a share, but it had already ended here, so it stays "
                f"{entry.status} {explain.tag(ENDED_BEFORE, version)}.", at,
                rule=ENDED_BEFORE, version=version))
        # In review here: its own dispute here decides it (the settlement granted it
        # nothing either, `disputes._kept_copy`).


def _held(word: RelayedDecision, entry: Entry) -> frozenset[str] | None:
    """What a relayed approval leaves `entry` here: the settlement's scope within the one
    it holds here (None: the whole account)."""
    if word.scope_products is None:
        return entry.products
    relayed = frozenset(word.scope_products)
    return relayed if entry.products is None else relayed & entry.products


def _reject(state: AdjudicationState, out: Out, event: SettlementRelayed,
            losers: list[Entry], where: str, tag: str, at: int,
            emptied: frozenset[str] | set[str] = frozenset()) -> None:
    free = {w.registration_id for w in event.decisions if w.line_free}
    owners = [e for e in losers if e.status == "approved"]
    for entry in losers:
        entry.credit_percent = None
        entry.beaten_by = ()  # a person's (or the fallback's) settlement: nothing to contest
        retire(state, entry, "rejected", state.policy(entry.policy_version), at)
        entry.protected_until = None
    moot: Out = []
    for entry in losers:
        remove_member(state, moot, entry, at)
    for entry in losers:
        out.append(_decided(entry, event, (
            f"Rejected: {where} and left this registration only products it no longer "
            f"holds here, so it keeps nothing it still held here {tag}."
            if entry.id in emptied else
            f"Rejected: {where} and this registration lost there; that review "
            f"weighed it against a registration this key does not hold, so its word stands "
            f"over what was decided here {tag}."), at))
    out.extend(moot)
    for entry in owners:
        if entry.id in free:
            # Nothing the settlement kept holds it: its review, settled, no longer holds
            # the line back (`release.let_go`).
            release.let_go(state, out, entry, at, settled_by=event.decided_key)
        else:
            # Its line is let go unpromoted: the account went to a registration on the
            # other key, which this partition does not hold: one promoted here would be
            # its second owner.
            release.forget(state, entry.id)


def _decided(entry: Entry, event: SettlementRelayed, sentence: str, at: int,
             rule: str | None = None, version: int | None = None) -> DomainEvent:
    """The decision, naming the settling dispute (readers already show it there)."""
    own, entry.dispute_id = entry.dispute_id, event.dispute_id
    try:
        return outcomes.decision(entry, rule or event.rule,
                                 event.policy_version if version is None else version,
                                 sentence, at)
    finally:
        entry.dispute_id = own


def watch(state: AdjudicationState, out: Out, event: CopiesInReview, policy: Policy) -> None:
    """A review on another partition holds copies of registrations this partition owns:
    remember where it is, to tell it when they end; tell it now of those that ended
    already (one forgotten here ended a protection period ago at least). A contest's
    review names the copies its partner contested losing to: remember the appeal beside
    the registration (`state.appealed`, DESIGN.md "Contests end")."""
    ended: dict[str, list[EndedAtHome]] = {}
    for registration_id in event.registration_ids:
        entry = state.entries.get(registration_id)
        if entry is not None and entry.mirror:
            continue  # a copy here too: its own partition answers
        if entry is not None and entry.active:
            keys = state.watchers.setdefault(registration_id, [])
            state.settled_watch.discard((registration_id, event.review_key))
            if event.review_key not in keys:
                keys.append(event.review_key)
            if event.contested_by is not None and registration_id in event.appealed:
                # A partner contested losing to its copy there: one appeal, here too.
                release.remember_appeal(state, registration_id, event.contested_by)
            continue
        home = entry.account_key if entry is not None else event.account_key
        ended.setdefault(home, []).append(EndedAtHome(
            registration_id=registration_id,
            status=entry.status if entry is not None else "unknown"))
    if event.contested_by is not None:
        for registration_id in event.appealed_here:
            # The partner contested losing to that partition's own registration: one
            # appeal against the copy of it held here too, while the copy lasts (the
            # converse of `appealed`; session 26).
            copy = state.entries.get(registration_id)
            if copy is not None and copy.mirror and copy.active:
                release.remember_appeal(state, registration_id, event.contested_by)
    for home, words in ended.items():
        out.append(HomeEndRelayed(account_key=event.review_key, home_key=home,
                                  ended=tuple(words), ended_at=from_us(state.clock)))


def tell_ended(state: AdjudicationState, out: Out) -> None:
    """The watched registrations that ended while deciding this event: one
    `HomeEndRelayed` per review key (and home key) that holds their copies."""
    if not state.unwatched:
        return
    ids, state.unwatched = state.unwatched, []
    told: dict[tuple[str, str], list[EndedAtHome]] = {}
    for registration_id in ids:
        entry = state.entries.get(registration_id)
        if entry is None or entry.active:
            continue  # active again (in the same event): still watched
        for key in state.watchers.pop(registration_id, ()):
            state.settled_watch.discard((registration_id, key))
            told.setdefault((key, entry.account_key), []).append(
                EndedAtHome(registration_id=registration_id, status=entry.status))
    for (key, home), words in told.items():
        out.append(HomeEndRelayed(account_key=key, home_key=home, ended=tuple(words),
                                  ended_at=from_us(state.clock)))
