"""When an owner lets go: promote the next in line, or leave the account free.

An approved registration or claim lets go when it is withdrawn or released, expires, is
lost in the CRM, its partner exits, or it loses a dispute. With the policy's
`on_release: promote_next` (the owner's own policy version decides), the registrations a
precedence rule rejected in its favour within `release_window` are the line: they are
ordered by the policy's precedence as adjudication walks it, then first submitted
(`precedence.in_line`), and each in turn is approved (rule `promoted_on_release`, a fresh
protection period) if nothing active and exclusive now overlaps it and its partner is still
active. Several may be promoted when their products do not overlap. A candidate whose
rejection flagged a copy of another partition's registration as a possible duplicate
(`Entry.near_by`) that is still active, exclusive, another party's and overlapping is not
approved outright: as a new registration beside a near match would, it goes to review
with a `possible_duplicate` dispute over it and those copies (a person says whether they
are one customer; DESIGN.md, "Promotion weighs the copies its line's rejection flagged").
With `free`, nothing
happens: the next newcomer gets the account. A promotion caused by the owner's *expiry*
takes effect on the owner's policy's `promotion_unit` (`let_go_expired`: a `PROMOTION`
timer due on the next whole unit, `shared.business_time.due_on`), not at the expiry, which
is the owner's approval + `protection_period` to the microsecond; until then the line keeps
the account: a newcomer on its customer and scope is rejected `promotion_pending` and joins
the line behind the registrations already in it (`pending_over`, `queue_behind`; DESIGN.md,
"A promotion after an expiry waits for the unit"). A win in the CRM is not a release: the
customer bought, and the winner is the incumbent. An owner whose copy a review on another
partition holds (or held: `state.watchers`) lets its line go unpromoted: that review
decides who follows it -- unless it settled and left nothing of its own beside the owner
(its settlement rejected it with its scope free, `settled_by`, or kept its copy alone,
`state.settled_watch`): then nobody there decides, and the line steps up here.
"""

from __future__ import annotations

from services.adjudication.domain import explain, outcomes
from services.adjudication.domain.instants import span_us
from services.adjudication.domain.matching import (
    Collision,
    Lookup,
    evidence_keys,
    find_collisions,
    held_exclusively,
    overlaps,
)
from services.adjudication.domain.precedence import in_line
from services.adjudication.domain.protection import grant, hold_for_review, inactive, retire
from services.adjudication.domain.state import (
    FORGET_ENTRY,
    PROMOTION,
    AdjudicationState,
    Entry,
)
from shared.accounts.identity import AccountIdentity
from shared.business_time import due_on
from shared.events import DomainEvent
from shared.policy import Policy

RULE = "promoted_on_release"
PENDING = "promotion_pending"
_PRUNE_AT = 64


def remember_beaten(state: AdjudicationState, loser: Entry) -> None:
    """`loser` was rejected by precedence in favour of its `beaten_by`: it is in their line."""
    for winner in loser.beaten_by:
        line = state.beaten.setdefault(winner, [])
        if len(line) >= _PRUNE_AT:
            # A long-lived owner (a named account) beats many: drop the forgotten ones.
            line[:] = [i for i in line if i in state.entries]
        if loser.id not in line:
            line.append(loser.id)


def forget(state: AdjudicationState, entry_id: str) -> None:
    state.beaten.pop(entry_id, None)
    state.appealed.pop(entry_id, None)


def remember_appeal(state: AdjudicationState, rival_id: str, party_id: str) -> None:
    """`party_id` contested losing to `rival_id` (this partition's own registration or a
    copy of one): one appeal per rival protection, remembered beside the rival for its
    grant (`state.appealed`, read by `disputes._appealed_before`; dropped when the rival
    lets go or is forgotten, a copy when it ends here, `lifecycle.end`)."""
    parties = state.appealed.setdefault(rival_id, [])
    if party_id not in parties:
        parties.append(party_id)


