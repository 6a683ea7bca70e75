"""Shared bookkeeping of the generated workloads (adjudication and projection tests): what a
simulated owner or partner can act on next, learned from the decisions the core made."""

from __future__ import annotations

from collections.abc import Iterable

from shared.events import (
    DisputeEscalated,
    DisputeJoined,
    DisputeOpened,
    DisputeResolved,
    DomainEvent,
    RegistrationDecided,
)

OpenDisputes = dict[str, tuple[str, list[str], str]]
"""dispute id -> (current owner, member registration ids, account key)"""

Contestable = list[tuple[str, str, str]]
"""(registration id, partner id, account key) of rejections a partner may dispute"""

_CONTESTABLE_RULES = ("first_submitted", "tier", "incumbent")


def track(decisions: Iterable[DomainEvent], disputes: OpenDisputes,
          rejected: Contestable) -> None:
    """Update the open disputes and the contestable rejections from new decisions."""
    for e in decisions:
        if isinstance(e, DisputeOpened):
            disputes[e.dispute_id] = (e.owner_id, list(e.registration_ids), e.account_key)
        elif isinstance(e, DisputeJoined) and e.dispute_id in disputes:
            owner, _, key = disputes[e.dispute_id]
            disputes[e.dispute_id] = (owner, list(e.registration_ids), key)
        elif isinstance(e, DisputeEscalated) and e.dispute_id in disputes:
            _, members, key = disputes[e.dispute_id]
            disputes[e.dispute_id] = (e.owner_id, members, key)
        elif isinstance(e, DisputeResolved):
            disputes.pop(e.dispute_id, None)
        elif (isinstance(e, RegistrationDecided) and e.status == "rejected"
              and e.rule in _CONTESTABLE_RULES):
            rejected.append((e.registration_id, e.partner_id, e.account_key))
