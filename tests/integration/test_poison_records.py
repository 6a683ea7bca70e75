"""Poison records on both backends (real Kafka and PostgreSQL for `kafka`): a record the
adjudicator or the projection worker cannot decode (bytes that are not JSON, an unknown
event type, an unknown version) goes to the dead-letter topic with its origin and error,
its partition moves on (the events behind it are decided and projected), and a restarted
consumer neither stalls on it again nor writes a second dead letter."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.adjudication.worker import run_adjudicator
from services.projections.worker import ProjectionWorker
from shared import metrics
from shared.eventlog import EventLog, OutgoingRecord, Record, TopicPartition
from shared.eventlog.deadletter import read_dead_letter, replayed
from shared.eventlog.partitioner import partition_for
from shared.eventlog.topics import Topics
from shared.events import (
    Account,
    Opportunity,
    PartnerSnapshot,
    RegistrationSubmitted,
    encode,
    new_envelope,
)
from shared.events.codec import decode
from shared.readmodel.schema import registrations
from shared.readmodel.store import create_engine, migrate
from tests.conftest import make_eventlog
from tests.support.servers import ServerHandle, create_database

KEY = "dom:poisoned.example"
START = datetime(2026, 11, 1, tzinfo=UTC)


def _submitted(topics: Topics, i: int) -> OutgoingRecord:
    event = RegistrationSubmitted(
        registration_id=f"reg_{i:03d}", partner_id=f"p-{i}",
        partner=PartnerSnapshot(partner_id=f"p-{i}"), account_key=KEY,
        account=Account(name="Poisoned", domain="poisoned.example"),
        opportunity=Opportunity(title="deal", products=("analytics",)),
        motion="resell", submitted_at=START + timedelta(seconds=i), policy_version=1)
    envelope = new_envelope(event, id=f"evt_{i:03d}", source="urn:test", subject=KEY,
                            time=START + timedelta(seconds=i))
    return OutgoingRecord(topics.intake, KEY, encode(envelope))


def _poison(topics: Topics) -> list[OutgoingRecord]:
    """Three kinds of undecodable record, all on the account's partition."""
    valid = orjson.loads(_submitted(topics, 999).value)
    unknown_type = {**valid, "id": "evt_unknown_type", "type": "registration.frobnicated.v1"}
    unknown_version = {**valid, "id": "evt_unknown_version", "type": "registration.submitted.v99"}
    return [OutgoingRecord(topics.intake, KEY, b"\xff\x00 not json at all"),
            OutgoingRecord(topics.intake, KEY, orjson.dumps(unknown_type)),
            OutgoingRecord(topics.intake, KEY, orjson.dumps(unknown_version))]


async def _read(log: EventLog, topic: str) -> list[Record]:
    out: list[Record] = []
    for tp, end in sorted((await log.end_positions(topic)).items()):
        async for batch in log.read(tp, 0, end):
            out.extend(batch)
    return out


async def _until(predicate: Callable[[], Awaitable[bool]], what: str,
                 timeout: float = 90.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _running(start: Callable[[Callable[[], bool]], Awaitable[None]]
                   ) -> AsyncIterator[None]:
    stop = False
    task = asyncio.create_task(start(lambda: stop))
    try:
        yield
    finally:
        stop = True
        await asyncio.wait_for(task, 60)


async def _appended(log: EventLog, topics: Topics) -> list[int]:
    """Two good events, the three poison records, two good events; their offsets."""
    good = [_submitted(topics, i) for i in range(4)]
    landed = await log.append([*good[:2], *_poison(topics), *good[2:]])
    return [a.offset for a in landed]


def _poison_count(consumer: str, topic: str) -> float:
    return metrics.POISON_RECORDS.labels(consumer, topic)._value.get()


async def test_the_adjudicator_dead_letters_poison_records_and_decides_what_follows(
    eventlog: EventLog, unique: str,
) -> None:
    topics = Topics.named(f"poison-{unique}")
    await eventlog.create_topics(topics.specs(3))
    offsets = await _appended(eventlog, topics)
    partition = partition_for(KEY, 3)
    before = _poison_count("adjudicator", topics.intake)

    async def decided() -> bool:
        ids = {decode(r.value)[0].id.split(".d")[0]
               for r in await _read(eventlog, topics.decisions)}
        return {f"evt_{i:03d}" for i in range(4)} <= ids

    def adjudicator(stopping: Callable[[], bool]) -> Awaitable[None]:
        return run_adjudicator(eventlog, topics, group_id=f"adj-{unique}", source="urn:t",
                               stopping=stopping, snapshot_every_events=0)

    async with _running(adjudicator):
        await _until(decided, "the events behind the poison records to be decided")
        await _until(lambda: _committed_at(eventlog, f"adj-{unique}", topics, partition,
                                           offsets[-1] + 1), "the partition to move past")
    letters = [read_dead_letter(r.value) for r in await _read(eventlog, topics.dead_letters)]
    assert [(d.topic, d.partition, d.offset) for d in letters] == [
        (topics.intake, partition, o) for o in offsets[2:5]]
    assert all(d.consumer == "adjudicator" and d.group == f"adj-{unique}" for d in letters)
    assert "registration.frobnicated" in letters[1].error
    assert letters[0].value == b"\xff\x00 not json at all"
    assert _poison_count("adjudicator", topics.intake) - before == 3

    # A restarted adjudicator rebuilds its state past the poison records without a second
    # dead letter (they were committed with the batch's offset), and keeps deciding.
    await eventlog.append([_submitted(topics, 4)])

    async def fifth() -> bool:
        return any(decode(r.value)[0].id.startswith("evt_004.")
                   for r in await _read(eventlog, topics.decisions))

    async with _running(adjudicator):
        await _until(fifth, "an event after the restart to be decided")
    assert len(await _read(eventlog, topics.dead_letters)) == 3
    decisions = [decode(r.value)[0].id for r in await _read(eventlog, topics.decisions)]
    assert len(decisions) == len(set(decisions))  # nothing decided twice

    # Replay puts the original bytes back on the origin partition, at its end.
    landed = await eventlog.append([replayed(letters[0])])
    assert (landed[0].topic, landed[0].partition) == (topics.intake, partition)
    back = [r for r in await _read(eventlog, topics.intake) if r.offset == landed[0].offset
            and r.partition == partition]
    assert back[0].value == letters[0].value


async def _committed_at(log: EventLog, group: str, topics: Topics, partition: int,
                        position: int) -> bool:
    committed = await log.committed(group, topics.intake)
    return committed.get(TopicPartition(topics.intake, partition), 0) >= position


@pytest.fixture(params=["embedded+sqlite", "kafka+postgresql"])
async def projection_backend(request: pytest.FixtureRequest, tmp_path: Path, unique: str
                             ) -> AsyncIterator[tuple[EventLog, AsyncEngine]]:
    log_kind, store_kind = request.param.split("+")
    log = make_eventlog(log_kind, request, tmp_path)
    if store_kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}"
    else:
        server: ServerHandle = request.getfixturevalue("postgres_server")
        url = await create_database(server.url, f"poison_{unique}")
    engine = create_engine(url)
    await log.start()
    await migrate(engine)
    try:
        yield log, engine
    finally:
        await engine.dispose()
        await log.close()