def let_go_expired(state: AdjudicationState, out: list[DomainEvent], owner: Entry,
                   at: int) -> None:
    """`owner` (approved, exclusive) expired at `at`: its protection ends now, its line is
    promoted on the unit (`_promotion_due`), or now when there is no unit, no line, or
    `at` is on the unit already."""
    due = _promotion_due(state, owner, at)
    if due is None:
        let_go(state, out, owner, at)
        return
    state.releasing.setdefault(owner.account_key, []).append((owner.id, at, due))
    state.schedule(due, PROMOTION, owner.id)
    # The owner and its line are remembered until the promotion: a rejected entry is kept
    # one protection period, and one in line at the expiry must not be forgotten before
    # its turn (forgetting at the same instant comes after the promotion, ORDER).
    for entry in (owner, *(state.entries.get(i) for i in state.beaten[owner.id])):
        keep_until(state, entry, due)


def keep_until(state: AdjudicationState, entry: Entry | None, until: int) -> None:
    """Remember an ended `entry` at least until `until`."""
    if entry is not None and not entry.active and entry.retain_until < until:
        entry.retain_until = until
        state.schedule(until, FORGET_ENTRY, entry.id)


def _promotion_due(state: AdjudicationState, owner: Entry, at: int) -> int | None:
    """When the line of `owner`, expired at `at`, is promoted, if later than `at`: only
    when someone is in it (a line the expiry lets go unpromoted, or an empty one, holds
    no account for anyone)."""
    unit = state.policy(owner.policy_version).promotion_unit
    if unit is None or not _line(state, owner, at, None, state.beaten.get(owner.id)):
        return None
    due = due_on(at, span_us(unit))
    return due if due > at else None


def on_promotion(state: AdjudicationState, out: list[DomainEvent], deadline: int,
                 target: str, level: int) -> None:
    """The `PROMOTION` timer of `target`, an owner that expired: its line steps up now."""
    found = pending_release(state, target, deadline)
    if found is None:
        return  # fired already (a duplicate firing)
    owner, expired_at = found
    key = owner.account_key
    pending = state.releasing[key]
    pending.remove((owner.id, expired_at, deadline))
    if not pending:
        del state.releasing[key]
    let_go(state, out, owner, deadline, released_at=expired_at)


def pending_release(state: AdjudicationState, target: str,
                    deadline: int) -> tuple[Entry, int] | None:
    """(the owner, its expiry) of a `PROMOTION` timer still to fire; None: fired."""
    owner = state.entries.get(target)
    if owner is None:
        return None
    for owner_id, expired_at, due in state.releasing.get(owner.account_key, ()):
        if owner_id == target and due == deadline:
            return owner, expired_at
    return None


def pending_over(state: AdjudicationState, entry: Entry, identity: AccountIdentity | None,
                 policy: Policy, own: tuple[str, float] | None,
                 asked: Lookup | None) -> list[tuple[Entry, int]]:
    """The expired owners whose line is still to be promoted (`state.releasing`) on
    `entry`'s customer (a key it matches confidently, as `find_collisions` finds the
    holders) and overlapping its scope, with when: a newcomer there queues behind the line
    (nobody takes the customer between the expiry and the promotion)."""
    if not state.releasing:
        return []
    found: list[tuple[Entry, int]] = []
    review_names = policy.match.name_only == "review"
    for key in evidence_keys(state, entry, identity, policy, review_names, own, asked):
        for owner_id, _, due in state.releasing.get(key, ()):
            owner = state.entries.get(owner_id)
            if owner is None or owner is entry or any(o is owner for o, _ in found):
                continue
            if overlaps(entry.products, owner.products, policy,
                        state.policy(owner.policy_version)):
                found.append((owner, due))
    return found


