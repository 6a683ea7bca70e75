"""Disputes: collisions that need a person, and how they are settled.

A dispute opens automatically when nothing in the policy separates a new registration from
an active one (a tie), when a newcomer outranks an approved registration (approved
protection is never taken away without a person), when a name match in the review band
may be the same customer, or when a cross-key link reveals two owners; a partner can also
contest its own rejection. Each entry is in at most one open dispute: a rival that collides
with members of an open dispute joins it, and two open disputes drawn together merge into
the older one.

Only the currently assigned owner (or an admin) may acknowledge or resolve; acting on a
resolved dispute is refused (`DisputeActionRejected`, the API's 409). Outcomes:

- `award`: the named registration is approved (rule `dispute_resolution`), the rest rejected;
- `split`: percentages summing to 100 over members; named ones approved with
  `credit_percent`, the others rejected;
- `co_sell`: every member approved, sharing the account;
- `reject_all`: every member rejected;
- `distinct` (possible-duplicate and cross-key reviews only): not the same customer, every
  member approved on its own.

A dispute whose members drop to one (withdrawn, expired, closed, partner exit) is `moot`:
the remaining member is approved if it was waiting in review.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal

from services.adjudication.domain import explain, outcomes, release
from services.adjudication.domain.escalation import LevelTimes, last_level, level_times
from services.adjudication.domain.instants import from_us, human_span, span_us, to_us
from services.adjudication.domain.matching import find_collisions, held_exclusively, overlaps
from services.adjudication.domain.precedence import in_line
from services.adjudication.domain.protection import (
    extend_after_dispute,
    grant,
    hold_for_review,
    inactive,
    retire,
)
from services.adjudication.domain.state import (
    DEADLINE,
    FORGET_DISPUTE,
    REMINDER,
    AdjudicationState,
    Dispute,
    Entry,
)
from shared.accounts import Identifiers, separate_customers
from shared.business_time import due_on
from shared.events import (
    ConflictEvidence,
    CopiesInReview,
    DisputeAcknowledged,
    DisputeAcknowledgementRecorded,
    DisputeActionRejected,
    DisputeEscalated,
    DisputeFiled,
    DisputeJoined,
    DisputeOpened,
    DisputeReminderDue,
    DisputeResolutionSubmitted,
    DisputeResolved,
    DisputeSlaBreached,
    DomainEvent,
    ProductAward,
    RelayedDecision,
    SettlementRelayed,
    Split,
)
from shared.events.disputes import (
    ActorRole,
    DisputeAction,
    DisputeRefusal,
    OpenReason,
    ResolvedOutcome,
)
from shared.policy import Policy

Out = list[DomainEvent]

_REVIEW_REASONS = frozenset({"possible_duplicate", "cross_key"})


def open_dispute_of(state: AdjudicationState, entry: Entry) -> Dispute | None:
    if entry.dispute_id is None:
        return None
    dispute = state.disputes.get(entry.dispute_id)
    return dispute if dispute is not None and dispute.status == "open" else None


def draw_into_dispute(
    state: AdjudicationState,
    out: Out,
    challenger: Entry,
    rivals: Sequence[Entry],
    reason: OpenReason,
    rule: str,
    policy: Policy,
    at: int,
    evidence: Sequence[ConflictEvidence],
    dispute_id: str | None = None,
    flagged: Sequence[Entry] = (),
) -> Dispute:
    """Put `challenger`, `rivals` and `flagged` in one open dispute.

    Without a `dispute_id` they join the open dispute any of them is already in that is
    furthest up the ladder, then the oldest (or a new one when there is none). With one (a
    partner's contest, whose id the API already returned) a dispute opens under that id;
    if some of them were already in an open dispute it carries on that dispute's level,
    owner and deadlines (a contest joins a dispute where it stands, never resets its SLA).
    Any other open dispute they are in is merged into the target, so an entry is never in
    two open disputes.

    A confident collision drawn into a possible-duplicate or cross-key review makes it a
    collision: its reason changes (so `distinct`, which approves everyone, is no longer
    an outcome that could leave two owners of one customer).

    `flagged`: the challenger's possible duplicates next to its confident collision
    (DESIGN rule 7). They join as members, so a person's settlement covers them, and the
    reason stays the collision's. One that joins approved and in no open dispute is
    there only as the challenger's possible duplicate (`Dispute.flagged`): a settlement (a
    person's or the final-breach fallback's) weighs it against the challenger alone,
    never against the members it stood beside before. Drawn in confidently later, it is a
    member like any other."""
    drawn = [challenger, *rivals]
    near = [e for e in flagged if all(e is not d for d in drawn)]
    pairs = tuple((e.id, challenger.id) for e in near
                  if e.status == "approved" and _free_or_flagged(state, e))
    existing: list[Dispute] = []
    for entry in (*drawn, *near):
        found = open_dispute_of(state, entry)
        if found is not None and found not in existing:
            existing.append(found)
    # The one furthest up the ladder carries on (then the oldest): drawing disputes together
    # never resets a level or an SLA already running.
    existing.sort(key=lambda d: (-d.level, d.opened_at, d.id))
    reasons = [reason, *(d.reason for d in existing)]
    if dispute_id is None and existing:
        target = existing.pop(0)
        before = set(target.member_ids)
        changed = _upgrade_reason(target, reasons)
        _flag(target, existing, drawn, pairs)
        _merge(state, out, target, existing, [*drawn, *near], policy, at)
        _tell_homes(state, out, target, before, at)
        moved = _onto_unit(state, target, policy)
        out.append(
            DisputeJoined(
                dispute_id=target.id,
                account_key=target.account_key,
                added_ids=tuple(m for m in target.member_ids if m not in before),
                registration_ids=tuple(target.member_ids),
                joined_at=from_us(at),
                policy_version=policy.version,
                explanation=(
                    f"{challenger.id} collides with registrations already in dispute "
                    f"{target.id}, so it joins that dispute"
                    + (f", which is now a {target.reason} collision rather than a review"
                       if changed else "")
                    + (f"; its deadline moves onto the policy's deadline unit, due "
                       f"{explain.day(target.due_at)}" if moved else "")
                    + f" {explain.tag(rule, policy.version)}."
                ),
                evidence=tuple(evidence),
                reason=target.reason if changed else None,
                due_at=from_us(target.due_at) if moved else None,
            )
        )
        return target
    carried = existing[0] if existing else None
    target = _open(state, challenger, dispute_id or _fresh_id(state, challenger), reason,
                   policy, at, carried)
    _upgrade_reason(target, reasons)
    _flag(target, existing, drawn, pairs)
    _merge(state, out, target, existing, [*drawn, *near], policy, at)
    _tell_homes(state, out, target, set(), at,
                challenger if reason == "contested" and dispute_id is not None else None)
    where = (f"it carries on dispute {carried.id} at level {target.level} with "
             f"{target.owner_id}, due {explain.day(target.due_at)}" if carried is not None
             else f"level 1 is with {target.owner_id}, due {explain.day(target.due_at)}")
    out.append(
        DisputeOpened(
            dispute_id=target.id,
            account_key=target.account_key,
            registration_ids=tuple(target.member_ids),
            reason=_reason(target.reason),
            level=target.level,
            owner_id=target.owner_id,
            opened_at=from_us(at),
            due_at=from_us(target.due_at),
            reminder_at=from_us(target.reminder_at) if target.reminder_at else None,
            policy_version=target.policy_version,
            rule=rule,
            explanation=(
                f"Dispute {target.id} opened ({target.reason}) over {len(target.member_ids)} "
                f"registration{'s' if len(target.member_ids) != 1 else ''} on the account "
                f"{explain.account_label(target.account_key)}; {where} "
                f"{explain.tag(rule, policy.version)}."
            ),
            evidence=tuple(evidence),
            carries_on=carried.id if carried is not None else None,
        )
    )
    return target


def _tell_homes(state: AdjudicationState, out: Out, target: Dispute, before: set[str],
                at: int, appellant: Entry | None = None) -> None:
    """Copies (`Entry.mirror`) that joined `target` now: tell their own partitions, one
    `CopiesInReview` per copy key, so each tells this partition when its registration ends
    there (relay.tell_ended): otherwise a review left with one live party would wait on a
    registration its own partition rejected (invariant 5). The answer goes to a key of this
    partition: a member of its own (none: nobody here to answer for, nothing is told).

    `appellant`: the registration whose contest opened `target`. The copies it lost to are
    named `appealed`, so their own partition remembers that its partner contested losing
    to them (`state.appealed`): else the partner registered the customer again under a key
    of that partition, lost to the same registration there and contested again, a fresh
    level-1 dispute against the rival a person had just heard it against (invariant 9;
    session 25 rival). The converse (session 26): this partition's own registrations it
    lost to are named `appealed_here`, to the copies' partitions and to every review
    elsewhere that holds a copy of one (`state.watchers`), which remember the appeal
    beside their copies (relay.watch)."""
    review_key = next((e.account_key for m in target.member_ids
                       for e in (state.entries.get(m),) if e is not None and not e.mirror),
                      None)
    if review_key is None:
        return
    by_key: dict[str, list[str]] = {}
    for member in target.member_ids:
        entry = state.entries.get(member)
        if entry is not None and entry.mirror and entry.active and member not in before:
            by_key.setdefault(entry.account_key, []).append(member)
    # The appellant's own partition's rivals travel too (`appealed_here`): the copies'
    # partition may hold copies of them, and the partner may register there again.
    here = tuple(i for i in appellant.beaten_by
                 for e in (state.entries.get(i),) if e is not None and not e.mirror
                 and e.active) if appellant else ()
    for key in by_key:
        for i in here:
            # Told of the appeal, that partition keeps it beside its copy while the copy
            # lasts: it must hear when the rival ends here (relay.tell_ended), or its copy
            # -- guarding only, no review of it there -- stays approved past a person's
            # award against the rival, and the partner that won the appeal is refused its
            # contest there as a second one (session 26, rival 3). Watching as a review
            # that settled (`settled_watch`): told of the end, holding no line back.
            keys = state.watchers.setdefault(i, [])
            if key not in keys:
                keys.append(key)
                state.settled_watch.add((i, key))
    for key, ids in by_key.items():
        appealed = tuple(i for i in ids if i in appellant.beaten_by) if appellant else ()
        out.append(CopiesInReview(account_key=key, dispute_id=target.id,
                                  review_key=review_key, registration_ids=tuple(ids),
                                  drawn_at=from_us(at),
                                  contested_by=appellant.party_id
                                  if appellant is not None and (appealed or here) else None,
                                  appealed=appealed, appealed_here=here))
    if appellant is None or not here:
        return
    # Reviews elsewhere that hold a copy of such a rival (`state.watchers`) but drew none
    # into this contest: told the appeal alone (no copies named), as they may file the
    # partner's next registration beside that copy.
    for key in dict.fromkeys(k for i in here for k in state.watchers.get(i, ())):
        if key not in by_key:
            out.append(CopiesInReview(account_key=key, dispute_id=target.id,
                                      review_key=review_key, registration_ids=(),
                                      drawn_at=from_us(at), contested_by=appellant.party_id,
                                      appealed_here=here))


def _reason(value: str) -> OpenReason:
    reasons: dict[str, OpenReason] = {
        "tie": "tie", "challenger": "challenger", "possible_duplicate": "possible_duplicate",
        "contested": "contested", "cross_key": "cross_key",
    }
    return reasons[value]


def _flag(target: Dispute, merged: Sequence[Dispute], drawn: Sequence[Entry],
          pairs: tuple[tuple[str, str], ...]) -> None:
    """The (member, newcomer) pairs `target` holds a member by only as the newcomer's
    possible duplicate: its own, the merged disputes' and `pairs`, less those of members
    drawn in confidently now."""
    flagged = [*target.flagged, *(p for d in merged for p in d.flagged), *pairs]
    if flagged:
        confident = {e.id for e in drawn}
        target.flagged = tuple(dict.fromkeys(p for p in flagged if p[0] not in confident))


def _free_or_flagged(state: AdjudicationState, entry: Entry) -> bool:
    """In no open dispute, or in one only as a possible duplicate (so a second newcomer
    it is a possible duplicate of is weighed against it as well)."""
    dispute = open_dispute_of(state, entry)
    return dispute is None or any(m == entry.id for m, _ in dispute.flagged)


def only_flagged(dispute: Dispute) -> dict[str, frozenset[str]]:
    """The members `dispute` holds only as possible duplicates, each with the newcomers
    it is one of (rule 7)."""
    found: dict[str, set[str]] = {}
    for member, newcomer in dispute.flagged:
        found.setdefault(member, set()).add(newcomer)
    return {m: frozenset(n) for m, n in found.items()}


def _upgrade_reason(target: Dispute, reasons: Sequence[str]) -> bool:
    """A review (possible duplicate, cross key) that a collision joins becomes that
    collision; True if the reason changed."""
    if target.reason not in _REVIEW_REASONS:
        return False
    collision = next((r for r in reasons if r not in _REVIEW_REASONS), None)
    if collision is None:
        return False
    target.reason = collision
    return True


def dispute_id_for(registration_id: str) -> str:
    """The id of a dispute opened by `registration_id`: deterministic (a replay opens the
    same dispute) yet revealing nothing about it, because partners see dispute ids and must
    never learn a competitor's registration id (invariant 7)."""
    return "dsp_" + hashlib.sha256(f"dispute:{registration_id}".encode()).hexdigest()[:26]


