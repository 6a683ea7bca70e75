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

from services.adjudication.domain import explain, outcomes
from services.adjudication.domain.escalation import last_level, level_times
from services.adjudication.domain.instants import from_us, span_us
from services.adjudication.domain.matching import find_collisions, is_exclusive
from services.adjudication.domain.protection import grant, hold_for_review, retire
from services.adjudication.domain.state import (
    DEADLINE,
    FORGET_DISPUTE,
    REMINDER,
    AdjudicationState,
    Dispute,
    Entry,
)
from shared.events import (
    ConflictEvidence,
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
) -> Dispute:
    """Put `challenger` and `rivals` in one open dispute.

    Without a `dispute_id` they join the oldest open dispute any of them is already in (or
    a new one when there is none); with one (a partner's contest, whose id the API already
    returned) a new dispute opens under that id. Any other open dispute they are in is
    merged into the target, so an entry is never in two open disputes."""
    drawn = [challenger, *rivals]
    existing: list[Dispute] = []
    for entry in drawn:
        found = open_dispute_of(state, entry)
        if found is not None and found not in existing:
            existing.append(found)
    existing.sort(key=lambda d: (d.opened_at, d.id))
    if dispute_id is None and existing:
        target = existing.pop(0)
        before = set(target.member_ids)
        _merge(state, out, target, existing, drawn, policy, at)
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
                    f"{target.id}, so it joins that dispute {explain.tag(rule, policy.version)}."
                ),
                evidence=tuple(evidence),
            )
        )
        return target
    target = _open(state, challenger, dispute_id or _fresh_id(state, challenger), reason,
                   policy, at)
    _merge(state, out, target, existing, drawn, policy, at)
    out.append(
        DisputeOpened(
            dispute_id=target.id,
            account_key=target.account_key,
            registration_ids=tuple(target.member_ids),
            reason=reason,
            level=1,
            owner_id=target.owner_id,
            opened_at=from_us(at),
            due_at=from_us(target.due_at),
            reminder_at=from_us(target.reminder_at) if target.reminder_at else None,
            policy_version=policy.version,
            rule=rule,
            explanation=(
                f"Dispute {target.id} opened ({reason}) over {len(target.member_ids)} "
                f"registration{'s' if len(target.member_ids) != 1 else ''} on the account "
                f"{explain.account_label(target.account_key)}; level 1 is with "
                f"{target.owner_id}, due {explain.day(target.due_at)} "
                f"{explain.tag(rule, policy.version)}."
            ),
            evidence=tuple(evidence),
        )
    )
    return target


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
    for other in others:
        for member_id in other.member_ids:
            if member_id not in target.member_ids:
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
        if entry.id not in target.member_ids:
            target.member_ids.append(entry.id)
        entry.dispute_id = target.id


def _open(
    state: AdjudicationState,
    challenger: Entry,
    dispute_id: str,
    reason: str,
    policy: Policy,
    at: int,
) -> Dispute:
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
    if entry.status != "rejected" or not entry.beaten_by:
        return refuse("not_disputable",
                      "only a rejection decided by a precedence rule can be contested")
    entry_policy = state.policy(entry.policy_version)
    # Whoever it lost to, plus whatever took the scope since: all must be weighed together,
    # or an award could leave two owners.
    rivals = [
        state.entries[rid] for rid in entry.beaten_by
        if rid in state.entries and state.entries[rid].active
    ]
    for collision in find_collisions(state, entry, None, entry_policy):
        other = collision.entry
        if other not in rivals and is_exclusive(other, entry_policy):
            rivals.append(other)
    hold_for_review(state, entry, at)
    evidence = tuple(outcomes.member_evidence(r, entry.account_key) for r in rivals)
    # The rivals it lost to are drawn in: the person deciding must weigh them together.
    dispute = draw_into_dispute(state, out, entry, rivals, "contested", "contested", policy,
                                at, evidence, dispute_id=event.dispute_id)
    out.append(outcomes.decision(
        entry, "contested", entry_policy.version,
        f"In review: the partner contests this rejection ({event.reason}); dispute "
        f"{dispute.id} decides {explain.tag('contested', policy.version)}.", at, evidence))


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
        problem = _invalid_resolution(dispute, event)
        if problem is not None:
            refusal = ("invalid_resolution", problem)
    if refusal is not None or dispute is None:
        reason, detail = refusal or ("unknown_dispute", "")
        out.append(_refusal(event.dispute_id, event.account_key, "resolve", event.actor_id,
                            reason, detail, policy.version, at))
        return
    members = dispute.member_ids
    approved: dict[str, Decimal | None] = {}
    if event.outcome == "award":
        assert event.registration_id is not None
        approved[event.registration_id] = None
    elif event.outcome == "split":
        approved = {s.registration_id: s.percent for s in event.splits}
    elif event.outcome in ("co_sell", "distinct"):
        approved = dict.fromkeys(members)
    settle(state, out, dispute, event.outcome, approved, "dispute_resolution", at,
           resolved_by=event.actor_id, actor_role=event.actor_role, note=event.note,
           partner_note=event.partner_note,
           splits=event.splits, awarded=event.registration_id)


