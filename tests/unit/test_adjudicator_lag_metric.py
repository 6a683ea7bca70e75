"""`dealreg_adjudicator_lag_records` is this replica's: a partition it no longer holds is
no longer reported (after a rebalance its new holder reports it; two replicas never both
report one partition)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from shared import metrics


def _reported() -> dict[str, float]:
    return {s.labels["partition"]: s.value for m in REGISTRY.collect()
            if m.name == "dealreg_adjudicator_lag_records" for s in m.samples}


def test_a_partition_moved_away_is_no_longer_reported() -> None:
    metrics.set_adjudicator_lag({0: 5, 1: 3, 2: 0})
    assert _reported() == {"0": 5, "1": 3, "2": 0}
    metrics.set_adjudicator_lag({1: 2, 3: 7})  # 0 and 2 went to another replica, 3 came
    assert _reported() == {"1": 2, "3": 7}
    metrics.set_adjudicator_lag({})  # stopped, or holds nothing
    assert _reported() == {}
