"""`name_length_window`: the lengths the directory's fallback query may leave out can never
score at the review floor (a name it left out that could match would change a key)."""

from __future__ import annotations

import pytest
from rapidfuzz import fuzz

from shared.accounts import name_floor, name_length_window


@pytest.mark.parametrize(("threshold", "band"), [
    (0.9, 0.1), (0.85, 0.1), (0.92, 0.0), (0.75, 0.25), (0.6, 0.3), (1.0, 0.0), (0.3, 0.29)])
def test_every_length_that_can_reach_the_floor_is_inside_the_window(
        threshold: float, band: float) -> None:
    floor = name_floor(threshold, band)
    for length in range(1, 90):
        low, high = name_length_window(length, floor)
        for other in range(1, 260):
            # the best any name of `other` characters can score: one that contains the query
            best = fuzz.ratio("a" * length, "a" * other)
            if best >= floor * 100.0:
                assert low <= other <= high, (length, other, best, low, high)


def test_the_window_leaves_out_lengths_that_cannot_score() -> None:
    low, high = name_length_window(20, name_floor(0.9, 0.1))
    assert 5 < low <= 16 and 25 <= high < 40
    assert name_length_window(20, 0.0) == (0, 2**31 - 1)  # no floor: every length
