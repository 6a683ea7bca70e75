"""The read models are a function of the log, not of how it was delivered (invariant 2).

Intake and decisions are consumed independently, in batches of any size: every merge of
the two streams that keeps each stream's order, cut into any batches, must give the same
rows as a one-shot replay. Driven through the pure folds with an in-memory store; the SQL
side is checked on real databases in tests/integration/projections.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from services.projections.domain.batch import MODELS
from tests.unit.projections.memory_store import MemoryStore
from tests.unit.projections.projection_workload import (
    Logged,
    Workload,
    generate,
    interleavings,
)


@pytest.fixture(scope="module")
def workload() -> Workload:
    return generate(1500, seed=5, accounts=60, partners=12)


def replay(records: Sequence[Logged], sizes: Sequence[int]) -> MemoryStore:
    store = MemoryStore()
    i = 0
    k = 0
    while i < len(records):
        size = sizes[k % len(sizes)]
        store.apply(records[i:i + size])
        i += size
        k += 1
    return store


def test_the_workload_exercises_every_folded_event_type(workload: Workload) -> None:
    kinds = {type(r.event).__name__ for r in workload.records}
    assert {"RegistrationSubmitted", "RegistrationDecided", "ClaimFiled", "ClaimDecided",
            "ProtectionExtended", "ProtectionEnded", "DisputeOpened", "DisputeResolved",
            "DisputeAcknowledgementRecorded", "DisputeFiled"} <= kinds


def test_decisions_before_submissions_give_the_same_rows_as_log_order(
    workload: Workload,
) -> None:
    in_order = replay(workload.records, [len(workload.records)]).snapshot()
    decisions_first = replay(workload.decisions + workload.intake, [97]).snapshot()
    assert decisions_first == in_order


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_any_interleaving_and_batching_gives_the_same_rows(workload: Workload,
                                                           seed: int) -> None:
    rng = random.Random(seed)
    expected = replay(workload.records, [len(workload.records)]).snapshot()
    merged = next(interleavings(workload, rng))
    sizes = [rng.choice((1, 7, 50, 400)) for _ in range(20)]
    assert replay(merged, sizes).snapshot() == expected


def test_one_model_replayed_alone_equals_it_replayed_with_the_others(
    workload: Workload,
) -> None:
    full = replay(workload.records, [300]).snapshot()
    for model, tables in (("ownership", ["intervals"]), ("disputes", ["disputes", "members",
                                                                     "breaches"])):
        store = MemoryStore()
        for start in range(0, len(workload.records), 300):
            store.apply(workload.records[start:start + 300], [model])
        alone = store.snapshot()
        assert {t: alone[t] for t in tables} == {t: full[t] for t in tables}, model
        others = set(full) - set(tables)
        assert all(alone[t] == {} for t in others if t not in ("domains",)), model
    assert set(MODELS) == {"registrations", "ownership", "directory", "disputes", "timelines"}
