"""Escalation ladder arithmetic: when a dispute level is due and when its owner is reminded.

SLAs run in business time when the policy has a calendar: only working hours on working
days in the calendar's timezone count, and the public holidays of the calendar's country
(from the `holidays` package, pure data) are skipped. An SLA's days are working days
(`P2D` with 09:00-17:00 hours is 16 working hours); smaller units are working time. Without
a calendar SLAs run 24x7.

A level starts when the dispute opens or when the previous level's deadline passed (the
deadline itself, not the moment the late timer was noticed: escalation timing never depends
on how late a firing was). The deadline falls due on the policy's `deadline_unit` (the next
whole UTC hour by default, `shared.business_time.due_on`): it counts from the submission that
opened the dispute, a rival's for the other members, and must not tell it finer than the hour
partners read rivals' moments to. The reminder stays where the SLA puts it (only the owner
sees it). Everything is a pure function of the policy and an instant.
The calendar arithmetic itself (`add_business_time`) is `shared/business_time.py`, which the
console also uses to show the working time left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from services.adjudication.domain.instants import span_us
from shared.business_time import add_business_time, business_time_between, due_on
from shared.policy import BusinessCalendar, Escalation, EscalationLevel


def business_length_us(span: timedelta, calendar: BusinessCalendar | None) -> int:
    """How much working time `span` asks for, in µs (days count as working days)."""
    if calendar is None:
        return span_us(span)
    start, end = calendar.day_minutes
    day_us = (end - start) * 60_000_000
    return span.days * day_us + span_us(span - timedelta(days=span.days))


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
    unit = escalation.deadline_unit
    due = due_on(add_business_time(start, sla, calendar),
                 span_us(unit) if unit is not None else None)
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