def _fresh_id(state: AdjudicationState, challenger: Entry) -> str:
    base = dispute_id_for(challenger.id)
    candidate, n = base, 1
    while candidate in state.disputes:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _merge(
    state: AdjudicationState,
    out: Out,
    target: Dispute,
    others: Sequence[Dispute],
    drawn: Sequence[Entry],
    policy: Policy,
    at: int,
) -> None:
    members = set(target.member_ids)  # `member_ids` keeps their order, this the look-ups
    for other in others:
        for member_id in other.member_ids:
            if member_id not in members:
                members.add(member_id)
                target.member_ids.append(member_id)
            member = state.entries.get(member_id)
            if member is not None:
                member.dispute_id = target.id
        _close(state, other, at)
        out.append(
            DisputeResolved(
                dispute_id=other.id,
                account_key=other.account_key,
                outcome="merged",
                registration_ids=tuple(other.member_ids),
                merged_into=target.id,
                level=other.level,
                resolved_at=from_us(at),
                rule="dispute_merged",
                policy_version=policy.version,
                explanation=(
                    f"Dispute {other.id} was merged into {target.id}: their registrations "
                    f"collide and are settled together."
                ),
            )
        )
    for entry in drawn:
        if entry.id not in members:
            members.add(entry.id)
            target.member_ids.append(entry.id)
        entry.dispute_id = target.id


