"""The first decision on a new registration or claim: "Semantics of a decision" (api-v1).

A new entry R is compared with every active (approved or in-review) entry C at the same
customer whose scope overlaps R's:

- R's partner is suspended or exited -> rejected `partner_inactive`;
- a C of the same party -> rejected `duplicate` (a party never holds two overlapping
  protections of the same kind; the direct team is one party, whichever rep files);
- R's motion is not exclusive (referral, influence) -> approved `non_exclusive`: recorded
  beside the owner for credit and reporting, never competing with exclusive ones;
- otherwise, against each exclusive C the policy's precedence is walked; if any C beats R,
  R is rejected with the rule that decided (the strongest rule among those that beat it)
  and those Cs as evidence;
- if R beats an approved C, or nothing separates R from some C, R goes in review and a
  dispute opens over all of them (approved registrations are never taken away without a
  person); R's possible duplicates (near matches) join it too, flagged, so the person's
  settlement covers them;
- with no confident C but a name match in the review band, R goes in review with a
  `possible_duplicate` flag and a review dispute (a person says whether it is the same
  customer: `distinct` approves it, the other outcomes settle it as a collision);
- no C at all -> approved `no_conflict`, protected for `protection_period`.

A confident match with an entry filed under a different account key also yields an
`AccountsLinked` decision (the cross-key race, see DESIGN.md).
"""

from __future__ import annotations

import sys

from services.adjudication.domain import cooloff, explain, outcomes, release
from services.adjudication.domain.disputes import draw_into_dispute, same_party_under
from services.adjudication.domain.instants import from_us, to_us
from services.adjudication.domain.matching import (
    Collision,
    find_collisions,
    held_exclusively,
    is_exclusive,
    lookup,
    own_key_evidence,
)
from services.adjudication.domain.precedence import compare, rule_rank
from services.adjudication.domain.protection import INACTIVE_PARTNER, grant, hold_for_review, retire
from services.adjudication.domain.state import AdjudicationState, Entry
from shared.accounts import AccountIdentity, normalize_country, normalize_name
from shared.events import (
    AccountsLinked,
    ClaimDecided,
    ClaimFiled,
    DomainEvent,
    RegistrationDecided,
    RegistrationSubmitted,
)
from shared.events.disputes import OpenReason
from shared.events.registration import Account
from shared.policy import Policy

Out = list[DomainEvent]


_IDENTITIES: dict[tuple[str | None, str | None, str | None, str | None], AccountIdentity] = {}
"""A bounded memo of `identity_of` by the account's raw facets: most registrations repeat
a known account (an identity is immutable, so sharing one is safe). A cache, never state."""


def identity_of(account: Account) -> AccountIdentity:
    """The account's identity from the facets stamped at the edge. The edge resolved the
    domain to its registrable form already (public-suffix parsing is the costliest step of
    normalization, so it is not repeated per event); names and countries are normalized
    again through cached functions, which keeps the core robust to hand-written events."""
    facets = (account.name, account.domain, account.country, account.crm_account_id)
    found = _IDENTITIES.get(facets)
    if found is None:
        if len(_IDENTITIES) >= 16_384:
            _IDENTITIES.clear()
        found = _IDENTITIES[facets] = _identity_of(account)
    return found


def _identity_of(account: Account) -> AccountIdentity:
    country = normalize_country(account.country) if account.country else None
    name = normalize_name(account.name, country) if account.name else ""
    crm = account.crm_account_id.strip() if account.crm_account_id else ""
    return AccountIdentity(
        crm_account_id=crm or None,
        domain=account.domain.strip().lower() if account.domain else None,
        name=name or None,
        country=country,
    )


_EVIDENCE: dict[tuple[str, float], tuple[str, float]] = {}


def _shared_evidence(evidence: tuple[str, float] | None) -> tuple[str, float] | None:
    """One tuple for each (matched_by, score) the entries keep: nearly all are an exact
    match (score 1.0) of one of three kinds. Bounded and cleared when full: a cache."""
    if evidence is None:
        return None
    found = _EVIDENCE.get(evidence)
    if found is None:
        if len(_EVIDENCE) >= 256:
            _EVIDENCE.clear()
        found = _EVIDENCE[evidence] = evidence
    return found


def registration_entry(
    state: AdjudicationState, event: RegistrationSubmitted, policy: Policy
) -> Entry:
    products = event.opportunity.products
    return Entry(
        id=event.registration_id,
        account_key=state.shared_key(event.account_key),
        party_type="partner",
        party_id=sys.intern(event.partner_id),
        kind="registration",
        motion=event.motion,
        products=state.intern_products(products) if products else None,
        submitted_at=to_us(event.submitted_at),
        tier=sys.intern(event.partner.tier),
        policy_version=event.policy_version,
        status="submitted",
    )


