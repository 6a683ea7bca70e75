"""The protection lifecycle after the first decision.

Approval protects a registration for `protection_period` (a direct opportunity claim too; a
named-account claim until it is released). The owning partner may extend it by
`extension.period` up to `max_extensions` times, each from the current end. Protection ends
by expiry (a deadline on the heap), withdrawal, release of a claim, the CRM closing the
opportunity (won or lost: a win also makes the party the account's incumbent for
`incumbency_window`), or the partner's exit.

Partner standing, the default we chose: a registration whose stamped partner snapshot (or
the latest status this partition has seen for the partner) is `suspended` or `exited` is
rejected `partner_inactive`. When a partner EXITS, its active protections end at once
(status `expired`, reason `partner_exited`, rule `partner_inactive`) so the accounts are
free for others. A SUSPENDED partner keeps its protections (suspension is usually temporary
and administrative) but cannot register anything new. The rules use the policy an entry
was decided under, so a later policy never changes an existing protection.
"""

from __future__ import annotations

from services.adjudication.domain import cooloff, explain
from services.adjudication.domain import release as releasing
from services.adjudication.domain.disputes import remove_member
from services.adjudication.domain.instants import from_us, human_span, span_us, to_us
from services.adjudication.domain.outcomes import party_type
from services.adjudication.domain.protection import (
    awaits_home,
    held_by_dispute,
    inactive,
    retire,
)
from services.adjudication.domain.state import EXPIRY, AdjudicationState, Entry
from shared.events import (
    ClaimReleased,
    DomainEvent,
    OpportunityClosed,
    PartnerStatusChanged,
    ProtectionEnded,
    ProtectionExtended,
    RegistrationActionRejected,
    RegistrationExtensionRequested,
    RegistrationWithdrawn,
    trusted,
)
from shared.events.lifecycle import EndReason, LifecycleAction, LifecycleRefusal
from shared.events.registration import Amount, RegistrationStatus
from shared.policy import Policy

Out = list[DomainEvent]


def end(
    state: AdjudicationState,
    out: Out,
    entry: Entry,
    reason: EndReason,
    status: RegistrationStatus,
    rule: str,
    explanation: str,
    at: int,
    amount: Amount | None = None,
) -> None:
    policy = state.policy(entry.policy_version)
    was_active = entry.active
    was_owner = entry.status == "approved"
    incumbent_until = None
    if status == "won":
        longest = max(span_us(p.incumbency_window) for p in state.policies.values())
        # A win is the customer's: recorded under every key linked to the entry's now, as
        # links end with the registrations that justified them (this close among them).
        for key in state.cluster(entry.account_key):
            state.record_win(key, entry.incumbency_party, at, at - longest)
        incumbent_until = from_us(at + span_us(policy.incumbency_window))
    cooloff.record(state, entry, reason, at)
    retire(state, entry, status, policy, at)
    if was_active:
        remove_member(state, out, entry, at)
    if entry.mirror:
        # Appeals against the copy end with it, as its original's with its grant at home
        # (`release.let_go`): a later report that brings it back is a grant of its own.
        state.appealed.pop(entry.id, None)
        return  # its own partition reports it; this copy only guarded against collisions
    if was_owner and status != "won":
        # Emitted after the ProtectionEnded below: the owner lets go, then the next steps up.
        promote: Entry | None = entry
    else:
        promote = None
    out.append(
        trusted(  # every field, of its exact type (tests/unit/events/test_trusted_events.py)
            ProtectionEnded,
            registration_id=entry.id,
            party_type=party_type(entry.party_type),
            party_id=entry.party_id,
            account_key=entry.account_key,
            reason=reason,
            status=status,
            rule=rule,
            policy_version=entry.policy_version,
            explanation=explanation,
            ended_at=from_us(at),
            amount=amount,
            incumbent_until=incumbent_until,
            credit_percent=entry.credit_percent,
        )
    )
    if promote is not None:
        if reason == "expired":
            # On the unit: the expiry is a rival's approval + the period, exactly.
            releasing.let_go_expired(state, out, promote, at)
        else:
            releasing.let_go(state, out, promote, at)


def _refuse(
    out: Out, registration_id: str, account_key: str, action: LifecycleAction,
    reason: LifecycleRefusal, detail: str, version: int, at: int,
) -> None:
    out.append(
        RegistrationActionRejected(
            registration_id=registration_id,
            account_key=account_key,
            action=action,
            reason=reason,
            rule=reason,
            policy_version=version,
            explanation=f"Refused to {action} {registration_id}: {detail} "
                        f"{explain.tag(reason, version)}.",
            decided_at=from_us(at),
        )
    )