def _open(
    state: AdjudicationState,
    challenger: Entry,
    dispute_id: str,
    reason: str,
    policy: Policy,
    at: int,
    carried: Dispute | None = None,
) -> Dispute:
    if carried is not None:
        # Carry on where the open dispute stands: its policy, level, owner and deadlines
        # (a reminder already past was sent, or silenced by an acknowledgement).
        reminder = carried.reminder_at
        dispute = Dispute(
            id=dispute_id,
            account_key=carried.account_key,
            member_ids=[],
            reason=reason,
            policy_version=carried.policy_version,
            opened_at=at,
            level=carried.level,
            owner_id=carried.owner_id,
            due_at=carried.due_at,
            reminder_at=reminder if reminder is not None and reminder > at else None,
            acknowledged=carried.acknowledged,
            breached=carried.breached,
            unit_us=carried.unit_us,
        )
        state.disputes[dispute_id] = dispute
        _onto_unit(state, dispute, policy, schedule=False)
        if not dispute.breached:
            _schedule_level(state, dispute)
        return dispute
    times = level_times(policy.escalation, 1, at)
    dispute = Dispute(
        id=dispute_id,
        account_key=challenger.account_key,
        member_ids=[],
        reason=reason,
        policy_version=policy.version,
        opened_at=at,
        level=1,
        owner_id=times.owner_id,
        due_at=times.due_at,
        reminder_at=times.reminder_at,
    )
    state.disputes[dispute_id] = dispute
    _schedule_level(state, dispute)
    return dispute


def _onto_unit(state: AdjudicationState, dispute: Dispute, policy: Policy,
               schedule: bool = True) -> bool:
    """A registration joining `dispute` under `policy` (or a contest carrying it on) moves
    its pending deadline onto the policy's `escalation.deadline_unit`, and the dispute
    keeps that unit for its later levels (`Dispute.unit_us`, session 30): a dispute opened
    under a document without a unit (`null`) kept exact deadlines after one with a unit
    was published, so a partner joining it late read the fallback's `decided_at` as a
    rival's submission plus the SLAs. Decided by the joiner's policy version (in the log),
    so a replay moves it alike; a joiner under a document without a unit changes nothing
    (older logs decide as before). Only ever later (`due_on`); a breached dispute has no
    deadline pending; the reminder stays (only the owner sees it). The old heap item goes
    stale (`on_deadline` checks `due_at`) and the new firing's id carries the moved
    deadline. True when the pending deadline moved (scheduled unless `schedule` is off:
    the caller schedules the level itself)."""
    unit = policy.escalation.deadline_unit
    if unit is None:
        return False
    dispute.unit_us = span_us(unit)
    if dispute.breached:
        return False
    due = due_on(dispute.due_at, dispute.unit_us)
    if due == dispute.due_at:
        return False
    dispute.due_at = due
    if schedule:
        state.schedule(due, DEADLINE, dispute.id, dispute.level)
    return True


def _schedule_level(state: AdjudicationState, dispute: Dispute) -> None:
    if dispute.reminder_at is not None:
        state.schedule(dispute.reminder_at, REMINDER, dispute.id, dispute.level)
    state.schedule(dispute.due_at, DEADLINE, dispute.id, dispute.level)


def _close(state: AdjudicationState, dispute: Dispute, at: int) -> None:
    dispute.status = "resolved"
    dispute.resolved_at = at
    policy = state.policy(dispute.policy_version)
    state.schedule(at + span_us(policy.protection_period), FORGET_DISPUTE, dispute.id)


# --- a party contests its rejection -------------------------------------------------------


def file(state: AdjudicationState, out: Out, event: DisputeFiled, policy: Policy) -> None:
    """A partner contests its own rejection. Contests end: only a rejection a precedence
    rule decided (not a duplicate, an inactive partner, or a person's resolution), once,
    within the entry's policy's `contest_window`, by an active partner, and never against
    the party's own registrations. With no live rival left the contest does not open a
    one-member dispute: the registration is approved at once. The possible duplicates the
    edge reported ahead of it (`AccountLinkReported.contest`) are weighed like a new
    registration's, then forgotten."""
    try:
        _file(state, out, event, policy)
    finally:
        entry = state.entries.get(event.registration_id)
        if entry is not None:
            reported = state.suspects.pop(event.registration_id, None)
            if reported:  # kept with it, as a new registration's (adjudicate)
                entry.reported = outcomes.add_reports(entry.reported, reported)


