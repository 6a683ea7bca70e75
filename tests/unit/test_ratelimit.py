"""Token buckets per key: burst, refill, Retry-After, independence, bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.api.ratelimit import TokenBuckets


def test_a_bucket_admits_its_burst_then_says_when_the_next_token_comes() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k", 0.0) == pytest.approx(0.5)
    assert buckets.take("k", 0.25) == pytest.approx(0.25)
    assert buckets.take("k", 0.5) == 0.0


def test_keys_have_their_own_buckets_and_refill_stops_at_the_burst() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2)
    assert buckets.take("a", 0.0) == 0.0 and buckets.take("a", 0.0) == 0.0
    assert buckets.take("a", 0.0) > 0
    assert buckets.take("b", 0.0) == 0.0
    # A long idle time refills only up to the burst.
    admitted = sum(buckets.take("a", 1000.0) == 0.0 for _ in range(5))
    assert admitted == 2


def test_memory_stays_bounded_under_a_flood_of_keys() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=100)
    for i in range(10_000):
        buckets.take(f"k{i}", float(i) / 1000)
    assert len(buckets) <= 100


@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=200),
       st.floats(min_value=0.1, max_value=50), st.integers(min_value=1, max_value=20))
def test_never_more_than_burst_plus_rate_times_elapsed_are_admitted(
        gaps: list[float], rate: float, burst: int) -> None:
    buckets = TokenBuckets(rate=rate, burst=burst)
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        wait = buckets.take("k", now)
        assert wait >= 0
        admitted += wait == 0.0
    assert admitted <= burst + rate * now + 1e-6
