"""`business_time_between`: the working time left before a deadline (what the console's
queue shows an owner), the inverse of `add_business_time`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.adjudication.domain.instants import to_us
from shared.business_time import add_business_time, business_time_between
from shared.policy import BusinessCalendar

CALENDAR = BusinessCalendar.model_validate({
    "timezone": "America/New_York", "working_days": [1, 2, 3, 4, 5], "hours": "09:00-17:00",
    "holidays": "US"})
HOUR = 3_600_000_000


def test_a_weekend_and_a_holiday_do_not_count() -> None:
    # Friday 2026-07-03 is the observed Independence Day; Monday 07-06 is a working day.
    thursday_4pm = to_us(datetime(2026, 7, 2, 20, 0, tzinfo=UTC))    # 16:00 New York
    monday_10am = to_us(datetime(2026, 7, 6, 14, 0, tzinfo=UTC))     # 10:00 New York
    assert business_time_between(thursday_4pm, monday_10am, CALENDAR) == 2 * HOUR


def test_without_a_calendar_it_is_the_wall_clock_and_never_negative() -> None:
    start = to_us(datetime(2026, 7, 2, tzinfo=UTC))
    assert business_time_between(start, start + 5 * HOUR, None) == 5 * HOUR
    assert business_time_between(start + 5 * HOUR, start, CALENDAR) == 0


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                    timezones=st.just(UTC)),
       st.integers(min_value=1, max_value=40 * 8 * 60).map(lambda m: m * 60_000_000))
def test_it_measures_back_what_add_business_time_added(start: datetime, amount: int) -> None:
    begin = to_us(start)
    deadline = add_business_time(begin, amount, CALENDAR)
    assert business_time_between(begin, deadline, CALENDAR) == amount
    assert business_time_between(begin, deadline - 60_000_000, CALENDAR) < amount
    assert timedelta(microseconds=deadline - begin) >= timedelta(microseconds=amount)