def _file(state: AdjudicationState, out: Out, event: DisputeFiled, policy: Policy) -> None:
    at = state.clock
    entry = state.entries.get(event.registration_id)

    def refuse(reason: DisputeRefusal, detail: str) -> None:
        out.append(_refusal(event.dispute_id, event.account_key, "file", event.partner_id,
                            reason, detail, policy.version, at))

    if entry is None or entry.mirror:
        return refuse("unknown_registration", f"no registration {event.registration_id} here")
    if entry.party_type != "partner" or entry.party_id != event.partner_id:
        return refuse("not_party", "only the registration's own partner may contest it")
    if event.dispute_id in state.disputes:
        return refuse("already_disputed", f"dispute {event.dispute_id} exists already")
    if open_dispute_of(state, entry) is not None:
        return refuse("already_disputed", f"{entry.id} is already in dispute {entry.dispute_id}")
    if inactive(state, entry):
        return refuse("partner_inactive",
                      f"the partner is {state.partner_status.get(entry.party_id)}, so it "
                      "cannot contest")
    if entry.status != "rejected" or not entry.beaten_by:
        return refuse("not_disputable",
                      "only a rejection decided by a precedence rule can be contested "
                      "(a dispute's resolution is final)")
    if entry.contested:
        return refuse("not_disputable", "this rejection was contested once already")
    if _appealed_before(state, entry):
        return refuse("not_disputable",
                      "the partner contested losing to the same registration once already: a "
                      "contest is one appeal, and registering again does not renew it")
    entry_policy = state.policy(entry.policy_version)
    if at > to_us(entry_policy.contest_closes(from_us(entry.decided_at))):
        return refuse("contest_window_passed",
                      f"a rejection can be contested within "
                      f"{human_span(span_us(entry_policy.contest_window))} of "
                      f"{explain.day(entry.decided_at)}")
    # Whoever it lost to, plus whatever took the scope since: all must be weighed together,
    # or an award could leave two owners. Never the party's own registrations.
    rivals = [
        state.entries[rid] for rid in entry.beaten_by
        if rid in state.entries and state.entries[rid].active
        and not same_party(state.entries[rid], entry)
    ]
    # With the names its rejection took back (`release.brought_back`): an award files
    # them again, so whoever came to hold a customer by one of them since is weighed too
    # (a confident match as a rival, a possible duplicate flagged; session 30).
    back = release.brought_back(entry)
    found = find_collisions(state, entry, back, entry_policy)
    collisions = [c.entry for c in found
                  if held_exclusively(state, c.entry) and (back is None or c.confident)]
    own = [c for c in collisions if same_party(c, entry)]
    if own:
        return refuse("not_disputable",
                      f"the partner already holds {own[0].id}, which overlaps it: a party "
                      "never holds two overlapping protections")
    for other in collisions:
        if other not in rivals:
            rivals.append(other)
    # The copies its rejection flagged as possible duplicates join too, as they join any
    # review beside a confident collision (rule 7): else a person awards or co-sells it
    # beside one nobody weighed it against (two owners, invariant 1; a copy is found by the
    # report that brought it, not by the key alone, so the rejection remembers them). Only
    # copies: a near match on this partition's own keys is left as it was (DESIGN.md, "A
    # contest weighs the copies its rejection flagged").
    near = [state.entries[rid] for rid in entry.near_by
            if rid in state.entries and state.entries[rid].active and state.entries[rid].mirror
            and held_exclusively(state, state.entries[rid])
            and not same_party(state.entries[rid], entry)
            and state.entries[rid] not in rivals]
    if back is not None:
        near += [other for other in release.near_by_names(state, entry, found, near)
                 if other not in rivals]
    entry.contested = True
    if not rivals:
        _contest_unopposed(state, out, entry, event, entry_policy, at)
        return
    for rid in entry.beaten_by:
        # One appeal per rival protection: remembered beside the rival for its grant, not
        # only while this registration is (its own policy may forget it sooner).
        if rid in state.entries:
            release.remember_appeal(state, rid, entry.party_id)
    hold_for_review(state, entry, at)
    evidence = tuple(outcomes.fellow_evidence(state, r, entry.account_key, entry) for r in rivals)
    # The rivals it lost to are drawn in: the person deciding must weigh them together.
    dispute = draw_into_dispute(state, out, entry, rivals, "contested", "contested", policy,
                                at, evidence, dispute_id=event.dispute_id, flagged=near)
    out.append(outcomes.decision(
        entry, "contested", entry_policy.version,
        f"In review: the partner contests this rejection ({event.reason}); dispute "
        f"{dispute.id} decides {explain.tag('contested', entry_policy.version)}.", at, evidence))


def _appealed_before(state: AdjudicationState, entry: Entry) -> bool:
    """Whether the same party already contested losing to one of the registrations `entry`
    lost to (with another registration, since withdrawn or rejected by the person who heard
    it). A contest is one appeal per rival protection: otherwise withdraw, register again
    and contest (or lose, register again and contest) opened a fresh level-1 dispute as
    often as the rival liked, and the ladder never reached its fallback. The earlier
    registration is found in the winner's line (`state.beaten`), kept while both are
    remembered (one protection period)."""
    for winner in entry.beaten_by:
        if entry.party_id in state.appealed.get(winner, ()):
            return True  # contested losing to its copy on another partition (relay.watch)
        for loser_id in state.beaten.get(winner, ()):
            loser = state.entries.get(loser_id)
            if loser is not None and loser is not entry and loser.contested \
                    and same_party(loser, entry):
                return True
    return False


def _contest_unopposed(state: AdjudicationState, out: Out, entry: Entry, event: DisputeFiled,
                       policy: Policy, at: int) -> None:
    """Everything the registration lost to has ended and nothing else overlaps it: the
    contest is moot at once and the registration approved (a fresh protection period)."""
    dispute = Dispute(
        id=event.dispute_id, account_key=entry.account_key, member_ids=[entry.id],
        reason="contested", policy_version=policy.version, opened_at=at, level=1,
        owner_id="", due_at=at, reminder_at=None,
    )
    state.disputes[dispute.id] = dispute
    entry.dispute_id = dispute.id
    entry.beaten_by = ()
    grant(state, entry, policy, at)
    _close(state, dispute, at)
    out.append(
        DisputeResolved(
            dispute_id=dispute.id,
            account_key=dispute.account_key,
            outcome="moot",
            registration_ids=(entry.id,),
            approved_ids=(entry.id,),
            level=1,
            resolved_at=from_us(at),
            rule="no_conflict",
            policy_version=policy.version,
            explanation=(
                f"Dispute {dispute.id} needs no decision: what {entry.id} lost to is no longer "
                f"active and nothing else overlaps it, so it is approved "
                f"{explain.tag('no_conflict', policy.version)}."
            ),
        )
    )
    out.append(outcomes.decision(
        entry, "no_conflict", policy.version,
        f"Approved on contest ({event.reason}): the registration it lost to is no longer "
        f"active and nothing else covers the account "
        f"{explain.account_label(entry.account_key)}{explain.scope(entry)}"
        f"{explain.protected_until(entry)} {explain.tag('no_conflict', policy.version)}.",
        at))


