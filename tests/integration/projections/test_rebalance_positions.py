"""Two projection workers fold the same records at once, as during a consumer-group
rebalance (the old owner still finishing a batch while the new owner starts its first):
every record is applied once, also on a partition that has no stored position yet.

Real stores (PostgreSQL, and SQLite for its single-writer claim), the real worker and
repository code. Each worker has its own engine (two processes' connections); the only
test hook is a pause after a batch read its positions, before it folds: it holds the batch
until the other worker's batch got there too, or is seen waiting on a lock (PostgreSQL:
`pg_stat_activity`; SQLite: still not there after a while, blocked in `BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections import worker as worker_module
from services.projections.adapters.rebuild import rebuild
from services.projections.domain.batch import MODELS, NOTIFICATIONS, Batch, Item
from services.projections.worker import ProjectionWorker
from shared.eventlog import EventLog, OutgoingRecord, Record, TopicPartition
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.topics import Topics
from shared.events import AccountsLinked, encode, new_envelope
from shared.readmodel.store import create_engine, migrate
from tests.integration.projections.projection_support import (
    append_workload,
    positions,
    snapshot,
)
from tests.support.servers import ServerHandle, create_database
from tests.unit.projections.projection_workload import Workload, generate

LIVE_MODELS = (*MODELS, NOTIFICATIONS)
"""What `dealreg serve projections` folds (`dealreg/runtime.py`): the notification outbox's
positions are locked with the others."""
SQLITE_BLOCKED_AFTER = 0.5
"""SQLite: a batch not at the pause this long after the other's is blocked in its
`BEGIN IMMEDIATE` (SQLite shows no lock waits)."""


@pytest.fixture(scope="module")
def workload() -> Workload:
    return generate(600, seed=5, accounts=24, partners=6)


class Store:
    def __init__(self, log: EventLog, topics: Topics, url: str) -> None:
        self.log = log
        self.topics = topics
        self.url = url
        self.engines: list[AsyncEngine] = []

    def engine(self) -> AsyncEngine:
        made = create_engine(self.url)
        self.engines.append(made)
        return made

    @property
    def postgres(self) -> bool:
        return self.url.startswith("postgresql")


@pytest.fixture(params=["postgresql", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, unique: str,
                workload: Workload) -> AsyncIterator[Store]:
    if request.param == "postgresql":
        server: ServerHandle = request.getfixturevalue("postgres_server")
        url = await create_database(server.url, f"rebal_{unique}")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}"
    log = EmbeddedEventLog(tmp_path / "eventlog.sqlite3")
    await log.start()
    topics = Topics.named(f"rebal-{unique}")
    await log.create_topics(topics.specs(3))
    await append_workload(log, topics, workload)
    # An account link on intake partition 0: its facts count the partitions holding it
    # (`holders`, added like the pipeline totals).
    moment = datetime(2026, 3, 2, 9, tzinfo=UTC)
    link = AccountsLinked(account_key="name:US:acme", canonical_key="dom:acme.example",
                          matched_by="name", score=1.0, linked_at=moment, policy_version=1,
                          explanation="linked")
    await log.append([OutgoingRecord(topics.intake, "dom:acme.example", encode(new_envelope(
        link, id="evt_link_p0", source="test", subject="dom:acme.example", time=moment)),
        partition=0)])
    made = Store(log, topics, url)
    try:
        await migrate(made.engine())
        yield made
    finally:
        for engine in made.engines:
            await engine.dispose()
        await log.close()


async def records_of(log: EventLog, tps: Sequence[TopicPartition]) -> list[Record]:
    found: list[Record] = []
    for tp in tps:
        end = (await log.end_positions(tp.topic)).get(tp, 0)
        async for chunk in log.read(tp, 0, end):
            found.extend(chunk)
    return found


class Pause:
    """Holds every batch after it read (and locked) its positions until `parties` batches
    got there, or one of the others is seen waiting on a lock. Records which happened."""

    def __init__(self, store: Store, parties: int) -> None:
        self.store = store
        self.parties = parties
        self.arrived = 0
        self.all_in = asyncio.Event()
        self.saw_waiting = False
        self.together = False
        """Every batch got to the pause while the first was still held there."""
        self.observer = store.engine()

    async def _someone_waits_on_a_lock(self, since: float) -> bool:
        if not self.store.postgres:
            return time.monotonic() - since > SQLITE_BLOCKED_AFTER
        async with self.observer.connect() as conn:
            waiting = (await conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"))).scalar_one()
        return bool(waiting)

    async def hold(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # On a SQLite file a live batch runs whole on the store's one writer thread,
            # driven synchronously (`write_in_thread`, session 27): batches cannot meet
            # here; each other batch waits behind this one, which is the lock's wait.
            self.arrived += 1
            self.saw_waiting = True
            return
        self.arrived += 1
        if self.arrived >= self.parties:
            self.together = not self.saw_waiting
            self.all_in.set()
        since = time.monotonic()
        deadline = since + 30
        while not self.all_in.is_set():
            if await self._someone_waits_on_a_lock(since):
                self.saw_waiting = True
                return
            assert time.monotonic() < deadline, "neither arrived together nor waited on a lock"
            await asyncio.sleep(0.02)


@pytest.fixture
def pause(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`pause(store, parties)`: installs a `Pause` between the positions and the fold."""
    original = worker_module.fold_into

    def install(store: Store, parties: int) -> Pause:
        made = Pause(store, parties)

        async def fold_into(conn: Any, items: Sequence[Item], **kwargs: Any) -> Batch:
            await made.hold()
            return await original(conn, items, **kwargs)

        monkeypatch.setattr(worker_module, "fold_into", fold_into)
        return made

    return install