def queue_behind(state: AdjudicationState, out: list[DomainEvent], entry: Entry,
                 owners: list[tuple[Entry, int]], label: str, policy: Policy, at: int) -> None:
    """Reject `entry` (a newcomer while `owners`' lines wait for their promotion): it joins
    their lines, behind the registrations already in them (`let_go`, `released_at`). Its
    decision names no one (the owners have ended: invariant 14) and no time (the
    promotion's moment is the expiry to the unit, which the partner view shows only of
    the owner's `protected_until`, rounded)."""
    retire(state, entry, "rejected", policy, at)
    entry.beaten_by = tuple(owner.id for owner, _ in owners)
    entry.near_by = ()
    entry.decided_at = at
    remember_beaten(state, entry)
    keep_until(state, entry, max(due for _, due in owners))
    version = entry.policy_version
    out.append(outcomes.decision(
        entry, PENDING, version,
        f"Rejected: the registration that protected the account {label}"
        f"{explain.scope(entry)} has ended and the account passes to the registrations "
        f"next in line; this one joins that line, behind them "
        f"{explain.tag(PENDING, version)}.", at))


def let_go(state: AdjudicationState, out: list[DomainEvent], owner: Entry, at: int,
           settled_by: str | None = None, released_at: int | None = None) -> None:
    """`owner` (an approved, exclusive entry) just stopped owning. The promotion's
    explanation says neither how it ended nor how many were in line (a partner learns no
    rival's outcome or count from it); the evidence names the owner. `settled_by`: the
    key of the review elsewhere whose settlement just rejected it leaving its scope free
    (relay.py, `line_free`). `released_at`: when it expired, for a promotion deferred to
    the unit (`on_promotion`): the line counts from then, and the registrations that
    joined it since (`queue_behind`) come after those already in it."""
    line = _line(state, owner, at if released_at is None else released_at, settled_by,
                 state.beaten.pop(owner.id, None))
    state.appealed.pop(owner.id, None)  # appeals against this grant end with it, like its line
    if not line:
        return
    policy = state.policy(owner.policy_version)
    if released_at is None:
        ordered = in_line(state, line, policy)
    else:
        ordered = in_line(state, [e for e in line if e.decided_at < released_at], policy) \
            + in_line(state, [e for e in line if e.decided_at >= released_at], policy)
    for candidate in ordered:
        own = state.policy(candidate.policy_version)
        if inactive(state, candidate):
            continue
        back = brought_back(candidate)
        collisions = find_collisions(state, candidate, back, own)
        blocked = any(held_exclusively(state, c.entry) and c.confident for c in collisions)
        if blocked:
            continue
        near = _near_copies(state, candidate, own)
        if back is not None:
            near += near_by_names(state, candidate, collisions, near)
        if near:
            _review(state, out, candidate, near, own, at)
            continue
        grant(state, candidate, own, at)
        candidate.beaten_by = ()
        candidate.dispute_id = None
        out.append(outcomes.decision(
            candidate, RULE, policy.version,
            f"Approved: the registration that protected the account "
            f"{explain.account_label(candidate.account_key)}{explain.scope(candidate)} "
            f"has ended; this one is next in line (by {explain.precedence_words(policy)})"
            f"{explain.protected_until(candidate)} {explain.tag(RULE, policy.version)}.",
            at, [outcomes.fellow_evidence(state, owner, candidate.account_key, candidate)]))


def _line(state: AdjudicationState, owner: Entry, released_at: int, settled_by: str | None,
          line_ids: list[str] | None) -> list[Entry]:
    """Who may step up when `owner` lets go at `released_at` (`line_ids`: its line as
    remembered, `state.beaten`): nobody when it is a copy, a review elsewhere holds its
    line back, or its policy says `free`; else those still rejected in its favour within
    `release_window`."""
    if not line_ids or owner.mirror:
        return []
    if any(key != settled_by and (owner.id, key) not in state.settled_watch
           for key in state.watchers.get(owner.id, ())):
        # A review on another partition weighed (or weighs) a rival against its copy: that
        # partition approves its survivor when the copy ends, knowing nothing of this
        # line, and one promoted here would be a second owner nobody weighed it against
        # (session 25 rival, invariant 1). The line is let go unpromoted; a rejection in
        # it may still be contested (the edge reports the other keys ahead of a contest).
        # The review whose own settlement ended it, saying nothing it kept holds its
        # scope, is not such a review: it has settled and decides no one after it (else
        # the rightful next in line was never weighed again: a customer left with no
        # owner; session 25 rival attack), nor is one that settled keeping the copy as
        # it was with nothing beside it (`state.settled_watch`).
        return []
    policy = state.policy(owner.policy_version)
    if policy.on_release != "promote_next":
        return []
    since = released_at - span_us(policy.release_window)
    return [
        e for e in (state.entries.get(i) for i in line_ids)
        if e is not None and e.status == "rejected" and owner.id in e.beaten_by
        and e.decided_at >= since and not e.mirror
    ]


