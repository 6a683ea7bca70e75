"""Pure folds from events to read-model rows: no I/O, order-tolerant.

Events of one registration arrive on two topics (intake, decisions) that are consumed
independently, so a decision may be applied before the submission it decides. Every fold
here gives the same row whatever the interleaving, which is what makes a replayed read
model equal to the live one (invariant 2).
"""
