"""Timer firings: how time enters adjudication without a clock (invariant 3).

The adjudicator adapter watches the deadlines its state holds; when the wall clock passes
one, it appends a `TimerFired` to the INTAKE log, keyed by the account key of its target.
Decided like any other event, the firing advances the partition's clock to its envelope
time and every deadline up to then takes effect, so a replay of the log reproduces the
same escalations and expiries at the same points. A firing that arrives after its deadline
was already handled (duplicate, stale after an extension, a dispute already escalated or
resolved) changes nothing. Lateness is the envelope time minus `deadline`.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from shared.events.base import DomainEvent, event_type

TimerKind = Literal["protection_expiry", "dispute_reminder", "dispute_deadline",
                    "release_promotion"]
"""`release_promotion` (session 30): the line of an owner whose protection expired is
promoted on the policy's `promotion_unit`; `registration_id` is that owner."""


@event_type
class TimerFired(DomainEvent):
    TYPE: ClassVar[str] = "dealreg.timer.fired.v1"

    timer_id: str
    kind: TimerKind
    deadline: datetime
    account_key: str
    registration_id: str | None = None
    dispute_id: str | None = None
    level: int | None = None
