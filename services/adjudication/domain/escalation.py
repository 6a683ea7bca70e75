"""Escalation ladder arithmetic: when a dispute level is due and when its owner is reminded.

SLAs run in business time when the policy has a calendar: only working hours on working
days in the calendar's timezone count, and the public holidays of the calendar's country
(from the `holidays` package, pure data) are skipped. An SLA's days are working days
(`P2D` with 09:00-17:00 hours is 16 working hours); smaller units are working time. Without
a calendar SLAs run 24x7.

A level starts when the dispute opens or when the previous level's deadline passed (the
deadline itself, not the moment the late timer was noticed: escalation timing never depends
on how late a firing was). Everything is a pure function of the policy and an instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

from services.adjudication.domain.instants import from_us, span_us, to_us
from shared.policy import BusinessCalendar, Escalation, EscalationLevel

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


def business_length_us(span: timedelta, calendar: BusinessCalendar | None) -> int:
    """How much working time `span` asks for, in µs (days count as working days)."""
    if calendar is None:
        return span_us(span)
    start, end = calendar.day_minutes
    day_us = (end - start) * 60_000_000
    return span.days * day_us + span_us(span - timedelta(days=span.days))


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


@dataclass(frozen=True, slots=True)
class LevelTimes:
    owner_id: str
    due_at: int
    reminder_at: int | None


def level_times(escalation: Escalation, level: int, start: int) -> LevelTimes:
    """Owner, deadline and reminder point of ladder `level` (1-based) starting at `start`."""
    step: EscalationLevel = escalation.levels[level - 1]
    calendar = escalation.calendar
    sla = business_length_us(step.sla, calendar)
    before = escalation.reminder_before
    if isinstance(before, timedelta):
        lead = business_length_us(before, calendar)
        offset = sla - lead if lead < sla else sla // 2
    else:
        offset = int(sla * (1.0 - before))
    due = add_business_time(start, sla, calendar)
    reminder = add_business_time(start, offset, calendar) if 0 < offset < sla else None
    return LevelTimes(step.owner_id, due, reminder)


def last_level(escalation: Escalation) -> int:
    return len(escalation.levels)


__all__ = [
    "LevelTimes",
    "add_business_time",
    "business_length_us",
    "business_time_between",
    "last_level",
    "level_times",
]