def brought_back(entry: Entry) -> AccountIdentity | None:
    """The names `entry`'s rejection took back (`Entry.unfiled`), as the identity a
    promotion weighs it by, else None (its key and links alone, as ever). Approved, it
    files them again (`AdjudicationState.activate`): they are weighed first as a
    newcomer's would be, so a customer another partner came to hold by one of them while
    they were nobody's gets no second owner (session 30 rival review)."""
    if entry.unfiled is None:
        return None
    name, country = entry.unfiled
    return AccountIdentity(None, None, name, country) if name else None


def _near_copies(state: AdjudicationState, candidate: Entry, policy: Policy) -> list[Entry]:
    """The copies `candidate`'s rejection flagged as possible duplicates that still stand
    beside it: active, held exclusively, another party's, overlapping (as a contest weighs
    them, `disputes._file`: only copies, a near match on this partition's own keys is
    left as it was)."""
    found = []
    for rid in candidate.near_by:
        other = state.entries.get(rid)
        if other is not None and other.active and other.mirror \
                and held_exclusively(state, other) and not _one_party(other, candidate) \
                and overlaps(candidate.products, other.products, policy,
                             state.policy(other.policy_version)):
            found.append(other)
    return found


def near_by_names(state: AdjudicationState, candidate: Entry, collisions: list[Collision],
                   near: list[Entry]) -> list[Entry]:
    """The holders the names `candidate`'s rejection took back match as possible
    duplicates only (`brought_back`; a name for a person, e.g. under `match.name_only:
    review`): active, held exclusively, another party's, not flagged already. As a newcomer
    filing those names would, it waits for a person beside them."""
    found: list[Entry] = []
    for c in collisions:
        other = c.entry
        if not c.confident and other is not candidate and other not in near \
                and other not in found and other.active and held_exclusively(state, other) \
                and not _one_party(other, candidate):
            found.append(other)
    return found


def _one_party(a: Entry, b: Entry) -> bool:
    return a.party_type == b.party_type and a.incumbency_party == b.incumbency_party


def _review(state: AdjudicationState, out: list[DomainEvent], candidate: Entry,
            near: list[Entry], policy: Policy, at: int) -> None:
    """Next in line, but possibly the customer of a registration held on another key (a
    copy its rejection flagged): a person decides, as for a newcomer (rule 7); promoted
    outright it was that one's second owner once its own review closed moot elsewhere."""
    from services.adjudication.domain.disputes import draw_into_dispute  # disputes imports us

    hold_for_review(state, candidate, at)
    candidate.beaten_by = ()
    candidate.dispute_id = None
    evidence = [outcomes.near_evidence(e, candidate.account_key, candidate) for e in near]
    dispute = draw_into_dispute(state, out, candidate, near, "possible_duplicate",
                                "possible_duplicate", policy, at, evidence)
    label = explain.account_label(candidate.account_key)
    out.append(outcomes.decision(
        candidate, "possible_duplicate", policy.version,
        f"In review: the registration that protected the account {label}"
        f"{explain.scope(candidate)} has ended and this one is next in line, but the "
        f"account may be the same customer as an account claimed by another party (a near "
        f"match a person must confirm); dispute {dispute.id} is with {dispute.owner_id}, due "
        f"{explain.day(dispute.due_at)} {explain.tag('possible_duplicate', policy.version)}.",
        at, evidence, ("possible_duplicate",)))