def same_party(a: Entry, b: Entry) -> bool:
    """One party: the same partner, or the direct team (whichever rep)."""
    return a.party_type == b.party_type and a.incumbency_party == b.incumbency_party


def same_party_under(a: Entry, b: Entry, policy: Policy) -> bool:
    """One party as a collision weighs it: a party's own registrations are never its
    rivals (a duplicate at filing; no review between them, invariant 5). The direct team
    is one party (policy `direct_team: one_party`): a second rep's claim on an account the
    team already holds is a duplicate, not a rival for the channel ladder. `rivals`: each
    rep is a party of its own."""
    if policy.direct_team == "rivals":
        return a.party_type == b.party_type and a.party_id == b.party_id
    return same_party(a, b)


# --- acknowledgement and resolution -------------------------------------------------------


def _actor_refusal(
    dispute: Dispute | None, actor_id: str, role: ActorRole
) -> tuple[DisputeRefusal, str] | None:
    if dispute is None:
        return "unknown_dispute", "no such dispute here"
    if dispute.status != "open":
        return "already_resolved", f"dispute {dispute.id} is already resolved"
    if role != "admin" and actor_id != dispute.owner_id:
        return "not_assigned", (
            f"dispute {dispute.id} is assigned to {dispute.owner_id} at level {dispute.level}"
        )
    return None


def acknowledge(
    state: AdjudicationState, out: Out, event: DisputeAcknowledged, policy: Policy
) -> None:
    at = state.clock
    dispute = state.disputes.get(event.dispute_id)
    refusal = _actor_refusal(dispute, event.actor_id, event.actor_role)
    if refusal is None and dispute is not None and dispute.acknowledged:
        refusal = ("already_acknowledged", f"level {dispute.level} is already acknowledged")
    if refusal is not None or dispute is None:
        reason, detail = refusal or ("unknown_dispute", "")
        out.append(_refusal(event.dispute_id, event.account_key, "acknowledge",
                            event.actor_id, reason, detail, policy.version, at))
        return
    dispute.acknowledged = True
    out.append(
        DisputeAcknowledgementRecorded(
            dispute_id=dispute.id,
            account_key=dispute.account_key,
            level=dispute.level,
            owner_id=dispute.owner_id,
            actor_id=event.actor_id,
            acknowledged_at=from_us(at),
            policy_version=dispute.policy_version,
        )
    )


def submit_resolution(
    state: AdjudicationState, out: Out, event: DisputeResolutionSubmitted, policy: Policy
) -> None:
    at = state.clock
    dispute = state.disputes.get(event.dispute_id)
    refusal = _actor_refusal(dispute, event.actor_id, event.actor_role)
    if refusal is None and dispute is not None:
        problem = _invalid_resolution(state, dispute, event)
        if problem is not None:
            refusal = ("invalid_resolution", problem)
    if refusal is not None or dispute is None:
        reason, detail = refusal or ("unknown_dispute", "")
        out.append(_refusal(event.dispute_id, event.account_key, "resolve", event.actor_id,
                            reason, detail, policy.version, at))
        return
    members = dispute.member_ids
    approved: dict[str, Decimal | None] = {}
    scopes: dict[str, frozenset[str]] = {}
    if event.outcome == "award" and event.awards:
        for award in event.awards:
            approved[award.registration_id] = None
            scopes[award.registration_id] = scopes.get(
                award.registration_id, frozenset()) | {award.product}
    elif event.outcome == "award":
        assert event.registration_id is not None
        approved[event.registration_id] = None
    elif event.outcome == "split":
        approved = {s.registration_id: s.percent for s in event.splits}
    elif event.outcome in ("co_sell", "distinct"):
        approved = dict.fromkeys(members)
    settle(state, out, dispute, event.outcome, approved, "dispute_resolution", at,
           resolved_by=event.actor_id, actor_role=event.actor_role, note=event.note,
           partner_note=event.partner_note,
           splits=event.splits, awarded=event.registration_id, awards=event.awards,
           scopes=scopes, keep_unconflicted=event.outcome in ("award", "split"))


def _invalid_resolution(
    state: AdjudicationState, dispute: Dispute, event: DisputeResolutionSubmitted
) -> str | None:
    members = dispute.member_ids
    live = {m: state.entries[m] for m in members if m in state.entries
            and state.entries[m].active}
    named: list[str] = []
    if event.outcome == "award" and event.awards:
        if event.registration_id is not None:
            return "an award names either registration_id or awards by product, not both"
        if state.policy(dispute.policy_version).scope != "account_product":
            return "awards by product need the policy scope account_product"
        products = [a.product for a in event.awards]
        if len(set(products)) != len(products):
            return "each product is awarded once"
        for award in event.awards:
            winner = live.get(award.registration_id)
            if winner is None:
                return f"awards name live registrations of the dispute, among {list(live)}"
            if winner.products is not None and award.product not in winner.products:
                return f"{award.registration_id} does not cover the product {award.product}"
        named = [a.registration_id for a in event.awards]
    elif event.outcome == "award":
        if event.registration_id not in members:
            return f"award needs registration_id, one of {members}"
        named = [event.registration_id]
    elif event.awards:
        return "awards by product are only for an award"
    elif event.outcome == "split":
        ids = [s.registration_id for s in event.splits]
        if not ids or len(set(ids)) != len(ids) or any(i not in members for i in ids):
            return f"splits must name distinct registrations of the dispute, among {members}"
        if sum((s.percent for s in event.splits), Decimal(0)) != Decimal(100):
            return "split percentages must sum to 100"
        named = ids
    elif event.outcome == "distinct" and dispute.reason not in _REVIEW_REASONS:
        return ("distinct settles only possible-duplicate and cross-key reviews"
                + (f"; this one is a {dispute.reason} collision"
                   if dispute.reason not in _REVIEW_REASONS else ""))
    for rid in named:
        entry = live.get(rid)
        if entry is not None and entry.status != "approved" and inactive(state, entry):
            return (f"{rid}'s partner is {state.partner_status.get(entry.party_id)}: it "
                    "cannot gain protection")
    return None


class _Settling:
    """What one settlement remembers while it weighs its members (links change only
    after it, `links.revisit`): each key's customer (`_customer`) and, per ordered pair of
    keys, whether `separate_customers` parts them (`_conflict`)."""

    __slots__ = ("customers", "separated")

    def __init__(self) -> None:
        self.customers: dict[str, Identifiers] = {}
        self.separated: dict[tuple[str, str], bool] = {}


