"""Business time: working hours on working days in a calendar's timezone, skipping the
public holidays of its country (the `holidays` package, pure data). Pure functions of a
calendar and instants (integer microseconds since the Unix epoch, UTC).

The adjudicator computes every SLA deadline with `add_business_time` and moves it onto the
policy's `deadline_unit` with `due_on` (`services/adjudication/domain/escalation.py`); the
console shows an owner the working time left before a deadline with
`business_time_between`. One implementation of the
calendar rules for both.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from functools import lru_cache
from typing import Final, Protocol
from zoneinfo import ZoneInfo

from shared.policy import BusinessCalendar

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


_MAX_DAYS_SCANNED = 3660  # a calendar is validated to have working days; this only bounds


class _Holidays(Protocol):
    def __contains__(self, day: object) -> bool: ...


class _NoHolidays:
    def __contains__(self, day: object) -> bool:
        return False


@lru_cache(maxsize=64)
def _holidays(code: str | None) -> _Holidays:
    if code is None:
        return _NoHolidays()
    import holidays

    country, _, subdiv = code.partition("-")
    found: _Holidays = holidays.country_holidays(country, subdiv=subdiv or None)
    return found


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def add_business_time(start: int, amount_us: int, calendar: BusinessCalendar | None) -> int:
    """The instant when `amount_us` of working time has passed since `start`."""
    if calendar is None or amount_us <= 0:
        return start + max(amount_us, 0)
    zone = _zone(calendar.timezone)
    holidays = _holidays(calendar.holidays)
    open_minute, close_minute = calendar.day_minutes
    working_days = calendar.working_days
    day = from_us(start).astimezone(zone).date()
    remaining = amount_us
    for _ in range(_MAX_DAYS_SCANNED):
        if day.isoweekday() in working_days and day not in holidays:
            opens = _local_us(day, open_minute, zone)
            closes = _local_us(day, close_minute, zone)
            begin = max(opens, start)
            if begin < closes:
                available = closes - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += timedelta(days=1)
    raise ValueError("the business calendar has no working time within ten years")


def due_on(deadline: int, unit_us: int | None) -> int:
    """`deadline` moved to the next whole multiple of `unit_us` since the epoch (UTC) at or
    after it; itself when it is on one already or `unit_us` is None. A unit divides a day
    (`Escalation.deadline_unit`), so its multiples are whole UTC hours (minutes, seconds)
    whatever the calendar's timezone: a dispute's deadline falls due on the next whole UTC
    hour after its business-time deadline, which may be outside working hours (the
    calendar decides how much working time an SLA gives, never moves it earlier)."""
    if unit_us is None:
        return deadline
    return -(-deadline // unit_us) * unit_us


def business_time_between(start: int, end: int, calendar: BusinessCalendar | None) -> int:
    """The working time from `start` to `end` in µs (0 when `end` is not later): the
    inverse of `add_business_time` (for a deadline `e = add_business_time(s, a)`,
    `business_time_between(s, e) == a`). The console shows an owner the working time left
    before a deadline with it."""
    if end <= start:
        return 0
    if calendar is None:
        return end - start
    zone = _zone(calendar.timezone)
    holidays = _holidays(calendar.holidays)
    open_minute, close_minute = calendar.day_minutes
    day = from_us(start).astimezone(zone).date()
    last = from_us(end).astimezone(zone).date()
    total = 0
    for _ in range(_MAX_DAYS_SCANNED):
        if day > last:
            break
        if day.isoweekday() in calendar.working_days and day not in holidays:
            begin = max(_local_us(day, open_minute, zone), start)
            finish = min(_local_us(day, close_minute, zone), end)
            total += max(0, finish - begin)
        day += timedelta(days=1)
    return total


def _local_us(day: date, minute: int, zone: ZoneInfo) -> int:
    if minute >= 24 * 60:
        return _local_us(day + timedelta(days=1), 0, zone)
    local = datetime.combine(day, clock_time(minute // 60, minute % 60), tzinfo=zone)
    return to_us(local)