def _owned(
    state: AdjudicationState, out: Out, registration_id: str, account_key: str,
    party_id: str | None, action: LifecycleAction, policy: Policy,
) -> Entry | None:
    entry = state.entries.get(registration_id)
    at = state.clock
    if entry is None or entry.mirror:
        _refuse(out, registration_id, account_key, action, "unknown_registration",
                "no such registration or claim here", policy.version, at)
        return None
    if party_id is not None and entry.party_id != party_id:
        _refuse(out, registration_id, account_key, action, "not_party",
                "only its own party may do this", entry.policy_version, at)
        return None
    return entry


def withdraw(state: AdjudicationState, out: Out, event: RegistrationWithdrawn,
             policy: Policy) -> None:
    entry = _owned(state, out, event.registration_id, event.account_key, event.partner_id,
                   "withdraw", policy)
    if entry is None:
        return
    if not entry.active:
        _refuse(out, entry.id, entry.account_key, "withdraw", "not_active",
                f"it is {entry.status}", entry.policy_version, state.clock)
        return
    end(state, out, entry, "withdrawn", "withdrawn", "withdrawn",
        f"Withdrawn by the partner; the account {explain.account_label(entry.account_key)} "
        f"is free of this registration {explain.tag('withdrawn', entry.policy_version)}.",
        state.clock)


def release(state: AdjudicationState, out: Out, event: ClaimReleased, policy: Policy) -> None:
    entry = _owned(state, out, event.claim_id, event.account_key, event.rep_id,
                   "withdraw", policy)
    if entry is None:
        return
    if not entry.active:
        _refuse(out, entry.id, entry.account_key, "withdraw", "not_active",
                f"it is {entry.status}", entry.policy_version, state.clock)
        return
    end(state, out, entry, "released", "withdrawn", "released",
        f"Released by the direct team {explain.tag('released', entry.policy_version)}.",
        state.clock)


def extend(state: AdjudicationState, out: Out, event: RegistrationExtensionRequested,
           policy: Policy) -> None:
    entry = _owned(state, out, event.registration_id, event.account_key, event.partner_id,
                   "extend", policy)
    if entry is None:
        return
    at = state.clock
    own = state.policy(entry.policy_version)
    if entry.status != "approved" or entry.protected_until is None:
        _refuse(out, entry.id, entry.account_key, "extend", "not_active",
                f"only an approved, time-limited protection can be extended; it is "
                f"{entry.status}", own.version, at)
        return
    if inactive(state, entry):
        _refuse(out, entry.id, entry.account_key, "extend", "partner_inactive",
                f"the partner is {state.partner_status[entry.party_id]}; an inactive "
                "partner's protection is not extended", own.version, at)
        return
    if not own.extension.allows_another(entry.extensions):
        _refuse(out, entry.id, entry.account_key, "extend", "max_extensions",
                f"it was extended {entry.extensions} time(s), the policy allows "
                f"{own.extension.max_extensions}", own.version, at)
        return
    opens = extension_opens(entry.protected_until, own)
    if opens is not None and at < opens:
        _refuse(out, entry.id, entry.account_key, "extend", "outside_extension_window",
                f"an extension is accepted only in the last "
                f"{human_span(entry.protected_until - opens)} before the protection ends "
                f"({explain.day(entry.protected_until)}), from {explain.day(opens)}",
                own.version, at)
        return
    entry.extensions += 1
    until = entry.protected_until + span_us(own.extension.period)
    out.append(_prolong(state, entry, until, own.version, at, (
        f"Extended ({entry.extensions} of {own.extension.max_extensions}): protected "
        f"until {explain.day(until)} {explain.tag('extension', own.version)}.")))


def extension_opens(protected_until: int, policy: Policy) -> int | None:
    """The first instant an extension is accepted (`ExtensionPolicy.opens`); None: any."""
    opens = policy.extension.opens(from_us(protected_until))
    return to_us(opens) if opens is not None else None