def _conflict(state: AdjudicationState, a: Entry, b: Entry, policy: Policy,
              customers: _Settling | None = None) -> bool:
    """Whether settling for `b` can take `a` away: their scopes overlap and they may be one
    customer. Two members whose customers the sameness rule separates by identifiers
    (`separate_customers`: different domains or CRM ids and none shared, links included,
    and no confident name between them where no domains on both sides are there to
    compare: that pair `sort_out` sends to a person, session 26) never conflict, however a
    review's name matches drew them into one dispute (DESIGN.md, "A dispute never settles
    one customer against another"). A copy of another
    partition's registration (`Entry.mirror`) is never separated: its key's identifiers
    are filed on its own partition, and the edge reported it here as possibly (or surely)
    this customer."""
    if not _overlap(state, a, b, policy):
        return False
    if a.mirror or b.mirror:
        return True
    threshold = policy.match.name_threshold

    def named() -> bool:
        return state.index.names_match(a.account_key, b.account_key, threshold,
                                       policy.match.countryless_names)

    if customers is None:
        return not separate_customers(state.customer(a.account_key),
                                      state.customer(b.account_key), named)
    # Within one settlement (`customers` given) the answer depends on the two keys only:
    # remembered per ordered pair (a settlement that frees members weighs each against
    # those that stand, k² pairs of k members on up to k keys).
    pair = (a.account_key, b.account_key)
    apart = customers.separated.get(pair)
    if apart is None:
        apart = customers.separated[pair] = separate_customers(
            _customer(state, a.account_key, customers),
            _customer(state, b.account_key, customers), named)
    return not apart


def _customer(state: AdjudicationState, account_key: str,
              settling: _Settling) -> Identifiers:
    """`state.customer(account_key)`, remembered for one settlement: a settlement weighs
    every member against the winners and those that stand, O(k²) pairs of k members, but
    k keys at most."""
    customers = settling.customers
    found = customers.get(account_key)
    if found is None:
        found = customers[account_key] = state.customer(account_key)
    return found


def _overlap(state: AdjudicationState, a: Entry, b: Entry, policy: Policy) -> bool:
    """Whether two members' scopes overlap in a settlement: under the dispute's policy or
    either member's own, as at intake (`matching.overlaps`): a member submitted under
    `scope: account` claims the whole account even in a dispute opened under
    `account_product`, so no winner on another product leaves it standing beside it."""
    return (overlaps(a.products, b.products, policy, state.policy(a.policy_version))
            or overlaps(a.products, b.products, state.policy(b.policy_version)))


def settle(
    state: AdjudicationState,
    out: Out,
    dispute: Dispute,
    outcome: ResolvedOutcome,
    approved: dict[str, Decimal | None],
    rule: str,
    at: int,
    *,
    resolved_by: str | None = None,
    actor_role: ActorRole | None = None,
    note: str = "",
    partner_note: str | None = None,
    splits: Sequence[Split] = (),
    awarded: str | None = None,
    awards: Sequence[ProductAward] = (),
    scopes: dict[str, frozenset[str]] | None = None,
    keep_unconflicted: bool = False,
) -> None:
    """Close `dispute`: members in `approved` are approved (with their credit share; with
    `scopes`, narrowed to the products awarded to them), the rest rejected — except, with
    `keep_unconflicted` (awards, splits, fallbacks), members that do not overlap any
    winner: an approval that never conflicted with a winner stays, and one in review that
    overlaps neither a winner nor an approval that stays is approved (nothing is left to
    weigh it against). A member there only as a possible duplicate (`Dispute.flagged`) is
    weighed against the newcomers it is one of, never against the others (they stood side
    by side before). A member whose partner is inactive never gains protection here, nor
    does a copy of another partition's registration in review (`_kept_copy`). One
    decision per member follows the DisputeResolved (none for a copy left as it was)."""
    _close(state, dispute, at)
    policy = state.policy(dispute.policy_version)
    members = [state.entries[m] for m in dispute.member_ids if m in state.entries]
    live = [m for m in members if m.active]
    for entry in live:
        if scopes and entry.id in scopes:
            entry.products = state.intern_products(scopes[entry.id])
    # A copy in review stays in review (`_kept_copy`): it gains nothing here, so it takes
    # no approval away; it still keeps a member in review from being freed past it.
    winners = [m for m in live if m.id in approved
               and not (m.mirror and m.status != "approved")]
    flagged = only_flagged(dispute)
    customers = _Settling()  # links change after a settlement (links.revisit)

    def conflict(a: Entry, b: Entry) -> bool:
        if flagged and ((a.id in flagged and b.id not in flagged[a.id])
                        or (b.id in flagged and a.id not in flagged[b.id])):
            return False
        return _conflict(state, a, b, policy, customers)

    verdict: dict[str, str] = {}  # id -> "won" | "kept" | "freed" | "lost" | "inactive"
    for entry in live:
        if entry.id in approved:
            fresh = entry.status != "approved"
            verdict[entry.id] = "inactive" if fresh and inactive(state, entry) else "won"
        elif keep_unconflicted and not any(conflict(entry, w) for w in winners):
            verdict[entry.id] = "kept" if entry.status == "approved" else ""
        else:
            verdict[entry.id] = "lost"
    standing = [m for m in live if verdict[m.id] in ("won", "kept")]
    for entry in live:
        if verdict[entry.id] == "":
            clear = not inactive(state, entry) and not any(
                conflict(entry, o) for o in standing)
            verdict[entry.id] = "freed" if clear else "lost"
            if clear:
                standing.append(entry)
    approved_ids = tuple(m.id for m in live if verdict[m.id] in ("won", "kept", "freed"))
    rejected_ids = tuple(m.id for m in live if m.id not in approved_ids)
    out.append(
        DisputeResolved(
            dispute_id=dispute.id,
            account_key=dispute.account_key,
            outcome=outcome,
            registration_ids=tuple(dispute.member_ids),
            awarded_registration_id=awarded,
            splits=tuple(splits),
            awards=tuple(awards),
            approved_ids=approved_ids,
            rejected_ids=rejected_ids,
            resolved_by=resolved_by,
            actor_role=actor_role,
            note=note,
            partner_note=partner_note,
            level=dispute.level,
            resolved_at=from_us(at),
            rule=rule,
            policy_version=dispute.policy_version,
            explanation=_settled_sentence(dispute, outcome, approved_ids, rejected_ids, rule),
        )
    )
    released: list[Entry] = []
    copies: list[tuple[Entry, RelayedDecision]] = []  # the word on copies (relay.py)
    fellows = outcomes.Fellows(live, state)
    for i, entry in enumerate(live):
        entry_policy = state.policy(entry.policy_version)
        others = fellows.of(i)
        why = verdict[entry.id]
        settled = f"dispute {dispute.id} was settled as {outcome}"
        rescoped = bool(scopes and entry.id in scopes)
        if why in ("won", "kept", "freed") and _kept_copy(
                entry, approved.get(entry.id), rescoped):
            if entry.status != "approved":
                # It stays in review here; its own partition applies the share or scope
                # if it holds it approved by then (freed there by this same settlement).
                copies.append((entry, _word(entry, approved.get(entry.id), rescoped,
                                            shown=False)))
            elif standing == [entry] and not _in_another_review(state, entry, dispute):
                # Kept alone: its own partition no longer counts this review as
                # watching it, so its line may step up when it ends (release.let_go).
                copies.append((entry, RelayedDecision(registration_id=entry.id,
                                                      status="approved", kept=True)))
            continue
        if why in ("won", "kept", "freed"):
            entry.credit_percent = approved.get(entry.id)
            if entry.status != "approved":
                grant(state, entry, entry_policy, at)
            else:
                extend_after_dispute(state, entry, dispute.id, at)
            share = (f" with {entry.credit_percent}% of the credit"
                     if entry.credit_percent is not None else "")
            products = (f" for {', '.join(sorted(scopes[entry.id]))}"
                        if scopes and entry.id in scopes else "")
            reason = {
                "won": f"{settled}{products}",
                "kept": _kept_sentence(settled, entry, winners, flagged),
                "freed": f"{settled} and nothing that stands overlaps this registration",
            }[why]
            sentence = (f"Approved{share}: {reason}{explain.protected_until(entry)} "
                        f"{explain.tag(rule, dispute.policy_version)}.")
        else:
            was_owner = entry.status == "approved"
            entry.credit_percent = None
            entry.beaten_by = ()  # a person's resolution is final: nothing to contest
            retire(state, entry, "rejected", entry_policy, at)
            entry.protected_until = None
            if was_owner:
                released.append(entry)
            detail = (f"; the partner is {state.partner_status.get(entry.party_id)}, so it "
                      f"cannot gain protection" if why == "inactive" else "")
            sentence = (f"Rejected: {settled}{detail} "
                        f"{explain.tag(rule, dispute.policy_version)}.")
        out.append(outcomes.decision(entry, rule, dispute.policy_version, sentence, at, others))
        if entry.mirror and entry.status == "approved":
            copies.append((entry, _word(entry, entry.credit_percent, True)))
        elif entry.mirror:
            copies.append((entry, RelayedDecision(
                registration_id=entry.id, status="rejected", line_free=not any(
                    conflict(entry, o) for o in standing if o is not entry)
                and not _held_beside(state, entry, live, policy, customers))))
    for entry in released:
        release.let_go(state, out, entry, at)
    if copies:
        out.extend(_relayed(dispute, outcome, rule, at, copies))