async def rebuilt_to(store: Store, ends: dict[TopicPartition, int]
                     ) -> tuple[dict[str, list[dict[str, Any]]], dict[tuple[str, str, int], int]]:
    """The read models and positions one replay of the log up to `ends` gives."""
    engine = store.engine()
    await rebuild(store.log, engine, store.topics, ends=ends, batch_records=10_000)
    return await snapshot(engine), await positions(engine)


def partitions(topics: Topics, *numbers: int) -> list[TopicPartition]:
    return [TopicPartition(t, n) for n in numbers for t in (topics.intake, topics.decisions)]


async def test_two_workers_folding_a_fresh_partition_at_once_apply_each_record_once(
    store: Store, pause: Any,
) -> None:
    """No position row exists yet for the partition: the new owner's batch must still
    wait for the old owner's, then skip what it applied (before the fix both folded every
    record and committed: pipeline totals and link holders counted twice)."""
    tps = partitions(store.topics, 0)
    records = await records_of(store.log, tps)
    assert any(r.topic == store.topics.decisions for r in records)
    old_owner, new_owner = (
        ProjectionWorker(store.log, store.engine(), store.topics, group_id="g",
                         models=LIVE_MODELS) for _ in range(2))
    held = pause(store, 2)
    applied = await asyncio.gather(old_owner.apply(records), new_owner.apply(records))

    live, live_positions = await snapshot(store.engines[1]), await positions(store.engines[1])
    ends = {tp: max(r.offset for r in records if r.tp == tp) + 1 for tp in tps}
    assert {(t, n): p for (m, t, n), p in live_positions.items() if m == NOTIFICATIONS} == {
        (tp.topic, tp.partition): end for tp, end in ends.items()}
    assert live["pipeline_totals"] and live["account_link_facts"]
    expected, expected_positions = await rebuilt_to(store, ends)
    assert live["pipeline_totals"] == expected["pipeline_totals"]
    assert live["account_link_facts"] == expected["account_link_facts"]
    assert live == expected
    assert live_positions == expected_positions
    # One batch folded the records, the other found them applied; the second waited.
    assert sorted(batch is None for batch in applied) == [False, True]
    assert held.saw_waiting


