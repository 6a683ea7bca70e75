"""The projection worker refreshes PostgreSQL's statistics of the account directory's name
tables as they grow, so the registration service's prepared look-up is replanned on the
grown tables instead of keeping a generic plan made while they were nearly empty (README,
"Why the sustained 200/s run saturates")."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.projections import worker as worker_module
from services.projections.worker import ProjectionWorker
from shared.eventlog.topics import Topics
from shared.readmodel.store import create_engine, migrate
from tests.conftest import make_eventlog
from tests.integration.projections.projection_support import append_workload
from tests.integration.projections.test_projection_store import read_all
from tests.support.servers import ServerHandle, create_database
from tests.unit.projections.projection_workload import generate


async def _manual_analyzes(engine: object) -> dict[str, int]:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        rows = (await conn.exec_driver_sql(
            "SELECT relname, analyze_count FROM pg_stat_user_tables "
            "WHERE relname IN ('account_names', 'account_name_keys')")).all()
    return {str(r[0]): int(r[1]) for r in rows}


async def test_the_directory_name_tables_are_analyzed_as_they_grow(
    request: pytest.FixtureRequest, tmp_path: Path, unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server: ServerHandle = request.getfixturevalue("postgres_server")
    log = make_eventlog("kafka", request, tmp_path)
    await log.start()
    topics = Topics.named(f"analyze-{unique}")
    await log.create_topics(topics.specs(3))
    engine = create_engine(await create_database(server.url, f"analyze_{unique}"))
    try:
        await migrate(engine)
        await append_workload(log, topics, generate(600, seed=5, accounts=60, partners=6))
        intake = (await read_all(log, topics))[topics.intake]
        assert await _manual_analyzes(engine) == {"account_names": 0, "account_name_keys": 0}
        monkeypatch.setattr(worker_module, "ANALYZE_FROM_ROWS", 20)
        worker = ProjectionWorker(log, engine, topics, group_id="unused")
        for start in range(0, len(intake), 10):
            await worker.apply(intake[start:start + 10])
        counts = await _manual_analyzes(engine)
        # Analyzed, and only as the tables doubled (not after every batch).
        assert 1 <= counts["account_names"] < len(intake) // 10 / 2, counts
        assert counts["account_name_keys"] == counts["account_names"]
    finally:
        await engine.dispose()
        await log.close()
