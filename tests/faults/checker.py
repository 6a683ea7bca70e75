"""After the faults: prove nothing was lost or doubled.

1. Every 2xx command has exactly one event in the intake log (its `RegistrationSubmitted`,
   found by the command's unique opportunity title, with the id the 2xx returned); a
   command that never got a definitive answer has at most one; nothing else is there.
2. Every input has exactly one set of decisions: decision ids are unique and the decisions
   equal what a fresh, pure replay of the intake log decides (ids derive from the input).
3. Every poison record has exactly one dead letter from the adjudicator (written in the
   batch's transaction) and at least one from the projection worker.
4. The read models equal a fresh rebuild (into a new database) from the log.
5. Every due notification was delivered at least once: no webhook delivery is left
   pending, dead or disabled, and the receiver got every delivery id.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.adjudication.domain import (
    AdjudicationState,
    DecisionContext,
    decide,
    policy_version_of,
)
from services.adjudication.worker import PolicyBook
from services.projections.adapters.rebuild import rebuild
from services.projections.domain.batch import MODELS
from shared.eventlog import EventLog, Record, TopicPartition
from shared.eventlog.deadletter import read_dead_letter
from shared.eventlog.topics import Topics
from shared.events import RegistrationSubmitted
from shared.events.codec import decode
from shared.readmodel.schema import notification_outbox, projection_positions
from shared.readmodel.store import create_engine, migrate
from tests.integration.projections.projection_support import snapshot
from tests.support.receivers import HttpReceiver
from tests.support.servers import create_database


@dataclass
class Verdict:
    counts: dict[str, int] = field(default_factory=dict)
    discrepancies: list[str] = field(default_factory=list)

    def wrong(self, what: str) -> None:
        self.discrepancies.append(what)


async def read_all(log: EventLog, topic: str) -> dict[TopicPartition, list[Record]]:
    out: dict[TopicPartition, list[Record]] = {}
    for tp, end in sorted((await log.end_positions(topic)).items()):
        out[tp] = []
        async for batch in log.read(tp, 0, end):
            out[tp].extend(batch)
    return out


def _after_last(records: dict[TopicPartition, list[Record]]) -> dict[TopicPartition, int]:
    return {tp: recs[-1].offset + 1 for tp, recs in records.items() if recs}


async def quiesce(log: EventLog, engine: AsyncEngine, topics: Topics, adjudicator_group: str,
                  timeout: float) -> None:
    """Until the adjudicator has committed past every intake record and every read model
    has applied every intake and decision record (twice in a row: nothing new came)."""
    deadline = time.monotonic() + timeout
    calm = 0
    last: tuple[Any, ...] = ()
    while True:
        intake = _after_last(await read_all(log, topics.intake))
        decisions = _after_last(await read_all(log, topics.decisions))
        committed = await log.committed(adjudicator_group, topics.intake)
        async with engine.connect() as conn:
            rows = (await conn.execute(select(projection_positions))).all()
        applied: dict[tuple[str, TopicPartition], int] = {
            (p, TopicPartition(t, n)): pos for p, t, n, pos in rows}
        behind = [f"adjudicator {tp.partition}: {committed.get(tp, 0)} < {end}"
                  for tp, end in intake.items() if committed.get(tp, 0) < end]
        behind += [f"{m} {tp.topic}/{tp.partition}: {applied.get((m, tp), 0)} < {end}"
                   for m in MODELS for ends in (intake, decisions) for tp, end in ends.items()
                   if applied.get((m, tp), 0) < end]
        now = (intake, decisions)
        calm = calm + 1 if not behind and now == last else 0
        last = now
        if calm >= 2:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not caught up within {timeout:.0f} s: {behind[:8]}")
        await asyncio.sleep(1.0)


async def check(log: EventLog, engine: AsyncEngine, topics: Topics, *, server_url: str,
                fresh_name: str, titles: dict[str, int], outcomes: dict[int, Any],
                poison: list[tuple[TopicPartition, int]], hook: HttpReceiver,
                notification_timeout: float = 240.0) -> Verdict:
    verdict = Verdict()
    intake = await read_all(log, topics.intake)
    decisions = await read_all(log, topics.decisions)

    # 1. commands <-> events --------------------------------------------------------------
    poisoned = set(poison)
    by_title: dict[int, list[str]] = defaultdict(list)
    event_ids: Counter[str] = Counter()
    inputs = 0
    for tp, records in intake.items():
        for record in records:
            try:
                envelope, event = decode(record.value)
            except ValueError as exc:
                if (tp, record.offset) not in poisoned:
                    verdict.wrong(f"undecodable intake record {tp}@{record.offset}: {exc}")
                continue
            if (tp, record.offset) in poisoned:
                verdict.wrong(f"the poison record {tp}@{record.offset} decodes")
            inputs += 1
            event_ids[envelope.id] += 1
            if isinstance(event, RegistrationSubmitted):
                seq = titles.get(event.opportunity.title)
                if seq is None:
                    verdict.wrong(f"a registration no command asked for: {event.opportunity}")
                else:
                    by_title[seq].append(event.registration_id)
    for event_id, n in event_ids.items():
        if n > 1:
            verdict.wrong(f"intake event {event_id} appended {n} times")
    accepted = 0
    for seq, outcome in outcomes.items():
        found = by_title.get(seq, [])
        if outcome.status is not None and outcome.status < 300:
            accepted += 1
            if found != [outcome.registration_id]:
                verdict.wrong(f"command {seq} answered {outcome.status} with "
                              f"{outcome.registration_id}; the log holds {found}")
        elif outcome.status is None and len(found) > 1:
            verdict.wrong(f"unanswered command {seq} has {len(found)} events: {found}")
        elif outcome.status is not None and found:
            verdict.wrong(f"command {seq} refused ({outcome.status}) but has events {found}")
    verdict.counts.update(commands_2xx=accepted, intake_events=inputs)

    # 2. inputs <-> decisions ---------------------------------------------------------------
    actual: dict[str, dict[str, Any]] = {}
    for records in decisions.values():
        for record in records:
            envelope, event = decode(record.value)
            if envelope.id in actual:
                verdict.wrong(f"decision {envelope.id} written twice")
            actual[envelope.id] = event.to_data()
    policies = PolicyBook(log, topics.reference)
    await policies.refresh()
    expected: dict[str, dict[str, Any]] = {}
    where: dict[str, tuple[int, int]] = {}  # decision id -> its input's (partition, offset)
    for records in intake.values():
        state = AdjudicationState()
        for record in records:
            try:
                envelope, event = decode(record.value)
            except ValueError:
                continue
            version = policy_version_of(event)
            if version is not None:
                await policies.require(version)
            _, made = decide(state, event, DecisionContext(envelope.id, envelope.time,
                                                           policies.get(version)))
            for i, decision in enumerate(made):
                expected[f"{envelope.id}.d{i}"] = decision.to_data()
                where[f"{envelope.id}.d{i}"] = (record.partition, record.offset)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    differ = sorted(i for i in set(expected) & set(actual) if expected[i] != actual[i])
    for label, ids in (("missing", missing), ("unexpected", extra), ("different", differ)):
        if ids:
            spans: dict[int, list[int]] = defaultdict(list)
            for i in ids:
                if i in where:
                    spans[where[i][0]].append(where[i][1])
            at = {p: f"{min(o)}..{max(o)} ({len(o)})" for p, o in sorted(spans.items())}
            verdict.wrong(f"{len(ids)} {label} decisions, e.g. {ids[:3]}; inputs by "
                          f"partition: {at}")
    verdict.counts.update(decisions=len(actual),
                          decided_inputs=len({i.rsplit(".d", 1)[0] for i in actual}))

    # 3. poison records -> dead letters -----------------------------------------------------
    letters = [read_dead_letter(r.value)
               for recs in (await read_all(log, topics.dead_letters)).values() for r in recs]
    by_origin: Counter[tuple[str, TopicPartition, int]] = Counter(
        (d.consumer, TopicPartition(d.topic, d.partition), d.offset) for d in letters)
    for tp, offset in poison:
        if by_origin[("adjudicator", tp, offset)] != 1:
            verdict.wrong(f"poison {tp}@{offset}: "
                          f"{by_origin[('adjudicator', tp, offset)]} adjudicator dead letters")
        if by_origin[("projections", tp, offset)] < 1:
            verdict.wrong(f"poison {tp}@{offset}: no projections dead letter")
    verdict.counts.update(dead_letters=len(letters))

    # 4. read models == a fresh rebuild -----------------------------------------------------
    fresh = create_engine(await create_database(server_url, fresh_name))
    try:
        await migrate(fresh)
        await rebuild(log, fresh, topics)
        live, rebuilt = await snapshot(engine), await snapshot(fresh)
    finally:
        await fresh.dispose()
    for table in sorted(set(live) | set(rebuilt)):
        a, b = live.get(table, []), rebuilt.get(table, [])
        if a != b:
            verdict.wrong(f"read model {table}: live {len(a)} rows != rebuilt {len(b)} rows "
                          f"(first difference: {_first_difference(a, b)})")
    verdict.counts.update(read_model_rows=sum(len(v) for v in live.values()))

    # 5. notifications ----------------------------------------------------------------------
    o = notification_outbox.c
    deadline = time.monotonic() + notification_timeout
    while True:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(o.id, o.status).where(o.channel == "webhook"))
                    ).all()
        pending = [r for r in rows if r.status == "pending"]
        if not pending or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    received = {r.headers.get("webhook-id") for r in hook.requests}
    statuses = Counter(r.status for r in rows)
    for row in rows:
        if row.status in ("pending", "dead", "disabled"):
            verdict.wrong(f"notification {row.id} is {row.status}")
        elif row.status == "delivered" and row.id not in received:
            verdict.wrong(f"notification {row.id} marked delivered, never received")
    verdict.counts.update(notifications=len(rows),
                          notifications_delivered=statuses.get("delivered", 0),
                          webhook_requests=len(hook.requests))
    return verdict


def _first_difference(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> str:
    for x, y in zip(a, b, strict=False):
        if x != y:
            return f"{x} != {y}"[:600]
    return "one has more rows"