async def test_the_projection_worker_dead_letters_poison_records_and_projects_what_follows(
    projection_backend: tuple[EventLog, AsyncEngine], unique: str,
) -> None:
    log, engine = projection_backend
    topics = Topics.named(f"ppoison-{unique}")
    await log.create_topics(topics.specs(3))
    offsets = await _appended(log, topics)
    before = _poison_count("projections", topics.intake)

    async def projected() -> bool:
        async with engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(registrations))
                     ).scalar_one()
        return int(count) == 4

    def worker(stopping: Callable[[], bool]) -> Awaitable[None]:
        return ProjectionWorker(log, engine, topics, group_id=f"proj-{unique}").run(stopping)

    async with _running(worker):
        await _until(projected, "the registrations behind the poison records to be projected")

    async def three_letters() -> bool:
        return len(await _read(log, topics.dead_letters)) == 3

    await _until(three_letters, "three dead letters")
    letters = [read_dead_letter(r.value) for r in await _read(log, topics.dead_letters)]
    assert sorted(d.offset for d in letters) == offsets[2:5]
    assert {d.consumer for d in letters} == {"projections"}
    assert _poison_count("projections", topics.intake) - before == 3
    # A restart starts past them (the positions moved in the same database transaction).
    await log.append([_submitted(topics, 4)])

    async def five() -> bool:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(registrations))
                        ).scalar_one()) == 5

    async with _running(worker):
        await _until(five, "a registration after the restart to be projected")
    assert len(await _read(log, topics.dead_letters)) == 3


async def test_the_poison_cli_lists_dead_letters_and_replays_them_onto_their_partition(
    kafka_server: ServerHandle, unique: str,
) -> None:
    """`dealreg poison list` shows each record once (the adjudicator's and the projections'
    letters of one record are one origin); `replay` refuses what still does not decode
    unless forced, then appends the original bytes to the origin partition."""
    from shared.eventlog.deadletter import dead_letter
    from shared.eventlog.kafka import KafkaEventLog

    log = KafkaEventLog(kafka_server.url)
    await log.start()
    try:
        topics = Topics.named(f"pcli-{unique}")
        await log.create_topics(topics.specs(3))
        [landed] = await log.append([OutgoingRecord(topics.intake, KEY, b"\xffgarbage")])
        origin = Record(landed.topic, landed.partition, landed.offset, KEY, b"\xffgarbage", 0)
        await log.append([
            dead_letter(origin, topic=topics.dead_letters, consumer=c, group="g", error="bad")
            for c in ("adjudicator", "projections", "projections")])
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
        env.update(DEALREG_BACKEND="distributed", DEALREG_TOPIC_PREFIX=f"pcli-{unique}",
                   DEALREG_KAFKA_BOOTSTRAP_SERVERS=kafka_server.url)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "dealreg", "poison", *args],
                                  env=env, capture_output=True, text=True, timeout=120)

        listed = await asyncio.to_thread(cli, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        shown = json.loads(listed.stdout)
        assert sorted(d["consumer"] for d in shown) == ["adjudicator", "projections"]
        assert {(d["topic"], d["partition"], d["offset"]) for d in shown} == {
            (landed.topic, landed.partition, landed.offset)}
        refused = await asyncio.to_thread(cli, "replay", "--all")
        assert "still undecodable" in refused.stdout
        assert (await log.end_positions(topics.intake))[
            TopicPartition(topics.intake, landed.partition)] == landed.offset + 1
        forced = await asyncio.to_thread(cli, "replay", "--all", "--force")
        assert forced.returncode == 0, forced.stderr
        records = [r for r in await _read(log, topics.intake) if r.partition == landed.partition]
        assert [r.value for r in records] == [b"\xffgarbage", b"\xffgarbage"]
    finally:
        await log.close()
