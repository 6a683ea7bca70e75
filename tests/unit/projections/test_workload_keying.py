"""The synthetic projection log keeps the keying the real log keeps (adjudication DESIGN.md
invariant 14): every decision is keyed by its own account key, so every record about a
registration, claim or dispute is on its account's partition. The parallel rebuild relies
on it; a generator that drifted from it once made the rebuild's result depend on
`--processes`."""

from __future__ import annotations

import dataclasses

import pytest

from shared.events import RegistrationDecided
from tests.unit.projections.projection_workload import generate, partition_breaches


@pytest.mark.parametrize(("events", "seed", "accounts", "partners", "crosses"), [
    (1200, 21, 50, 10, False),     # the projection store tests' workload
    (6000, 3, 2000, 300, True),    # the benchmark's shape (`bench_projections.py`), smaller
    (3000, 7, 200, 30, False),     # the defaults: a small pool, many collisions
])
def test_every_generated_record_is_keyed_by_its_own_account(
    events: int, seed: int, accounts: int, partners: int, crosses: bool,
) -> None:
    workload = generate(events, seed=seed, accounts=accounts, partners=partners)
    input_key = {r.envelope.id: r.key for r in workload.intake}
    crossing = [r for r in workload.decisions
                if getattr(r.event, "account_key", None) not in (
                    None, input_key[r.envelope.id.rsplit(".d", 1)[0]])]
    # Where decisions about another account than their input's occur, the keying is tested.
    assert bool(crossing) or not crosses
    assert partition_breaches(workload) == []


def test_a_decision_keyed_by_its_inputs_account_is_a_breach() -> None:
    """The check can fail: a registration's decision keyed by the key of the event that
    caused it (what the generator once did) is named, with its registration's key."""
    workload = generate(1200, seed=21, accounts=50, partners=10)
    records = workload.records
    at = next(i for i, r in enumerate(records)
              if r.topic == "decisions" and isinstance(r.event, RegistrationDecided))
    other = next(r.key for r in records if r.key != records[at].key)
    envelope = records[at].envelope.model_copy(update={"subject": other})
    records[at] = dataclasses.replace(records[at], key=other, envelope=envelope)
    found = partition_breaches(workload)
    assert any(f"keyed {other}" in line and records[at].event.account_key in line
               for line in found), found
