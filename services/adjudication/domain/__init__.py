"""The pure adjudication core: no I/O, no clock, no randomness (invariant 3).

`decide(state, event, context) -> (state, decisions)` is the whole contract with the worker.
"""

from services.adjudication.domain.decide import AdjudicationState, DecisionContext, decide

__all__ = ["AdjudicationState", "DecisionContext", "decide"]
