"""The projection worker and the rebuild on real stores (SQLite and PostgreSQL) reading a
real log (embedded and Kafka): effectively once, order tolerant, rebuild equals live."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.adapters import repository
from services.projections.adapters.parallel import RebuildWorkerFailed
from services.projections.adapters.rebuild import rebuild
from services.projections.domain.batch import MODELS, Batch, Item, Loaded
from services.projections.worker import ProjectionWorker
from shared.eventlog import EventLog, OutgoingRecord, Record, TopicPartition
from shared.eventlog.topics import Topics
from shared.events import AccountsLinked, AccountsUnlinked
from shared.readmodel.schema import account_links, ownership_intervals, registrations
from shared.readmodel.store import create_engine, migrate
from tests.conftest import make_eventlog
from tests.integration.projections.projection_support import (
    append_workload,
    positions,
    snapshot,
)
from tests.support.servers import ServerHandle, create_database
from tests.unit.projections.projection_workload import Workload, generate


@pytest.fixture(scope="module")
def workload() -> Workload:
    return generate(1200, seed=21, accounts=50, partners=10)


@pytest.fixture(params=["embedded+sqlite", "kafka+postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path, unique: str
                  ) -> AsyncIterator[tuple[EventLog, AsyncEngine, Topics]]:
    log_kind, store_kind = request.param.split("+")
    log = make_eventlog("embedded" if log_kind == "embedded" else "kafka", request, tmp_path)
    if store_kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}"
    else:
        server: ServerHandle = request.getfixturevalue("postgres_server")
        url = await create_database(server.url, f"proj_{unique}")
    engine = create_engine(url)
    await log.start()
    await migrate(engine)
    topics = Topics.named(f"proj-{unique}")
    await log.create_topics(topics.specs(3))
    try:
        yield log, engine, topics
    finally:
        await engine.dispose()
        await log.close()


async def read_all(log: EventLog, topics: Topics) -> dict[str, list[Record]]:
    """Each topic's records, partitions concatenated (each partition in order)."""
    found: dict[str, list[Record]] = {}
    for topic in (topics.intake, topics.decisions):
        found[topic] = []
        for tp, end in sorted((await log.end_positions(topic)).items()):
            async for batch in log.read(tp, 0, end):
                found[topic].extend(batch)
    return found


def delivery(streams: dict[str, list[Record]], rng: random.Random) -> list[list[Record]]:
    """Polls as two independently consumed topics may deliver them: per-partition order
    kept, topics interleaved at random, batches of random size."""
    queues = {topic: list(recs) for topic, recs in streams.items()}
    polls: list[list[Record]] = []
    while any(queues.values()):
        topic = rng.choice([t for t, q in queues.items() if q])
        size = rng.choice((1, 5, 40, 300))
        polls.append(queues[topic][:size])
        del queues[topic][:size]
    return polls


async def test_live_folding_in_any_delivery_order_equals_a_rebuild(
    backend: tuple[EventLog, AsyncEngine, Topics], workload: Workload,
) -> None:
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    streams = await read_all(log, topics)
    worker = ProjectionWorker(log, engine, topics, group_id="unused")
    for poll in delivery(streams, random.Random(3)):
        await worker.apply(poll)
    live = await snapshot(engine)
    live_positions = await positions(engine)
    assert len(live["registrations"]) == sum(
        1 for r in workload.records if type(r.event).__name__ == "RegistrationSubmitted")
    assert live["disputes"] and live["ownership_intervals"] and live["timeline_entries"]

    result = await rebuild(log, engine, topics, batch_records=700)
    assert result.records == len(workload.records)
    assert await snapshot(engine) == live
    assert await positions(engine) == live_positions


