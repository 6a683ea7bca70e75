"""The re-registration cool-off: withdraw + re-register must not renew protection forever.

Without it a partner extends to `max_extensions`, withdraws the day before expiry, and
registers the same account again for a fresh `protection_period`, for ever. When a
partner's exclusive registration ends by withdrawal or expiry, the same partner's new
exclusive registration on the same customer (its account key, every key linked to it, and
every key its account confidently matches: the same-customer rule collisions use) and an
overlapping scope is rejected `reregistration_cooloff` until the
cool-off of the policy the ended registration was decided under has passed
(`Policy.cooloff`, at most one protection period: the ended entry is remembered exactly
that long). Other partners are not affected:
the account is free for them at once. Only an approved protection starts a cool-off (not a
registration withdrawn while in review); wins, losses, rejections and a partner's exit
start none.
"""

from __future__ import annotations

from services.adjudication.domain import explain, outcomes
from services.adjudication.domain.instants import span_us
from services.adjudication.domain.matching import (
    Lookup,
    customer_keys,
    held_exclusively,
    overlaps,
)
from services.adjudication.domain.protection import retire
from services.adjudication.domain.state import AdjudicationState, Entry
from shared.accounts import AccountIdentity
from shared.events import DomainEvent
from shared.policy import Policy

RULE = "reregistration_cooloff"
STARTS_COOLOFF = frozenset({"withdrawn", "expired"})
"""`ProtectionEnded.reason`s that start a cool-off for the party (and the statuses that
keep it: an expired deal later closed won in the CRM starts none)."""


def record(state: AdjudicationState, entry: Entry, reason: str, at: int) -> None:
    """Remember that `entry` let go at `at` (called as it ends, before it is retired): only
    a protection held (approved) starts a cool-off, not a registration waiting in review."""
    if reason in STARTS_COOLOFF and entry.status == "approved" \
            and entry.party_type == "partner" and not entry.mirror \
            and held_exclusively(state, entry):
        state.let_go.setdefault(entry.account_key, []).append((entry.id, at))


def forget(state: AdjudicationState, entry: Entry) -> None:
    """The entry left the state: its cool-off (never longer than its memory) is over."""
    ended = state.let_go.get(entry.account_key)
    if ended is None:
        return
    ended[:] = [item for item in ended if item[0] != entry.id]
    if not ended:
        del state.let_go[entry.account_key]


def lost_before(state: AdjudicationState, entry: Entry, decided_at: int) -> None:
    """A settlement on another key rejected `entry` at `decided_at`, and its word arrived
    after `entry` had ended here by withdrawal or expiry (relay.py: its end stands). If the
    settlement came first (at or before the end), the partner did not let go, it lost:
    the end starts no cool-off (the partner's readers show the rejection, `overruled`)."""
    ended = state.let_go.get(entry.account_key)
    if ended is None:
        return
    ended[:] = [item for item in ended if item[0] != entry.id or item[1] < decided_at]
    if not ended:
        del state.let_go[entry.account_key]


def _may_reach_let_go(state: AdjudicationState, new: Entry, asked: Lookup) -> bool:
    """Whether any key `customer_keys` could return has a let-go entry: its answer is a
    subset of `new`'s key's cluster, the matched keys and their clusters, and the keys
    reported as suspects. When none is let go, the cool-off cannot bar `new` and the
    customer need not be sorted out (exact: it only skips work)."""
    let_go = state.let_go
    keys = [new.account_key, *(m.account_key for m in asked.matches),
            *(key for key, _, _ in state.suspects.get(new.id, ()))]
    for key in keys:
        if key in let_go:
            return True
        if key in state.links and any(k in let_go for k in state.cluster(key)):
            return True
    return False


def cooling(state: AdjudicationState, new: Entry, identity: AccountIdentity | None,
            policy: Policy, at: int, asked: Lookup | None = None) -> tuple[Entry, int] | None:
    """The same party's ended registration whose cool-off still bars `new`, with the
    instant it lifts; None when `new` may be decided normally. The customer is matched as
    for collisions (`matching.customer_keys`): re-filing it under another key (a name-only
    "Acme Corp" after withdrawing at acme.com) does not dodge the cool-off."""
    if not state.let_go or new.party_type != "partner" or not held_exclusively(state, new):
        return None  # nothing let go in memory: no customer matching needed to know it
    if asked is not None and not _may_reach_let_go(state, new, asked):
        return None
    found: tuple[Entry, int] | None = None
    for key in customer_keys(state, new, identity, policy, asked):
        for entry_id, ended_at in state.let_go.get(key, ()):
            old = state.entries.get(entry_id)
            if old is None or old.party_id != new.party_id or old.status not in STARTS_COOLOFF:
                continue
            own = state.policy(old.policy_version)
            cooloff = own.cooloff
            if cooloff is None or not overlaps(new.products, old.products, policy, own):
                continue
            lifts = ended_at + span_us(cooloff)
            if at < lifts and (found is None or lifts > found[1]):
                found = (old, lifts)
    return found


def reject(state: AdjudicationState, out: list[DomainEvent], new: Entry, old: Entry,
           lifts: int, label: str, at: int) -> None:
    retire(state, new, "rejected", state.policy(new.policy_version), at)
    out.append(outcomes.decision(
        new, RULE, new.policy_version,
        f"Rejected: the same partner's registration {old.id} on the account {label} "
        f"{old.status} recently; the partner may register it again from "
        f"{explain.day(lifts)} (the cool-off of policy version {old.policy_version}, "
        f"under which it was decided) {explain.tag(RULE, new.policy_version)}.",
        at, [outcomes.fellow_evidence(state, old, new.account_key, new)]))