def claim_entry(state: AdjudicationState, event: ClaimFiled, policy: Policy) -> Entry:
    products = event.products if event.kind == "opportunity" else ()
    return Entry(
        id=event.claim_id,
        account_key=state.shared_key(event.account_key),
        party_type="direct",
        party_id=sys.intern(event.rep_id),
        kind=event.kind,
        motion="direct",
        products=state.intern_products(products) if products else None,
        submitted_at=to_us(event.filed_at),
        tier="",
        policy_version=event.policy_version,
        status="submitted",
    )


def adjudicate(
    state: AdjudicationState,
    out: Out,
    entry: Entry,
    identity: AccountIdentity,
    policy: Policy,
    partner_status: str | None = None,
    raw_name: str | None = None,
) -> None:
    """Decide a new entry (already built, not yet in the state). Exactly one decision; an
    entry that stays active links its key to the other keys it matched (not one that was
    rejected: a link lives only as long as a registration that shows it)."""
    if entry.id in state.entries:
        return  # the same submission logged twice: it was decided the first time
    unfiling = policy.match.rejected_names == "unfiled"
    # Another filing in review under the key may have brought these names (`brought`).
    others = identity.name is not None and entry.account_key in state.brought.on_key
    fresh = state.index.taken_back_if_rejected(entry.account_key, identity.name,
                                                 identity.country) \
        if identity.name and (unfiling or others) else ()
    if others:
        # Undecided yet: its decision says whether the forms it files again stay for
        # good (live: `activate`) or count for nothing (rejected: `retired`).
        state.brought.filed(entry.id, entry.account_key, identity.name or "",
                            identity.country, fresh, False)
    collisions = _decide(state, out, entry, identity, policy, partner_status, raw_name)
    if fresh and unfiling and entry.status == "in_review":
        # In review, the forms it brought are its own to take back if a person rejects
        # it (session 30: one rule with a rejection at the decision).
        state.brought.bring(entry.id, entry.account_key, identity.name or "",
                            identity.country, fresh)
    if not unfiling:
        fresh = ()
    if fresh and entry.status == "rejected":
        # A filing that never held anything adds no names that join customers (session
        # 29): "B dba A" rejected as its partner's own duplicate of B left A's name on B's
        # key, and later filings of A were weighed against B's holder. Its decision is
        # unchanged (taken with the names filed); later ones no longer see them.
        state.unfile_names(entry.account_key, fresh, identity.country)
        # Filed again if the rejection is undone (promoted, contested: `activate`).
        entry.unfiled = (identity.name or "", identity.country)
        _say_unfiled(out, entry.id, fresh)
    reported = state.suspects.pop(entry.id, None)
    if reported:
        # Kept with it: a settlement names such a copy by the report (invariant 6).
        entry.reported = tuple(reported)
    if entry.active and collisions:
        _link_keys(state, out, entry, collisions, entry.policy_version, state.clock)


def _say_unfiled(out: Out, entry_id: str, forms: tuple[str, ...]) -> None:
    """The decision says which name forms were taken back (`unfiled_names`), so the
    directory read model removes the same ones without deciding the rule again."""
    for i in range(len(out) - 1, -1, -1):
        event = out[i]
        if isinstance(event, RegistrationDecided | ClaimDecided) and (
                (event.registration_id if isinstance(event, RegistrationDecided)
                 else event.claim_id) == entry_id):
            out[i] = event.model_copy(update={"unfiled_names": forms})
            return


