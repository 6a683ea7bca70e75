"""Cross-partition account links: a report from the edge that two keys are one customer.

When the two keys of one customer hash to different partitions, no adjudicator saw both
(see DESIGN.md). The registration service, on discovering it, appends an
`AccountLinkReported` keyed by the canonical key with the other key's active registrations.
Here they are remembered as mirrors (they still belong to their own partition's
adjudicator, which keeps deciding their lifecycle) and, if any collides with an active
exclusive entry of the canonical key, a `cross_key` dispute opens over all of them: both
sides may hold an approval, and only a person may take one away.
"""

from __future__ import annotations

import sys

from services.adjudication.domain import outcomes
from services.adjudication.domain.disputes import draw_into_dispute
from services.adjudication.domain.instants import from_us, to_us
from services.adjudication.domain.matching import (
    Collision,
    find_collisions,
    held_exclusively,
    is_exclusive,
)
from services.adjudication.domain.state import ACTIVE, EXPIRY, AdjudicationState, Entry
from shared.events import AccountLinkReported, AccountsLinked, DomainEvent
from shared.policy import Policy


def report(
    state: AdjudicationState, out: list[DomainEvent], event: AccountLinkReported, policy: Policy
) -> None:
    at = state.clock
    canonical, alias = event.account_key, event.alias_key
    if state.link(alias, canonical):
        out.append(
            AccountsLinked(
                account_key=alias,
                canonical_key=canonical,
                matched_by=event.matched_by,
                score=event.score,
                linked_at=from_us(at),
                policy_version=policy.version,
                explanation=(
                    f"The accounts {alias} and {canonical} are the same customer (reported "
                    f"by the registration service, matched by {event.matched_by})."
                ),
            )
        )
    for reported in event.registrations:
        if reported.status not in ACTIVE or reported.registration_id in state.entries:
            continue
        products = reported.products
        mirror = Entry(
            id=reported.registration_id,
            account_key=sys.intern(alias),
            party_type=reported.party_type,
            party_id=sys.intern(reported.party_id),
            kind="registration" if reported.party_type == "partner" else "opportunity",
            motion=reported.motion,
            products=state.intern_products(products) if products else None,
            submitted_at=to_us(reported.submitted_at),
            tier="",
            policy_version=policy.version,
            status=reported.status,
            protected_until=(to_us(reported.protected_until)
                             if reported.protected_until is not None else None),
            mirror=True,
        )
        state.entries[mirror.id] = mirror
        state.activate(mirror)
        if mirror.protected_until is not None:
            state.schedule(mirror.protected_until, EXPIRY, mirror.id)
        if not is_exclusive(mirror, policy):
            continue
        rivals: list[Collision] = [
            c for c in find_collisions(state, mirror, None, policy)
            if held_exclusively(state, c.entry) and not c.entry.mirror
        ]
        if rivals:
            evidence = [outcomes.evidence(c, mirror.account_key) for c in rivals]
            draw_into_dispute(state, out, mirror, [c.entry for c in rivals], "cross_key",
                              "cross_key", policy, at, evidence)
