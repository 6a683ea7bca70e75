"""Escalation timers survive a restart, on both backends (issue 4, invariant 3).

A tie opens a dispute at level 1 with a two-second SLA. The adjudicator is killed before the
deadline and started again after it: the new instance rebuilds its state from the log,
sees the passed deadline, appends a TimerFired to intake and escalates the dispute to level
2, exactly once; a replay of the intake log (timer firings included) decides the same.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from services.adjudication.worker import run_adjudicator
from shared.eventlog import EventLog, OutgoingRecord, Record
from shared.eventlog.topics import Topics
from shared.events import (
    Account,
    DomainEvent,
    Envelope,
    Opportunity,
    PartnerSnapshot,
    RegistrationSubmitted,
    TimerFired,
    encode,
    new_envelope,
)
from shared.events.codec import decode
from shared.events.disputes import DisputeEscalated, DisputeOpened, DisputeReminderDue
from shared.events.reference import PolicyPublished
from shared.policy import Policy

SLA_SECONDS = 2


async def _all(log: EventLog, topic: str) -> list[Record]:
    out: list[Record] = []
    for tp, end in (await log.end_positions(topic)).items():
        async for batch in log.read(tp, 0, end):
            out.extend(batch)
    return out


async def _decisions(log: EventLog, topics: Topics) -> list[tuple[Envelope, DomainEvent]]:
    return [decode(r.value) for r in await _all(log, topics.decisions)]


async def _wait_for_decision(log: EventLog, topics: Topics, kind: type[DomainEvent],
                             timeout: float) -> DomainEvent:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        for _, event in await _decisions(log, topics):
            if isinstance(event, kind):
                return event
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {kind.__name__} within {timeout} s")


async def test_a_deadline_passed_while_the_adjudicator_was_down_still_escalates(
    eventlog: EventLog, unique: str
) -> None:
    topics = Topics.named(f"tmr-{unique}")
    await eventlog.create_topics(topics.specs(3))
    now = datetime.now(UTC)
    policy = Policy.model_validate({
        "version": 2,
        "escalation": {"levels": [{"owner_id": "cm-1", "sla": f"PT{SLA_SECONDS}S"},
                                  {"owner_id": "dir-1", "sla": "PT1H"}],
                       "reminder_before": 0.5, "deadline_unit": None},
    })
    published = PolicyPublished(version=2, document=policy.model_dump(mode="json"),
                                published_at=now)
    await eventlog.append([OutgoingRecord(topics.reference, "policy", encode(new_envelope(
        published, id=f"pol-{unique}", source="urn:test", subject="policy", time=now)))])
    key = "dom:tied.com"
    for n, partner in enumerate(("p-1", "p-2")):
        event = RegistrationSubmitted(
            registration_id=f"reg_{n}", partner_id=partner,
            partner=PartnerSnapshot(partner_id=partner), account_key=key,
            account=Account(name="Tied Inc", domain="tied.com", country="US"),
            opportunity=Opportunity(title="deal", products=("analytics",)), motion="resell",
            submitted_at=now, policy_version=2,
        )
        await eventlog.append([OutgoingRecord(topics.intake, key, encode(new_envelope(
            event, id=f"evt_{n}", source="urn:test", subject=key, time=now)))])

    group = f"adj-{unique}"
    stop = asyncio.Event()
    first = asyncio.create_task(run_adjudicator(eventlog, topics, group_id=group,
                                                source="urn:test", stopping=stop.is_set))
    opened = await _wait_for_decision(eventlog, topics, DisputeOpened, 30)
    assert isinstance(opened, DisputeOpened)
    assert (opened.level, opened.owner_id) == (1, "cm-1")
    assert (opened.due_at - now).total_seconds() == SLA_SECONDS
    first.cancel()  # killed before the deadline: no graceful stop
    await asyncio.gather(first, return_exceptions=True)

    await asyncio.sleep(SLA_SECONDS + 0.5)  # the deadline passes while nobody runs
    stop = asyncio.Event()
    second = asyncio.create_task(run_adjudicator(eventlog, topics, group_id=group,
                                                 source="urn:test", stopping=stop.is_set))
    try:
        escalated = await _wait_for_decision(eventlog, topics, DisputeEscalated, 30)
        await asyncio.sleep(1.0)  # give a duplicate escalation the chance to appear
    finally:
        stop.set()
        await asyncio.wait_for(second, 30)

    assert isinstance(escalated, DisputeEscalated)
    assert (escalated.from_level, escalated.to_level) == (1, 2)
    assert escalated.owner_id == "dir-1"
    assert escalated.breached_deadline == opened.due_at
    decisions = await _decisions(eventlog, topics)
    assert sum(isinstance(e, DisputeEscalated) for _, e in decisions) == 1
    # The reminder point (half the SLA) had passed as well: reminded once, before escalating.
    assert sum(isinstance(e, DisputeReminderDue) for _, e in decisions) == 1

    # Time entered only as TimerFired events in the intake log, stamped after the deadline.
    firings = [e for e in (decode(r.value) for r in await _all(eventlog, topics.intake))
               if isinstance(e[1], TimerFired)]
    assert firings, "no timer firing was written to the intake log"
    assert all(envelope.time >= fired.deadline  # type: ignore[attr-defined]
               for envelope, fired in firings)