def _decide(
    state: AdjudicationState,
    out: Out,
    entry: Entry,
    identity: AccountIdentity,
    policy: Policy,
    partner_status: str | None,
    raw_name: str | None = None,
) -> list[Collision]:
    at = state.clock
    state.keep(entry)
    # How it matches its own key's customer, before its own facts are filed there. The
    # index is asked once: what it answers after the filing is derived (Lookup.filed).
    before = lookup(state, identity, policy, raw_name)
    own = entry.evidence = _shared_evidence(
        own_key_evidence(state, entry.account_key, identity, policy, before))
    if own is not None and entry.account_key not in state.opener_shares:
        state.opener_shares[entry.account_key] = own  # what its opener shares with it
    if not identity.is_empty():
        state.index_account(entry.account_key, identity)
    known = before.filed(entry.account_key)
    label = explain.account_label(entry.account_key, identity)
    version = entry.policy_version

    if partner_status in INACTIVE_PARTNER:
        retire(state, entry, "rejected", policy, at)
        out.append(outcomes.decision(entry, "partner_inactive", version,
                                     explain.partner_inactive(partner_status or "", version),
                                     at))
        return []

    barred = cooloff.cooling(state, entry, identity, policy, at, known)
    if barred is not None:
        cooloff.reject(state, out, entry, *barred, label, at)
        return []

    collisions = find_collisions(state, entry, identity, policy, own, known)
    exclusive = is_exclusive(entry, policy)

    duplicates = [
        c for c in collisions
        if c.confident and same_party_under(c.entry, entry, policy)
        and held_exclusively(state, c.entry) == exclusive
        and (exclusive or c.entry.motion == entry.motion)
    ]
    if duplicates:
        _reject(state, out, entry, duplicates, "duplicate", label, policy, at)
        return collisions
    if not exclusive:
        grant(state, entry, policy, at)
        out.append(outcomes.decision(entry, "non_exclusive", version,
                                     explain.non_exclusive(entry, label, version), at))
        return collisions

    waiting = release.pending_over(state, entry, identity, policy, own, known)
    if waiting:
        # An owner expired and its line is promoted on the unit: nobody takes the customer
        # meanwhile; it queues behind the line (release.py, `promotion_unit`).
        release.queue_behind(state, out, entry, waiting, label, policy, at)
        return collisions
    rivals = [c for c in collisions
              if held_exclusively(state, c.entry) and not same_party_under(c.entry, entry, policy)]
    confident = [c for c in rivals if c.confident]
    near = [c for c in rivals if not c.confident]
    # Near matches never decide when confident ones do, but they are never silently
    # ignored either: they travel as flagged evidence, and beside a collision that goes
    # to a person they join its dispute (rule 7).
    flags = ("possible_duplicate",) if near else ()
    if confident:
        verdicts = [(c, *compare(state, entry, c.entry, policy)) for c in confident]
        beaten_by = [(c, rule) for c, verdict, rule in verdicts if verdict < 0]
        if beaten_by:
            beaten_by.sort(key=lambda item: (rule_rank(policy, item[1]),
                                             item[0].entry.submitted_at, item[0].entry.id))
            rule = beaten_by[0][1]
            _reject(state, out, entry, [c for c, _ in beaten_by], rule, label, policy, at,
                    near, flags)
            return collisions
        ties = [c for c, verdict, _ in verdicts if verdict == 0]
        rule = "tie" if ties else min(
            (r for _, _, r in verdicts), key=lambda r: rule_rank(policy, r))
        _review(state, out, entry, confident, "tie" if ties else "challenger", rule, label,
                policy, at, flags, near)
        return collisions
    if near:
        _review(state, out, entry, near, "possible_duplicate", "possible_duplicate", label,
                policy, at, flags=("possible_duplicate",))
        return collisions
    grant(state, entry, policy, at)
    out.append(outcomes.decision(entry, "no_conflict", version,
                                 explain.approved(entry, label, version), at))
    return collisions


def _reject(
    state: AdjudicationState, out: Out, entry: Entry, by: list[Collision], rule: str,
    label: str, policy: Policy, at: int, near: list[Collision] | None = None,
    flags: tuple[str, ...] = (),
) -> None:
    retire(state, entry, "rejected", policy, at)
    entry.beaten_by = tuple(c.entry.id for c in by) if rule != "duplicate" else ()
    entry.near_by = tuple(c.entry.id for c in near or ()) if rule != "duplicate" else ()
    entry.decided_at = at
    release.remember_beaten(state, entry)
    out.append(outcomes.decision(
        entry, rule, entry.policy_version,
        explain.rejected(entry, by[0].entry, rule, label, policy), at,
        [outcomes.evidence(c, entry.account_key) for c in (*by, *(near or ()))], flags))


def _review(
    state: AdjudicationState, out: Out, entry: Entry, rivals: list[Collision], reason: str,
    rule: str, label: str, policy: Policy, at: int, flags: tuple[str, ...] = (),
    near: list[Collision] | None = None,
) -> None:
    hold_for_review(state, entry, at)
    evidence = [outcomes.evidence(c, entry.account_key) for c in (*rivals, *(near or ()))]
    open_reason: OpenReason = (
        "tie" if reason == "tie" else "challenger" if reason == "challenger"
        else "possible_duplicate"
    )
    dispute = draw_into_dispute(state, out, entry, [c.entry for c in rivals], open_reason,
                                rule, policy, at, evidence,
                                flagged=[c.entry for c in near or ()])
    out.append(outcomes.decision(
        entry, rule, entry.policy_version,
        explain.in_review(entry, [c.entry for c in rivals], rule, label, dispute.id,
                          dispute.owner_id, dispute.due_at, policy),
        at, evidence, flags))


def _link_keys(
    state: AdjudicationState, out: Out, entry: Entry, collisions: list[Collision],
    version: int, at: int,
) -> None:
    for c in collisions:
        other = c.entry.account_key
        if not c.confident or c.via_link or other == entry.account_key:
            continue
        matched_by = outcomes.evidence(c, entry.account_key).matched_by
        if state.link(entry.account_key, other, matched_by, round(c.score, 4), entry.id, at):
            out.append(
                AccountsLinked(
                    account_key=entry.account_key,
                    canonical_key=other,
                    matched_by=matched_by,
                    score=round(c.score, 4),
                    registration_id=entry.id,
                    linked_at=from_us(at),
                    policy_version=version,
                    explanation=(
                        f"The accounts {entry.account_key} and {other} are the same customer "
                        f"(matched by {c.matched_by}, score {c.score:.2f}); new commands "
                        f"should use {other} {explain.tag('accounts_linked', version)}."
                    ),
                )
            )