def close(state: AdjudicationState, out: Out, event: OpportunityClosed, policy: Policy) -> None:
    entry = _owned(state, out, event.registration_id, event.account_key, None, "close", policy)
    if entry is None:
        return
    # A deal often closes after its protection lapsed: the outcome (and a win's incumbency)
    # still counts while the entry is remembered.
    if not (entry.active or entry.status == "expired"):
        _refuse(out, entry.id, entry.account_key, "close", "not_active",
                f"it is {entry.status}", entry.policy_version, state.clock)
        return
    won = event.outcome == "won"
    own = state.policy(entry.policy_version)
    sentence = (
        f"Closed {event.outcome} in the CRM; protection ended"
        + (f" and the party is the account's incumbent for "
           f"{human_span(span_us(own.incumbency_window))}" if won else "")
        + f" {explain.tag(event.outcome, own.version)}."
    )
    end(state, out, entry, event.outcome, "won" if won else "lost", event.outcome, sentence,
        state.clock, event.amount)


def partner_status(state: AdjudicationState, out: Out, event: PartnerStatusChanged,
                   policy: Policy) -> None:
    state.partner_status[event.partner_id] = event.status
    if event.status != "exited":
        return
    at = state.clock
    leaving = [
        entry
        for bucket in state.active_by_key.values()
        for entry in bucket
        if entry.party_type == "partner" and entry.party_id == event.partner_id
    ]
    for entry in leaving:
        if not entry.active:  # a dispute settled by an earlier exit may have moved it
            continue
        end(state, out, entry, "partner_exited", "expired", "partner_inactive",
            f"The partner exited the program, so its protection ended "
            f"{explain.tag('partner_inactive', entry.policy_version)}.", at)


# --- timers -------------------------------------------------------------------------------


def on_expiry(state: AdjudicationState, out: Out, deadline: int, target: str, level: int) -> None:
    entry = state.entries.get(target)
    if entry is None or entry.status != "approved" or entry.protected_until != deadline:
        return  # extended, withdrawn, closed or rejected since: a stale deadline
    if awaits_home(state, entry):
        return  # a copy in a review here: its home says when it ends (relay.tell_ended)
    if held_by_dispute(state, entry):
        _hold(state, out, entry, deadline)
        return
    end(state, out, entry, "expired", "expired", "expired",
        f"Protection expired on {explain.day(deadline)} "
        f"{explain.tag('expired', entry.policy_version)}.", deadline)


def _hold(state: AdjudicationState, out: Out, entry: Entry, deadline: int) -> None:
    """An approved member's protection reaches its end while its dispute is open
    (`dispute_protection: extend`): it rolls on by `dispute_grace` (the resolution then
    gives it at least `dispute_grace` more), so the read models never show the account
    ownerless while a person is still deciding."""
    own = state.policy(entry.policy_version)
    entry.held_by = entry.dispute_id
    until = deadline + span_us(own.dispute_grace)
    out.append(_prolong(state, entry, until, own.version, deadline, (
        f"Protection held while dispute {entry.dispute_id} is open: protected until "
        f"{explain.day(until)}, and at least {human_span(span_us(own.dispute_grace))} "
        f"after the resolution {explain.tag('dispute_protection', own.version)}.")))


def _prolong(state: AdjudicationState, entry: Entry, until: int, policy_version: int,
             at: int, explanation: str) -> ProtectionExtended:
    """Move `entry`'s protection end to `until`, schedule its expiry there (the old
    deadline becomes stale), and say so: the one way an extension or a hold shows."""
    entry.protected_until = until
    state.schedule(until, EXPIRY, entry.id)
    return ProtectionExtended(
        registration_id=entry.id,
        party_type=party_type(entry.party_type),
        party_id=entry.party_id,
        account_key=entry.account_key,
        protected_until=from_us(until),
        extensions=entry.extensions,
        policy_version=policy_version,
        explanation=explanation,
        decided_at=from_us(at),
    )


def on_forget(state: AdjudicationState, out: Out, deadline: int, target: str, level: int) -> None:
    entry = state.entries.get(target)
    if entry is not None and not entry.active and entry.retain_until == deadline:
        state.drop(entry)
        cooloff.forget(state, entry)
        releasing.forget(state, target)


def on_forget_dispute(
    state: AdjudicationState, out: Out, deadline: int, target: str, level: int
) -> None:
    dispute = state.disputes.get(target)
    if dispute is not None and dispute.status != "open":
        policy = state.policy(dispute.policy_version)
        if dispute.resolved_at + span_us(policy.protection_period) == deadline:
            del state.disputes[target]
