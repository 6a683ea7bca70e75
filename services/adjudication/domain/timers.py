"""Deadlines: the one heap of everything that happens when time passes.

Time advances only through events: each event's envelope time moves the partition clock
forward (never back), and every deadline at or before the clock takes effect, in deadline
order (deadlines at the same instant by meaning, `state.ORDER`: expiries, reminders,
dispute deadlines, forgetting), before the event itself is decided. So an expiry or an
escalation lands at the same point of the decision stream on every replay, whether a
`TimerFired` or some other event carried the clock past it. The adapter's job is only to
make sure time passes on a quiet partition: `due_timers` lists the firings it must append
to the intake log.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime
from typing import Final

from services.adjudication.domain.disputes import on_deadline, on_reminder
from services.adjudication.domain.instants import from_us, to_us
from services.adjudication.domain.lifecycle import on_expiry, on_forget, on_forget_dispute
from services.adjudication.domain.links import on_lease_end
from services.adjudication.domain.release import on_promotion, pending_release
from services.adjudication.domain.state import (
    COPY_LEASE,
    DEADLINE,
    EXPIRY,
    FORGET_DISPUTE,
    FORGET_ENTRY,
    PROMOTION,
    REMINDER,
    AdjudicationState,
    TimerItem,
)
from shared.events import DomainEvent, TimerFired
from shared.events.timers import TimerKind

Handler = Callable[[AdjudicationState, list[DomainEvent], int, str, int], None]

_HANDLERS: Final[dict[str, Handler]] = {
    EXPIRY: on_expiry,
    REMINDER: on_reminder,
    DEADLINE: on_deadline,
    FORGET_ENTRY: on_forget,
    FORGET_DISPUTE: on_forget_dispute,
    COPY_LEASE: on_lease_end,
    PROMOTION: on_promotion,
}
_KINDS: Final[dict[str, TimerKind]] = {
    EXPIRY: "protection_expiry",
    REMINDER: "dispute_reminder",
    DEADLINE: "dispute_deadline",
    PROMOTION: "release_promotion",
}


def advance(state: AdjudicationState, out: list[DomainEvent], to: int) -> None:
    """Move the partition clock to `to` (if later) and apply every deadline up to it."""
    if to > state.clock:
        state.clock = to
    heap = state.timers
    clock = state.clock
    while heap and heap[0][0] <= clock:
        deadline, _, kind, target, level = heapq.heappop(heap)
        _HANDLERS[kind](state, out, deadline, target, level)


def _live(state: AdjudicationState, item: TimerItem) -> bool:
    deadline, _, kind, target, level = item
    if kind == EXPIRY:
        entry = state.entries.get(target)
        return (entry is not None and entry.status == "approved"
                and entry.protected_until == deadline and not entry.mirror)
    if kind == PROMOTION:
        return pending_release(state, target, deadline) is not None
    if kind in (REMINDER, DEADLINE):
        dispute = state.disputes.get(target)
        if dispute is None or dispute.status != "open" or dispute.level != level:
            return False
        if kind == REMINDER:
            return dispute.reminder_at == deadline and not dispute.acknowledged
        return dispute.due_at == deadline and not dispute.breached
    return False  # forgetting needs no firing: it can wait for the next event


def timer_id(item: TimerItem) -> str:
    deadline, _, kind, target, level = item
    return f"{_KINDS[kind]}:{target}:{level}:{deadline}"


def due_timers(state: AdjudicationState, now: datetime, limit: int = 1000) -> list[TimerFired]:
    """Firings the adapter should append to the intake log because `now` (its wall clock)
    passed their deadline; earliest first, at most `limit`.

    Pure: it reads the state and changes nothing. Until a firing comes back through
    `decide` the same timer is listed again, so the adapter remembers the ids it appended
    and not yet consumed (or simply appends again: a repeated firing changes nothing).
    """
    cutoff = to_us(now)
    heap = state.timers
    found: list[TimerItem] = []
    # Walk only the part of the heap at or before the cutoff: children are never earlier.
    stack = [0] if heap else []
    while stack:
        i = stack.pop()
        item = heap[i]
        if item[0] > cutoff:
            continue
        if _live(state, item):
            found.append(item)
        for child in (2 * i + 1, 2 * i + 2):
            if child < len(heap):
                stack.append(child)
    found.sort()
    firings: list[TimerFired] = []
    for item in found[:limit]:
        deadline, _, kind, target, level = item
        is_entry = kind in (EXPIRY, PROMOTION)
        key = (state.entries[target].account_key if is_entry
               else state.disputes[target].account_key)
        firings.append(
            TimerFired(
                timer_id=timer_id(item),
                kind=_KINDS[kind],
                deadline=from_us(deadline),
                account_key=key,
                registration_id=target if is_entry else None,
                dispute_id=None if is_entry else target,
                level=None if is_entry else level,
            )
        )
    return firings


def next_deadline(state: AdjudicationState) -> datetime | None:
    """The earliest live deadline that needs a firing: when the adapter should next call
    `due_timers`. Stale heap items (superseded deadlines, forgetting) are skipped."""
    heap = state.timers
    if not heap:
        return None
    # Visit the heap in ascending order without popping it: a frontier of node indices.
    frontier: list[tuple[TimerItem, int]] = [(heap[0], 0)]
    while frontier:
        item, i = heapq.heappop(frontier)
        if _live(state, item):
            return from_us(item[0])
        for child in (2 * i + 1, 2 * i + 2):
            if child < len(heap):
                heapq.heappush(frontier, (heap[child], child))
    return None