async def test_a_redelivered_batch_changes_nothing(
    backend: tuple[EventLog, AsyncEngine, Topics], workload: Workload,
) -> None:
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    streams = await read_all(log, topics)
    worker = ProjectionWorker(log, engine, topics, group_id="unused")
    records = streams[topics.intake][:200] + streams[topics.decisions][:200]
    await worker.apply(records)
    before = await snapshot(engine)
    again = await worker.apply(records)
    assert again is None  # every record was already applied: nothing decoded or written
    assert await snapshot(engine) == before


async def test_records_another_process_applied_meanwhile_are_skipped(
    backend: tuple[EventLog, AsyncEngine, Topics], workload: Workload,
) -> None:
    """A rebalance moved the partition: the positions in the store, read inside the
    batch's transaction, win over what this worker remembered."""
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    streams = await read_all(log, topics)
    first = ProjectionWorker(log, engine, topics, group_id="unused")
    second = ProjectionWorker(log, engine, topics, group_id="unused")
    records = streams[topics.intake][:150]
    await first.apply(records)
    before = await snapshot(engine)
    assert await second.apply(records) is None
    assert await snapshot(engine) == before


async def test_one_model_rebuilt_alone_equals_its_live_rows(
    backend: tuple[EventLog, AsyncEngine, Topics], workload: Workload,
) -> None:
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    await rebuild(log, engine, topics)
    live = await snapshot(engine)
    for model in ("ownership", "disputes"):
        await rebuild(log, engine, topics, [model], batch_records=333)
        assert await snapshot(engine) == live, model


async def test_a_rebuild_of_a_log_holding_an_event_twice_equals_the_live_rows(
    backend: tuple[EventLog, AsyncEngine, Topics], workload: Workload,
) -> None:
    """A replay copies rows it has not written yet straight into their tables (PostgreSQL,
    `repository._copy_fresh`); a timeline entry of an event the log holds twice is there
    already when the copy comes in a later batch: the batch falls back to the upsert and
    the rebuild still equals the live rows (a straight copy failed on the key)."""
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    first = (await read_all(log, topics))[topics.intake][0]
    await log.append([OutgoingRecord(first.topic, first.key, first.value)])
    streams = await read_all(log, topics)
    worker = ProjectionWorker(log, engine, topics, group_id="unused")
    await worker.apply(streams[topics.intake] + streams[topics.decisions])
    live = await snapshot(engine)
    live_positions = await positions(engine)
    assert any(r.offset != first.offset and r.value == first.value
               for r in streams[topics.intake] if r.partition == first.partition)

    result = await rebuild(log, engine, topics, batch_records=300)
    assert result.records == len(workload.records) + 1
    assert await snapshot(engine) == live
    assert await positions(engine) == live_positions


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_the_bulk_path_stores_what_sqlalchemy_would(
    store: str, request: pytest.FixtureRequest, tmp_path: Path, unique: str,
) -> None:
    if store == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'fast.sqlite3'}"
    else:
        server: ServerHandle = request.getfixturevalue("postgres_server")
        url = await create_database(server.url, f"bulk_{unique}")
    engine = create_engine(url)
    await migrate(engine)
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    row = {
        "holder_id": "h", "opened_by": "o", "account_key": "dom:x.com",
        "kind": "protection", "party_type": "partner", "party_id": "p-1",
        "products": ["a", {"nested": [1, None]}], "status": "approved",
        "credit_percent": Decimal("33.33"), "valid_from": moment, "valid_to": None,
        "protected_until": datetime(2026, 1, 2, 3, 4, 5, 123, tzinfo=UTC),
    }
    try:
        async with engine.begin() as conn:
            await repository.upsert(conn, ownership_intervals, [row], ("holder_id",
                                                                       "opened_by"))
            await conn.execute(insert(ownership_intervals), [{**row, "holder_id": "h2"}])
            await repository.upsert(conn, registrations, [{"id": "r", "status": "approved",
                                                            "collided": True,
                                                            "extensions": 0}], ("id",))
            # Upserting again overwrites (and a first-writer-wins upsert does not).
            await repository.upsert(conn, ownership_intervals, [{**row, "status": "won"}],
                                    ("holder_id", "opened_by"))
            await repository.upsert(conn, ownership_intervals, [{**row, "status": "lost"}],
                                    ("holder_id", "opened_by"), overwrite=False)
        async with engine.connect() as conn:
            fast, slow = (await conn.execute(
                select(ownership_intervals).order_by(ownership_intervals.c.holder_id)
            )).mappings().all()
            raw = (await conn.exec_driver_sql(
                "SELECT valid_from, protected_until, products, credit_percent "
                "FROM ownership_intervals ORDER BY holder_id")).all()
            collided = (await conn.execute(select(registrations.c.collided))).scalar_one()
        assert {**fast, "holder_id": "h2", "status": "approved"} == dict(slow)
        assert fast["status"] == "won"
        # Byte for byte what SQLAlchemy binds (JSON text may differ in whitespace only).
        assert raw[0][:2] == raw[1][:2] and raw[0][3] == raw[1][3]
        assert json.loads(raw[0][2]) == json.loads(raw[1][2]) if store == "sqlite" \
            else raw[0][2] == raw[1][2]
        assert fast["valid_from"] == moment
        assert collided is True
    finally:
        await engine.dispose()