def _held_beside(state: AdjudicationState, copy: Entry, live: list[Entry], policy: Policy,
                 customers: _Settling) -> bool:
    """Whether an approval of this partition that is no member of the settlement still
    holds `copy`'s scope under a key of its members (with their links): one an earlier
    review approved beside the copy (a split or co-sell on the same key), say. The copy's
    home ignores every review of this key once the settlement frees its line
    (`line_free`, `release.let_go`), so such an approval must keep the line back: else
    the next in line was promoted beside it, two owners nobody weighed together
    (invariant 1; session 26, found by `ElsewhereRecentRules`)."""
    members = {m.id for m in live}
    keys = {k for m in live if not m.mirror for k in state.cluster(m.account_key)}
    return any(
        other.id not in members and not other.mirror and other.status == "approved"
        and held_exclusively(state, other) and _conflict(state, copy, other, policy, customers)
        for key in sorted(keys) for other in state.active_under(key))


def _in_another_review(state: AdjudicationState, entry: Entry, dispute: Dispute) -> bool:
    """Whether another open dispute here holds `entry` (its home keeps watching)."""
    return any(d is not dispute and d.status == "open" and entry.id in d.member_ids
               for d in state.disputes.values())


def _word(entry: Entry, credit_percent: Decimal | None, rescoped: bool,
          shown: bool = True) -> RelayedDecision:
    """A settlement's approval of the copy `entry` (with its share, and its scope when
    the settlement set one), for its own partition."""
    products = entry.products
    return RelayedDecision(
        registration_id=entry.id, status="approved", credit_percent=credit_percent,
        scope_products=(tuple(sorted(products)) if rescoped and products is not None
                        else None), shown=shown)


def _relayed(dispute: Dispute, outcome: ResolvedOutcome, rule: str, at: int,
             copies: Sequence[tuple[Entry, RelayedDecision]]) -> list[DomainEvent]:
    """What the settlement decided about `copies`, for their own partitions: one
    `SettlementRelayed` per copy key, in the order the keys first appear (relay.py; the
    worker appends them to the intake of that key, never to the decisions topic)."""
    by_key: dict[str, list[RelayedDecision]] = {}
    for entry, word in copies:
        by_key.setdefault(entry.account_key, []).append(word)
    return [SettlementRelayed(account_key=key, dispute_id=dispute.id,
                              decided_key=dispute.account_key, outcome=outcome,
                              rule=rule, policy_version=dispute.policy_version,
                              decided_at=from_us(at), decisions=tuple(words))
            for key, words in by_key.items()]


def _kept_sentence(settled: str, entry: Entry, winners: Sequence[Entry],
                   flagged: dict[str, frozenset[str]]) -> str:
    if entry.id in flagged:
        return (f"{settled}; this registration was in it only as the possible duplicate of "
                f"a registration that did not win, so it keeps its protection")
    if any(w.id in flagged for w in winners):
        return (f"{settled}; what won was in it only as another registration's possible "
                f"duplicate and is not weighed against this one, so it keeps its protection")
    return f"{settled} and this registration does not overlap what was awarded, so it keeps " \
        f"its protection"


def _kept_copy(entry: Entry, credit_percent: Decimal | None, rescoped: bool) -> bool:
    """A copy of another partition's registration (`Entry.mirror`) that stands and that the
    settlement would only restate or newly approve: it says nothing about it. One approved
    as it was (same credit share, no products awarded to it) keeps it: its protection is its
    own partition's to keep, extend or end, and a decision restating it could reach readers
    after that partition ended it, and bring it back approved past its end. One in review
    stays in review: only its own partition grants it a protection (and expires it), and an
    approval from here showed it approved past its end, beside the rival its own partition
    preferred (invariant 15)."""
    if not entry.mirror:
        return False
    return entry.status != "approved" or (not rescoped
                                          and entry.credit_percent == credit_percent)


