"""The pure adjudication core: no I/O, no clock, no randomness (invariant 3).

`decide(state, event, context) -> (state, decisions)` is the whole contract with the worker
(`decide_relaying` also returns the `SettlementRelayed` a settlement derived for other
partitions, which the worker appends to their intake);
`due_timers(state, now)` tells the worker which timer firings to append to the intake log
when the wall clock passes a deadline, and `next_deadline(state)` when to look again.
Design notes: `services/adjudication/DESIGN.md`.
"""

from services.adjudication.domain.decide import (
    DecisionContext,
    decide,
    decide_relaying,
    policy_version_of,
)
from services.adjudication.domain.disputes import dispute_id_for
from services.adjudication.domain.state import AdjudicationState
from services.adjudication.domain.timers import due_timers, next_deadline

__all__ = [
    "AdjudicationState",
    "DecisionContext",
    "decide",
    "decide_relaying",
    "dispute_id_for",
    "due_timers",
    "next_deadline",
    "policy_version_of",
]
