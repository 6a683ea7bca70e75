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
happens: the next newcomer gets the account. A win in the CRM is not a release: the
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
    find_collisions,
    held_exclusively,
    overlaps,
)
from services.adjudication.domain.precedence import in_line
from services.adjudication.domain.protection import grant, hold_for_review, inactive
from services.adjudication.domain.state import AdjudicationState, Entry
from shared.accounts.identity import AccountIdentity
from shared.events import DomainEvent
from shared.policy import Policy

RULE = "promoted_on_release"
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


def let_go(state: AdjudicationState, out: list[DomainEvent], owner: Entry, at: int,
           settled_by: str | None = None) -> None:
    """`owner` (an approved, exclusive entry) just stopped owning. The promotion's
    explanation says neither how it ended nor how many were in line (a partner learns no
    rival's outcome or count from it); the evidence names the owner. `settled_by`: the
    key of the review elsewhere whose settlement just rejected it leaving its scope free
    (relay.py, `line_free`)."""
    line_ids = state.beaten.pop(owner.id, None)
    state.appealed.pop(owner.id, None)  # appeals against this grant end with it, like its line
    if not line_ids or owner.mirror:
        return
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
        return
    policy = state.policy(owner.policy_version)
    if policy.on_release != "promote_next":
        return
    since = at - span_us(policy.release_window)
    line = [
        e for e in (state.entries.get(i) for i in line_ids)
        if e is not None and e.status == "rejected" and owner.id in e.beaten_by
        and e.decided_at >= since and not e.mirror
    ]
    for candidate in in_line(state, line, policy):
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
