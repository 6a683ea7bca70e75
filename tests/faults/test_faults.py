"""The fault suite's short variant (in `make test`): every fault kind once under a steady
load of realistic registrations, on real Kafka and PostgreSQL started for it, then the
checker (tests/faults/checker.py) must find nothing lost and nothing doubled.
`make soak` runs the same faults in a loop for DURATION seconds (tests/faults/soak.py)."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.campaign import KINDS, Campaign

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_every_fault_kind_under_load_loses_nothing_and_doubles_nothing() -> None:
    campaign = Campaign(rate=5.0, say=lambda line: print(line, flush=True))
    report = None
    try:
        await asyncio.wait_for(campaign.start(), 400)
        report = await asyncio.wait_for(
            campaign.run(KINDS, load_seconds_between=4.0, check_timeout=300.0), 1500)
    except BaseException:
        print(campaign.logs_tail())
        raise
    finally:
        await campaign.close(keep_logs=report is None or bool(report.discrepancies))
    print("\n".join(report.lines()))
    assert set(report.faults) == set(KINDS), report.faults
    assert report.load["accepted"] >= 100, report.load
    assert report.counts["decisions"] >= report.load["accepted"]
    assert report.counts["notifications"] > 0, "the load opened no dispute to notify about"
    assert report.discrepancies == [], "\n".join(report.lines())
