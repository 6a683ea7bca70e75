"""The account links kept in memory (`adapters/links.py`) answer exactly what reading
`account_links` answers (chains, a cycle, several aliases per round), and answer nothing
between a committed change and its read-back (the caller then reads the table)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert

from services.registration.adapters.links import LinkMap
from services.registration.adapters.readmodel import ReadModel
from shared.eventlog import TopicPartition
from shared.readmodel.queries import canonical_key
from shared.readmodel.schema import account_links
from shared.readmodel.store import create_engine, migrate

AT = datetime(2026, 11, 27, tzinfo=UTC)


def link(alias: str, canonical: str, score: float = 0.9) -> dict[str, object]:
    return {"account_key": alias, "canonical_key": canonical, "matched_by": "name",
            "score": score, "linked_at": AT}


async def agree(links: LinkMap, readmodel: ReadModel, keys: list[str]) -> None:
    assert links.usable
    async with readmodel.engine.connect() as conn:
        for key in keys:
            assert await links.canonical(key) == await canonical_key(conn, key), key
            assert await links.aliases_of(key) == await readmodel.aliases_of(key), key


async def test_links_in_memory_answer_as_the_table_and_never_between_change_and_read_back(
        tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}")
    await migrate(engine)
    readmodel = ReadModel(engine)
    keys = [f"k{i}" for i in range(8)]
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(account_links), [
                link("k1", "k0"), link("k2", "k1", 0.8), link("k3", "k1"),  # a chain, a fan
                link("k5", "k4"), link("k4", "k5")])  # a cycle
        links = LinkMap(engine)
        assert not links.usable
        await links.load()
        await agree(links, readmodel, keys)
        assert await links.aliases_of("k0") == [("k1", "name", 0.9), ("k2", "name", 0.8),
                                                ("k3", "name", 0.9)]

        # The projections rewrite k2's link and add k6's (committed), then say so.
        async with engine.begin() as conn:
            await conn.execute(delete(account_links).where(account_links.c.account_key == "k2"))
            await conn.execute(insert(account_links), [link("k2", "k4"), link("k6", "k2")])
        links.changed({"k2", "k6"})
        assert not links.usable  # until read back: callers read the table
        for _ in range(200):
            if links.usable:
                break
            await asyncio.sleep(0.01)
        await agree(links, readmodel, keys)
        assert await links.canonical("k6") == "k5"  # k6 -> k2 -> k4 -> k5 (-> k4: cycle)

        # A change arriving while a whole load reads does not let the load overwrite it.
        async with engine.begin() as conn:
            await conn.execute(delete(account_links).where(account_links.c.account_key == "k6"))
        loading = asyncio.create_task(links.load())
        links.changed({"k6"})
        await loading
        for _ in range(200):
            if links.usable:
                break
            await asyncio.sleep(0.01)
        await agree(links, readmodel, keys)
        assert await links.canonical("k6") == "k6"
    finally:
        await engine.dispose()


@dataclass
class Beside:
    engine: Any
    readmodel: ReadModel
    tp: TopicPartition
    records: list[Any]
    worker: Any
    links: LinkMap


@asynccontextmanager
async def _a_worker_beside_a_map(tmp_path: Path, read: int) -> AsyncIterator[Beside]:
    """A projection worker over three submitted records (the first applied and `read` of
    them read) whose `on_links` feeds a loaded `LinkMap`; both stores real SQLite."""
    from services.projections.worker import ProjectionWorker
    from shared.eventlog.embedded import EmbeddedEventLog
    from shared.eventlog.topics import Topics
    from tests.unit.projections.test_sqlite_write_contention import _submitted

    topics = Topics.named("links")
    log = EmbeddedEventLog(tmp_path / "eventlog.sqlite3")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}")
    await log.start()
    try:
        await log.create_topics(topics.specs(1))
        await migrate(engine)
        await log.append([_submitted(topics, i) for i in range(3)])
        tp = TopicPartition(topics.intake, 0)
        records = [r async for batch in log.read(tp, 0, read) for r in batch]
        worker = ProjectionWorker(log, engine, topics, group_id="projections")
        links = LinkMap(engine)
        worker.on_links = links.changed
        await worker.apply(records[:1])
        await links.load()
        yield Beside(engine, ReadModel(engine), tp, records, worker, links)
    finally:
        await engine.dispose()
        await log.close()


async def _until_usable(links: LinkMap) -> None:
    for _ in range(200):
        if links.usable:
            break
        await asyncio.sleep(0.01)


async def test_links_in_memory_are_dropped_when_another_process_wrote_the_read_model(
        tmp_path: Path) -> None:
    """`dealreg projections rebuild` run beside `dealreg dev` replays records the dev
    worker has not applied yet and leaves the positions past them: the dev worker then
    skips those records and never reports their links. Its next batch sees positions it
    did not leave; the map must stop answering (and reload) rather than keep, for up to a
    whole rewarm interval, a customer's keys apart that the table has joined."""
    from services.projections.adapters.repository import load_positions, save_positions

    async with _a_worker_beside_a_map(tmp_path, read=3) as b:
        await agree(b.links, b.readmodel, ["dom:locked-1.example"])
        # Another process applies records 1..2 (which link two keys) and moves on.
        async with b.engine.begin() as conn:
            await conn.execute(insert(account_links),
                               [link("dom:locked-1.example", "dom:locked-0.example")])
            stored = await load_positions(conn, b.worker.models, {b.tp})
            await save_positions(conn, {m: {b.tp: 3} for m in stored})
        await b.worker.apply(b.records[1:])  # every model applied them already: skipped
        await _until_usable(b.links)
        async with b.engine.connect() as conn:
            assert await canonical_key(conn, "dom:locked-1.example") == "dom:locked-0.example"
        await agree(b.links, b.readmodel, ["dom:locked-0.example", "dom:locked-1.example"])


async def test_links_in_memory_are_dropped_when_the_worker_restarts_after_a_rebuild(
        tmp_path: Path) -> None:
    """The supervisor restarts the same worker: positions another process left while it
    was down are read at start (the records behind them never reported): reload."""
    from services.projections.adapters.repository import save_positions

    async with _a_worker_beside_a_map(tmp_path, read=1) as b:
        async with b.engine.begin() as conn:
            await conn.execute(insert(account_links),
                               [link("dom:locked-1.example", "dom:locked-0.example")])
            await save_positions(conn, {m: {b.tp: 3} for m in b.worker.models})
        await b.worker._start_positions([b.tp])  # the restarted worker's subscription start
        await _until_usable(b.links)
        await agree(b.links, b.readmodel, ["dom:locked-0.example", "dom:locked-1.example"])