async def test_two_workers_folding_the_same_new_records_of_a_known_partition_apply_them_once(
    store: Store, pause: Any,
) -> None:
    """Positions already stored (rows exist): the same, the case the lock always covered."""
    tps = partitions(store.topics, 0)
    records = await records_of(store.log, tps)
    first = [r for r in records if r.offset < 40]
    rest = [r for r in records if r.offset >= 40]
    await ProjectionWorker(store.log, store.engine(), store.topics, group_id="g").apply(first)
    old_owner = ProjectionWorker(store.log, store.engine(), store.topics, group_id="g")
    new_owner = ProjectionWorker(store.log, store.engine(), store.topics, group_id="g")
    held = pause(store, 2)
    await asyncio.gather(old_owner.apply(rest), new_owner.apply(rest))

    live, live_positions = await snapshot(store.engines[1]), await positions(store.engines[1])
    expected, expected_positions = await rebuilt_to(
        store, {tp: max(r.offset for r in records if r.tp == tp) + 1 for tp in tps})
    assert live == expected
    assert live_positions == expected_positions
    assert held.saw_waiting


async def test_workers_of_different_partitions_do_not_wait_on_each_others_positions(
    store: Store, pause: Any,
) -> None:
    """PostgreSQL: a batch locks the positions of its own partitions only, so the owners of
    partitions 0 and 1 fold at the same time (before, a batch locked every stored position
    of its topics and the two took turns). SQLite has one writer: they take turns."""
    p0, p1 = partitions(store.topics, 0), partitions(store.topics, 1)
    first0, first1 = await records_of(store.log, p0), await records_of(store.log, p1)
    # Rows exist for both partitions (a first batch each, one after the other).
    seed = ProjectionWorker(store.log, store.engine(), store.topics, group_id="g")
    await seed.apply([r for r in first0 if r.offset < 10])
    await seed.apply([r for r in first1 if r.offset < 10])
    owner0 = ProjectionWorker(store.log, store.engine(), store.topics, group_id="g")
    owner1 = ProjectionWorker(store.log, store.engine(), store.topics, group_id="g")
    held = pause(store, 2)
    await asyncio.gather(owner0.apply([r for r in first0 if r.offset >= 10]),
                         owner1.apply([r for r in first1 if r.offset >= 10]))

    assert held.together is store.postgres
    assert held.saw_waiting is not store.postgres
    live = await snapshot(store.engines[1])
    expected, _ = await rebuilt_to(store, {tp: max(r.offset for r in rs if r.tp == tp) + 1
                                           for rs, tps in ((first0, p0), (first1, p1))
                                           for tp in tps})
    assert live == expected


async def test_batches_over_overlapping_fresh_partitions_apply_each_record_once(
    store: Store, pause: Any,
) -> None:
    """Three batches over partitions {0, 1}, {1, 2} and {2, 0} at once, no position stored
    yet (every partition in two batches, the overlaps a cycle): the positions are taken in
    one order by all, so none deadlocks, and every record is applied once."""
    by_partition = {n: await records_of(store.log, partitions(store.topics, n))
                    for n in (0, 1, 2)}
    workers = [ProjectionWorker(store.log, store.engine(), store.topics, group_id="g")
               for _ in range(3)]
    pause(store, 3)
    await asyncio.gather(*(w.apply(by_partition[a] + by_partition[b])
                           for w, (a, b) in zip(workers, ((0, 1), (1, 2), (2, 0)),
                                                strict=True)))

    live, live_positions = await snapshot(store.engines[1]), await positions(store.engines[1])
    expected, expected_positions = await rebuilt_to(store, {
        r.tp: max(s.offset for s in rs if s.tp == r.tp) + 1
        for rs in by_partition.values() for r in rs})
    assert live == expected
    assert live_positions == expected_positions
