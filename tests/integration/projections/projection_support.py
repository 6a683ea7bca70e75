"""Helpers for projection tests on real stores: putting a workload on a log, reading the
read models back whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.adapters.repository import TABLES
from shared.eventlog import EventLog, OutgoingRecord
from shared.eventlog.topics import Topics
from shared.events import encode
from shared.readmodel.schema import projection_positions
from tests.unit.projections.projection_workload import Workload


async def append_workload(log: EventLog, topics: Topics, workload: Workload,
                          chunk: int = 2000) -> None:
    records = [OutgoingRecord(topics.intake if r.topic == "intake" else topics.decisions,
                              r.key, encode(r.envelope)) for r in workload.records]
    for start in range(0, len(records), chunk):
        await log.append(records[start:start + chunk])


async def snapshot(engine: AsyncEngine, models: tuple[str, ...] | None = None
                   ) -> dict[str, list[dict[str, Any]]]:
    """Every row of every read-model table, in primary-key order."""
    tables = [t for m, ts in TABLES.items() if models is None or m in models for t in ts]
    found: dict[str, list[dict[str, Any]]] = {}
    async with engine.connect() as conn:
        for table in tables:
            order = list(table.primary_key.columns)
            rows = (await conn.execute(select(table).order_by(*order))).mappings().all()
            found[table.name] = [dict(r) for r in rows]
    return found


async def positions(engine: AsyncEngine) -> dict[tuple[str, str, int], int]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(projection_positions))).all()
    # A model's version row (`<model>#version`, recorded by a rebuild and a runtime's
    # start) is no position.
    return {(p, t, n): pos for p, t, n, pos in rows if not p.endswith("#version")}


async def rebuild_a_workload_in_processes(directory: Path, topic: str, *, size: int,
                                          seed: int, accounts: int, partners: int,
                                          batch_records: int) -> int:
    """A generated workload appended to a new embedded log in `directory` (topics named
    `topic`, 4 partitions), then rebuilt into a new SQLite read model by 2 worker
    processes: the records rebuilt, checked to be the whole workload. For programs that
    run a parallel rebuild as an operator would (tests of how its workers start)."""
    from services.projections.adapters.rebuild import rebuild
    from shared.eventlog.embedded import EmbeddedEventLog
    from shared.readmodel.store import create_engine, migrate
    from tests.unit.projections.projection_workload import generate

    log = EmbeddedEventLog(directory / "log.sqlite3")
    await log.start()
    topics = Topics.named(topic)
    await log.create_topics(topics.specs(4))
    workload = generate(size, seed=seed, accounts=accounts, partners=partners)
    await append_workload(log, topics, workload)
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'rm.sqlite3'}")
    await migrate(engine)
    result = await rebuild(log, engine, topics, batch_records=batch_records, processes=2)
    await engine.dispose()
    await log.close()
    assert result.records == len(workload.records), result
    return result.records