def _settled_sentence(
    dispute: Dispute, outcome: str, approved: tuple[str, ...], rejected: tuple[str, ...],
    rule: str,
) -> str:
    parts = [f"Dispute {dispute.id} resolved as {outcome} at level {dispute.level}"]
    if approved:
        parts.append(f"approved: {', '.join(approved)}")
    if rejected:
        parts.append(f"rejected: {', '.join(rejected)}")
    return "; ".join(parts) + f" {explain.tag(rule, dispute.policy_version)}."


def remove_member(state: AdjudicationState, out: Out, entry: Entry, at: int) -> None:
    """`entry` left the active set (withdrawn, expired, closed, partner exit) while in an
    open dispute; a dispute left with a single party (one member, or several of one party
    that only the leaver stood between) is moot: nobody is left to dispute with."""
    dispute = open_dispute_of(state, entry)
    if dispute is None:
        return
    if entry.id in dispute.member_ids:
        dispute.member_ids.remove(entry.id)
    remaining = [state.entries[m] for m in dispute.member_ids
                 if m in state.entries and state.entries[m].active]
    # A member there only as a possible duplicate (rule 7) is weighed against its
    # newcomers alone: with none of them left it disputes with no one.
    flagged = only_flagged(dispute)
    ids = {m.id for m in remaining}
    parties = {(m.party_type, m.incumbency_party) for m in remaining
               if m.id not in flagged or flagged[m.id] & ids}
    if len(parties) > 1:
        return
    # The survivors (if any) keep what they had; those waiting in review have no rival left
    # (one party's own entries never overlap: the later would have been a duplicate).
    settle(state, out, dispute, "moot", {m.id: m.credit_percent for m in remaining},
           "no_conflict", at)


# --- timers -------------------------------------------------------------------------------


def on_reminder(state: AdjudicationState, out: Out, deadline: int, target: str, level: int) -> None:
    dispute = state.disputes.get(target)
    if (dispute is None or dispute.status != "open" or dispute.level != level
            or dispute.reminder_at != deadline or dispute.acknowledged):
        return
    out.append(
        DisputeReminderDue(
            dispute_id=dispute.id,
            account_key=dispute.account_key,
            level=level,
            owner_id=dispute.owner_id,
            reminder_at=from_us(deadline),
            due_at=from_us(dispute.due_at),
            policy_version=dispute.policy_version,
        )
    )


def on_deadline(state: AdjudicationState, out: Out, deadline: int, target: str, level: int) -> None:
    dispute = state.disputes.get(target)
    if (dispute is None or dispute.status != "open" or dispute.level != level
            or dispute.due_at != deadline or dispute.breached):
        return
    policy = state.policy(dispute.policy_version)
    escalation = policy.escalation
    if level < last_level(escalation):
        times = level_times(escalation, level + 1, deadline)
        if dispute.unit_us is not None:  # a joiner's policy moved it onto its unit
            times = LevelTimes(times.owner_id, due_on(times.due_at, dispute.unit_us),
                               times.reminder_at)
        dispute.level = level + 1
        dispute.owner_id = times.owner_id
        dispute.due_at = times.due_at
        dispute.reminder_at = times.reminder_at
        dispute.acknowledged = False
        _schedule_level(state, dispute)
        out.append(
            DisputeEscalated(
                dispute_id=dispute.id,
                account_key=dispute.account_key,
                from_level=level,
                to_level=level + 1,
                owner_id=times.owner_id,
                breached_deadline=from_us(deadline),
                due_at=from_us(times.due_at),
                reminder_at=from_us(times.reminder_at) if times.reminder_at else None,
                policy_version=policy.version,
                explanation=(
                    f"Dispute {dispute.id} was not resolved by its level {level} deadline "
                    f"{explain.day(deadline)}; escalated to {times.owner_id} at level "
                    f"{level + 1}, due {explain.day(times.due_at)} "
                    f"{explain.tag('escalation', policy.version)}."
                ),
            )
        )
        return
    if escalation.on_final_breach == "keep_open":
        dispute.breached = True
        out.append(
            DisputeSlaBreached(
                dispute_id=dispute.id,
                account_key=dispute.account_key,
                level=level,
                owner_id=dispute.owner_id,
                breached_deadline=from_us(deadline),
                policy_version=policy.version,
                explanation=(
                    f"Dispute {dispute.id} passed the last level's deadline "
                    f"{explain.day(deadline)}; policy keeps it open with "
                    f"{dispute.owner_id} {explain.tag('keep_open', policy.version)}."
                ),
            )
        )
        return
    live = [state.entries[m] for m in dispute.member_ids
            if m in state.entries and state.entries[m].active]
    if not live:
        settle(state, out, dispute, "moot", {}, "no_conflict", deadline)
        return
    if dispute.reason == "possible_duplicate":
        # Nobody said they are the same customer: two customers, each keeps its own.
        settle(state, out, dispute, "final_breach_fallback", dict.fromkeys(m.id for m in live),
               "final_breach_fallback", deadline)
        return
    winners = fallback_winners(state, live, policy)
    settle(state, out, dispute, "final_breach_fallback", dict.fromkeys(w.id for w in winners),
           "final_breach_fallback", deadline,
           awarded=winners[0].id if len(winners) == 1 else None, keep_unconflicted=True)


def fallback_winners(state: AdjudicationState, live: Sequence[Entry], policy: Policy
                     ) -> list[Entry]:
    """Who the final-breach fallback approves: members in line (`precedence.in_line`: the
    policy's precedence as adjudication walks it, a tie broken by the earlier submission;
    or submission alone for `on_final_breach: first_submitted`), each taken
    unless it overlaps one taken before it (`_overlap`: either's own policy counts), so a
    dispute bridging two scopes keeps an owner for each. A member whose partner is inactive
    and that holds no approval is never taken."""
    by_precedence = policy.escalation.on_final_breach == "precedence"
    taken: list[Entry] = []
    for entry in in_line(state, live, policy, by_precedence=by_precedence):
        if entry.status != "approved" and inactive(state, entry):
            continue
        if any(_overlap(state, entry, t, policy) for t in taken):
            continue
        taken.append(entry)
    return taken


def _refusal(
    dispute_id: str, account_key: str, action: DisputeAction, actor_id: str,
    reason: DisputeRefusal, detail: str, version: int, at: int,
) -> DisputeActionRejected:
    return DisputeActionRejected(
        dispute_id=dispute_id,
        account_key=account_key,
        action=action,
        actor_id=actor_id,
        reason=reason,
        rule=reason,
        policy_version=version,
        explanation=f"Refused to {action} dispute {dispute_id}: {detail}.",
        decided_at=from_us(at),
    )
