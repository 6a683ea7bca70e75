"""Invariant 3: replaying the intake log into a fresh adjudicator yields identical decisions."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
from adjudication_workload import generate, replay

from shared.events import DomainEvent

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


def serialized(decisions: list[DomainEvent]) -> bytes:
    return b"\n".join(orjson.dumps([d.TYPE, d.to_data()]) for d in decisions)


def test_replaying_a_large_workload_twice_yields_identical_decisions() -> None:
    log, recorded = generate(12_000, seed=11)
    assert len(log) >= 10_000
    kinds = Counter(type(e).__name__ for e in recorded)
    # The workload exercises what it claims to: collisions, disputes, escalations, expiries.
    for kind in ("DisputeOpened", "DisputeResolved", "DisputeEscalated", "DisputeReminderDue",
                 "ProtectionEnded", "ProtectionExtended", "AccountsLinked",
                 "DisputeActionRejected"):
        assert kinds[kind] > 0, kind
    assert sum(1 for e, _ in log if type(e).__name__ == "TimerFired") > 100
    first_state, first = replay(log)
    second_state, second = replay(log)
    assert serialized(first) == serialized(second) == serialized(recorded)
    assert first_state.active_count() == second_state.active_count()


def test_decisions_do_not_depend_on_the_hash_seed() -> None:
    script = (
        f"import sys, hashlib; sys.path.insert(0, {str(ROOT)!r})\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from adjudication_workload import generate, replay\n"
        "from test_determinism import serialized\n"
        "log, _ = generate(3000, seed=5)\n"
        "print(hashlib.sha256(serialized(replay(log)[1])).hexdigest())\n"
    )
    digests = set()
    for seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = subprocess.run([sys.executable, "-c", script], env=env, check=True,
                                capture_output=True, text=True, cwd=ROOT)
        digests.add(result.stdout.strip())
    log, _ = generate(3000, seed=5)
    digests.add(hashlib.sha256(serialized(replay(log)[1])).hexdigest())
    assert len(digests) == 1
