"""The pure part of the program series: bucket layout, nearest ranks, bins, CSV."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.projections.domain import program


def test_weeks_are_iso_weeks_labelled_by_their_monday_and_clipped_to_the_range() -> None:
    span = program.period(date(2026, 1, 7), date(2026, 1, 20), "week")  # Wed .. Tue
    assert span.buckets() == [date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 19)]
    assert (span.since, span.until) == (datetime(2026, 1, 7, tzinfo=UTC),
                                        datetime(2026, 1, 21, tzinfo=UTC))


def test_days_include_both_ends() -> None:
    span = program.period(date(2026, 2, 27), date(2026, 3, 1), "day")
    assert span.buckets() == [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]


def test_a_backwards_or_too_long_range_names_the_parameter() -> None:
    with pytest.raises(program.RangeError) as backwards:
        program.period(date(2026, 2, 1), date(2026, 1, 1), "day")
    assert backwards.value.field == "to"
    with pytest.raises(program.RangeError, match="at most 400"):
        program.period(date(2025, 1, 1), date(2026, 2, 5), "day")
    assert len(program.period(date(2025, 1, 1), date(2026, 2, 4), "day").buckets()) == 400


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=60), st.sampled_from([50, 90]))
def test_rank_is_the_nearest_rank(values: list[int], percent: int) -> None:
    ordered = sorted(values)
    expected = ordered[max(0, math.ceil(percent * len(values) / 100) - 1)]
    assert ordered[program.rank(len(values), percent) - 1] == expected


def test_decision_bins_start_at_zero_and_rise() -> None:
    edges = [low for _, low in program.DECISION_BINS]
    assert edges[0] == 0 and edges == sorted(set(edges))


def test_a_quiet_bucket_is_a_zero_with_no_rate_not_a_gap() -> None:
    span = program.period(date(2026, 1, 5), date(2026, 1, 7), "day")
    series = program.decisions(span, {date(2026, 1, 6): (4, 4, 3, 1)},
                               {date(2026, 1, 6): {50: 1500, 90: 4000}})
    assert series.records() == [
        {"bucket": "2026-01-05", "submitted": 0, "decided": 0, "auto_approved": 0,
         "collided": 0, "auto_approval_rate": None, "collision_rate": None,
         "p50_seconds": None, "p90_seconds": None},
        {"bucket": "2026-01-06", "submitted": 4, "decided": 4, "auto_approved": 3,
         "collided": 1, "auto_approval_rate": 0.75, "collision_rate": 0.25,
         "p50_seconds": 1.5, "p90_seconds": 4.0},
        {"bucket": "2026-01-07", "submitted": 0, "decided": 0, "auto_approved": 0,
         "collided": 0, "auto_approval_rate": None, "collision_rate": None,
         "p50_seconds": None, "p90_seconds": None},
    ]
    assert series.summary["auto_approval_rate"] == 0.75


def test_a_multi_product_deal_counts_in_full_under_each_product_once() -> None:
    rows = program.expand_products([(["crm", "analytics", "crm"], "resell", "USD", 2, 30000),
                                    (None, "referral", "", 1, 0)])
    assert rows == [("analytics", "resell", "USD", 2, 30000), ("crm", "resell", "USD", 2, 30000),
                    ("", "referral", "", 1, 0)]
    series = program.pipeline("pipeline_by_product", rows)
    assert series.records()[1] == {"product": "analytics", "currency": "USD",
                                   "sourced_count": 2, "sourced_amount": "3.00",
                                   "influenced_count": 0, "influenced_amount": "0.00"}


def test_csv_has_the_columns_and_rows_and_defuses_formulas() -> None:
    series = program.win_rates([("=HYPERLINK(1)", "won", 2), ("=HYPERLINK(1)", "lost", 1),
                                ("p-2", "lost", 1)])
    table = list(csv.reader(io.StringIO(program.to_csv(series))))
    assert table == [["partner", "won", "lost", "win_rate"],
                     ["'=HYPERLINK(1)", "2", "1", "0.6667"], ["p-2", "0", "1", "0.0"]]


def test_breaches_list_every_bucket_for_each_level_that_breached() -> None:
    span = program.period(date(2026, 1, 5), date(2026, 1, 6), "day")
    series = program.sla_breaches(span, {(date(2026, 1, 6), 2): 3})
    assert series.rows == [("2026-01-05", 2, 0), ("2026-01-06", 2, 3)]
    assert program.sla_breaches(span, {}).rows == []