def _invalid_resolution(dispute: Dispute, event: DisputeResolutionSubmitted) -> str | None:
    members = dispute.member_ids
    if event.outcome == "award":
        if event.registration_id not in members:
            return f"award needs registration_id, one of {members}"
    elif event.outcome == "split":
        ids = [s.registration_id for s in event.splits]
        if not ids or len(set(ids)) != len(ids) or any(i not in members for i in ids):
            return f"splits must name distinct registrations of the dispute, among {members}"
        if sum((s.percent for s in event.splits), Decimal(0)) != Decimal(100):
            return "split percentages must sum to 100"
    elif event.outcome == "distinct" and dispute.reason not in _REVIEW_REASONS:
        return "distinct settles only possible-duplicate and cross-key reviews"
    return None


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
) -> None:
    """Close `dispute`: members in `approved` are approved (with their credit share), the
    rest rejected; one decision per member follows the DisputeResolved."""
    _close(state, dispute, at)
    members = [state.entries[m] for m in dispute.member_ids if m in state.entries]
    live = [m for m in members if m.active]
    approved_ids = tuple(m.id for m in live if m.id in approved)
    rejected_ids = tuple(m.id for m in live if m.id not in approved)
    out.append(
        DisputeResolved(
            dispute_id=dispute.id,
            account_key=dispute.account_key,
            outcome=outcome,
            registration_ids=tuple(dispute.member_ids),
            awarded_registration_id=awarded,
            splits=tuple(splits),
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
    for entry in live:
        entry_policy = state.policy(entry.policy_version)
        others = [outcomes.member_evidence(m, entry.account_key) for m in live if m is not entry]
        if entry.id in approved:
            entry.credit_percent = approved[entry.id]
            if entry.status != "approved":
                grant(state, entry, entry_policy, at)
            share = (f" with {entry.credit_percent}% of the credit"
                     if entry.credit_percent is not None else "")
            verb = "Approved"
        else:
            entry.credit_percent = None
            retire(state, entry, "rejected", entry_policy, at)
            entry.protected_until = None
            share = ""
            verb = "Rejected"
        sentence = (f"{verb}{share}: dispute {dispute.id} was settled as {outcome} "
                    f"{explain.tag(rule, dispute.policy_version)}.")
        out.append(outcomes.decision(entry, rule, dispute.policy_version, sentence, at, others))


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
    open dispute; a dispute left with a single member is moot."""
    dispute = open_dispute_of(state, entry)
    if dispute is None:
        return
    if entry.id in dispute.member_ids:
        dispute.member_ids.remove(entry.id)
    remaining = [state.entries[m] for m in dispute.member_ids
                 if m in state.entries and state.entries[m].active]
    if len(remaining) > 1:
        return
    # The survivor (if any) keeps what it had; one waiting in review had no rival left.
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
    winner = min(live, key=lambda e: (e.submitted_at, e.id))
    settle(state, out, dispute, "final_breach_fallback", {winner.id: None},
           "final_breach_fallback", deadline, awarded=winner.id)


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