async def test_positions_are_stored_per_model(
    backend: tuple[EventLog, AsyncEngine, Topics], workload: Workload,
) -> None:
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    await rebuild(log, engine, topics)
    stored = await positions(engine)
    ends = {**await log.end_positions(topics.intake), **await log.end_positions(topics.decisions)}
    for model in repository.TABLES:
        for tp, end in ends.items():
            if end:
                assert 0 < stored[(model, tp.topic, tp.partition)] <= end
    assert TopicPartition(topics.intake, 0) in ends


@pytest.mark.parametrize("path", ["worker", "rebuild"])
async def test_a_batch_that_fails_leaves_neither_rows_nor_positions(
    backend: tuple[EventLog, AsyncEngine, Topics], workload: Workload, path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows and positions commit together or not at all (invariant 4), also for the bulk
    writes that go straight to the driver."""
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    streams = await read_all(log, topics)
    original = repository.save_positions

    async def crash(conn: object, positions: object, **options: Any) -> None:
        await original(conn, positions, **options)  # type: ignore[arg-type]
        raise RuntimeError("crash after the writes, before the commit")

    monkeypatch.setattr(repository, "save_positions", crash)
    with pytest.raises(RuntimeError):
        if path == "worker":
            await ProjectionWorker(log, engine, topics, group_id="unused").apply(
                streams[topics.intake][:300])
        else:
            await rebuild(log, engine, topics, batch_records=300)
    after = await snapshot(engine)
    assert all(rows == [] for rows in after.values()), {t: len(r) for t, r in after.items()}
    assert await positions(engine) == {}


async def test_a_rebuild_that_fails_midway_keeps_the_batches_before_and_resumes_equal(
    backend: tuple[EventLog, AsyncEngine, Topics], workload: Workload,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batches are folded while the previous one writes: when the third write fails, the
    two before it are committed with their positions (in log order, nothing of the third),
    and a worker resuming from those positions ends where a full rebuild does."""
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    await rebuild(log, engine, topics, batch_records=300)
    full, full_positions = await snapshot(engine), await positions(engine)

    original = repository.execute
    writes: list[int] = []

    async def fail_third(conn: object, steps: object) -> None:
        writes.append(1)
        if len(writes) == 3:
            raise RuntimeError("the third batch's write fails")
        await original(conn, steps)  # type: ignore[arg-type]

    monkeypatch.setattr(repository, "execute", fail_third)
    with pytest.raises(RuntimeError, match="third batch"):
        await rebuild(log, engine, topics, batch_records=300)
    monkeypatch.setattr(repository, "execute", original)
    kept = await positions(engine)
    assert kept and sum(kept.values()) < sum(full_positions.values())
    partial = await snapshot(engine)
    assert 0 < len(partial["timeline_entries"]) < len(full["timeline_entries"])

    streams = await read_all(log, topics)
    worker = ProjectionWorker(log, engine, topics, group_id="unused")
    await worker.apply(streams[topics.intake] + streams[topics.decisions])
    assert await snapshot(engine) == full
    assert await positions(engine) == full_positions


async def test_bulk_writes_of_a_rebuild_batch_stay_inside_its_transaction(
    backend: tuple[EventLog, AsyncEngine, Topics], workload: Workload,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Later rebuild batches may write before any other statement (their rows are carried
    over, nothing is read): what they write must still be invisible until commit."""
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    original = repository.save_positions
    calls: list[object] = []

    async def check(conn: object, saved: object) -> None:
        await original(conn, saved)  # type: ignore[arg-type]
        calls.append(saved)
        if len(calls) == 2:
            committed = await positions(engine)  # another connection: committed state only
            first = {(m, tp.topic, tp.partition): p
                     for m, by_tp in calls[0].items() for tp, p in by_tp.items()}  # type: ignore[attr-defined]
            assert committed == first
            raise RuntimeError("stop after checking")

    monkeypatch.setattr(repository, "save_positions", check)
    with pytest.raises(RuntimeError, match="stop after checking"):
        # Timelines read nothing before writing: the first statement of each batch is a
        # bulk write.
        await rebuild(log, engine, topics, ["timelines"], batch_records=300)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_an_ended_account_link_is_deleted_from_the_directory(
    store: str, request: pytest.FixtureRequest, tmp_path: Path, unique: str,
) -> None:
    if store == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'links.sqlite3'}"
    else:
        server: ServerHandle = request.getfixturevalue("postgres_server")
        url = await create_database(server.url, f"links_{unique}")
    engine = create_engine(url)
    await migrate(engine)
    moment = datetime(2026, 1, 2, tzinfo=UTC)

    def linked(alias: str, canonical: str) -> AccountsLinked:
        return AccountsLinked(account_key=alias, canonical_key=canonical, matched_by="name",
                              score=1.0, linked_at=moment, policy_version=1,
                              explanation="linked")

    def batch(*events: AccountsLinked | AccountsUnlinked) -> Batch:
        return Batch(Loaded()).fold_all([
            Item(f"evt_{i}", moment, e, frozenset(MODELS), e.to_data())
            for i, e in enumerate(events)])

    try:
        async with engine.begin() as conn:
            await repository.write(conn, batch(linked("name:US:a", "dom:a.com"),
                                               linked("crm:1", "dom:b.com")))
        async with engine.begin() as conn:
            await repository.write(conn, batch(AccountsUnlinked(
                account_key="name:US:a", canonical_key="dom:a.com", unlinked_at=moment,
                policy_version=1, explanation="unlinked"), AccountsUnlinked(
                account_key="crm:1", canonical_key="dom:other.com", unlinked_at=moment,
                policy_version=1, explanation="not this link")))
        async with engine.connect() as conn:
            rows = (await conn.execute(select(account_links.c.account_key,
                                              account_links.c.canonical_key))).all()
        assert [tuple(r) for r in rows] == [("crm:1", "dom:b.com")]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_account_link_rows_do_not_depend_on_the_order_partitions_are_folded_in(
    store: str, request: pytest.FixtureRequest, tmp_path: Path, unique: str,
) -> None:
    """The edge's link report is copied to every intake partition, so one alias is linked
    (and maybe unlinked) by several partitions, each at its own time. A one-process rebuild
    folds partition after partition, the live worker in delivery order, a parallel rebuild
    as its workers happen to commit: every order must leave the same link rows. Here
    partition 0 links the alias then ends its link, partition 1 links it later and keeps
    it: the alias stays linked, with the earliest link's facts."""
    t1, t2, t3 = (datetime(2026, 1, d, tzinfo=UTC) for d in (2, 3, 4))

    def linked(at: datetime, score: float) -> AccountsLinked:
        return AccountsLinked(account_key="name:US:a", canonical_key="dom:a.com",
                              matched_by="name", score=score, linked_at=at,
                              policy_version=1, explanation="linked")

    unlinked = AccountsUnlinked(account_key="name:US:a", canonical_key="dom:a.com",
                                unlinked_at=t3, policy_version=1, explanation="unlinked")
    zero_link, zero_unlink, one_link = linked(t1, 0.9), unlinked, linked(t2, 1.0)
    orders: dict[str, list[list[AccountsLinked | AccountsUnlinked]]] = {
        "partition 0 then 1": [[zero_link, zero_unlink], [one_link]],
        "partition 1 then 0": [[one_link], [zero_link, zero_unlink]],
        "interleaved": [[zero_link], [one_link], [zero_unlink]],
        "one batch": [[one_link, zero_link, zero_unlink]],
    }
    found: dict[str, list[tuple[object, ...]]] = {}
    for name, batches in orders.items():
        if store == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / f'links-{len(found)}.sqlite3'}"
        else:
            server: ServerHandle = request.getfixturevalue("postgres_server")
            url = await create_database(server.url, f"linkorder_{len(found)}_{unique}")
        engine = create_engine(url)
        await migrate(engine)
        try:
            for n, events in enumerate(batches):
                async with engine.begin() as conn:
                    await repository.write(conn, Batch(Loaded()).fold_all([
                        Item(f"evt_{n}_{i}", t3, e,
                             frozenset(MODELS), e.to_data())
                        for i, e in enumerate(events)]))
            async with engine.connect() as conn:
                found[name] = [tuple(r) for r in (await conn.execute(
                    select(account_links.c.account_key, account_links.c.canonical_key,
                           account_links.c.matched_by, account_links.c.score,
                           account_links.c.linked_at))).all()]
        finally:
            await engine.dispose()
    assert found["partition 0 then 1"] == [
        ("name:US:a", "dom:a.com", "name", Decimal("0.9000"), t1)], found
    assert all(rows == found["partition 0 then 1"] for rows in found.values()), found


async def test_a_rebuild_in_two_processes_equals_the_live_rows(
    backend: tuple[EventLog, AsyncEngine, Topics], workload: Workload,
) -> None:
    """Partition groups replayed by two worker processes side by side (each folding and
    writing its own batches, this process reading the log) give the live rows and
    positions: the models are partition-independent."""
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    streams = await read_all(log, topics)
    worker = ProjectionWorker(log, engine, topics, group_id="unused")
    await worker.apply(streams[topics.intake] + streams[topics.decisions])
    live, live_positions = await snapshot(engine), await positions(engine)

    reported: list[int] = []
    result = await rebuild(log, engine, topics, batch_records=300, processes=2,
                           progress=reported.append)
    assert result.records == len(workload.records) == sum(reported)
    assert len(reported) > 2  # progress per batch, from both workers
    assert await snapshot(engine) == live
    assert await positions(engine) == live_positions


async def test_a_failing_rebuild_process_keeps_whole_batches_and_resumes_equal(
    backend: tuple[EventLog, AsyncEngine, Topics], workload: Workload,
) -> None:
    """One worker process's batch fails in the store (a trigger refuses one registration
    of a later batch): the rebuild raises that failure, every committed batch is whole
    (rows with their positions), and a worker resuming from them ends equal to a full
    rebuild."""
    log, engine, topics = backend
    await append_workload(log, topics, workload)
    await rebuild(log, engine, topics, batch_records=300)
    full, full_positions = await snapshot(engine), await positions(engine)
    streams = await read_all(log, topics)
    late = [r for r in streams[topics.intake] if r.partition == 0][-1]
    refused = json.loads(late.value)["data"].get("registration_id")
    assert refused
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON registrations "
                f"WHEN NEW.id = '{refused}' BEGIN SELECT RAISE(ABORT, 'refused row'); END")
        else:
            await conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.id = '{refused}' THEN RAISE EXCEPTION 'refused row'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql")
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON registrations FOR EACH ROW "
                "EXECUTE FUNCTION refuse()")
    with pytest.raises(RebuildWorkerFailed, match="refused row"):
        await rebuild(log, engine, topics, batch_records=300, processes=2)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TRIGGER refuse" if engine.dialect.name == "sqlite"
                                   else "DROP TRIGGER refuse ON registrations")
    kept = await positions(engine)
    assert kept and sum(kept.values()) < sum(full_positions.values())
    partial = await snapshot(engine)
    assert refused not in {r["id"] for r in partial["registrations"]}
    assert 0 < len(partial["timeline_entries"]) < len(full["timeline_entries"])

    worker = ProjectionWorker(log, engine, topics, group_id="unused")
    await worker.apply(streams[topics.intake] + streams[topics.decisions])
    assert await snapshot(engine) == full
    assert await positions(engine) == full_positions


_UNSTAGED = 10**6
"""A staging threshold no batch reaches: every table's rows go out as one multi-row
upsert (`repository._multirow_statement`)."""


async def test_staged_live_batches_store_the_rows_row_by_row_writes_do(
    request: pytest.FixtureRequest, tmp_path: Path, unique: str, workload: Workload,
) -> None:
    """PostgreSQL: a live batch written through staging tables (COPY + one upsert per
    table) or one multi-row upsert per table (`_UNSTAGED`: every table below the staging
    threshold) leaves exactly the rows `executemany` leaves, with batches in which several
    events touch the same row (a registration submitted, decided, extended and disputed
    in one batch; totals moved up and down again) so the fold's order within a batch is
    what is written."""
    server: ServerHandle = request.getfixturevalue("postgres_server")
    log = make_eventlog("kafka", request, tmp_path)
    await log.start()
    topics = Topics.named(f"staged-{unique}")
    await log.create_topics(topics.specs(3))
    engines = {}
    try:
        await append_workload(log, topics, workload)
        streams = await read_all(log, topics)
        intake, decisions = streams[topics.intake], streams[topics.decisions]
        # Both topics in the same polls: a registration's intake and its decisions meet
        # in one batch (each partition's order kept), in batches of several sizes.
        polls: list[list[Record]] = []
        i = d = 0
        for size in [600, 1, 5, 40, 300] * 40:
            if i >= len(intake) and d >= len(decisions):
                break
            polls.append(intake[i:i + size] + decisions[d:d + size])
            i, d = i + size, d + size
        assert any(
            len({(r.topic, r.partition) for r in poll}) > 1 for poll in polls)
        for stage_from in (None, 1, repository.STAGE_FROM_ROWS, _UNSTAGED):
            url = await create_database(server.url, f"staged_{stage_from}_{unique}")
            engine = engines[stage_from] = create_engine(url)
            await migrate(engine)
            worker = ProjectionWorker(log, engine, topics, group_id="unused",
                                      stage_from=stage_from)
            folded = 0
            for poll in polls:
                batch = await worker.apply(poll)
                folded += len(batch.touched_registrations()) if batch else 0
            assert folded
        row_by_row = await snapshot(engines[None])
        assert row_by_row["registrations"] and row_by_row["pipeline_totals"]
        assert row_by_row["timeline_entries"] and row_by_row["disputes"]
        assert await snapshot(engines[1]) == row_by_row
        assert await snapshot(engines[repository.STAGE_FROM_ROWS]) == row_by_row
        assert await snapshot(engines[_UNSTAGED]) == row_by_row
        assert await positions(engines[1]) == await positions(engines[None])
    finally:
        for engine in engines.values():
            await engine.dispose()
        await log.close()
