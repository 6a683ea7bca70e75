"""The parallel rebuild's result does not depend on `--processes` (SQLite and PostgreSQL),
and a log that breaks the keying it relies on (a decision keyed by another account key
than its own, adjudication DESIGN.md invariant 14) is replayed in one process, in a fixed
order, and named, instead of giving a result that depends on timing."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.adapters.rebuild import rebuild
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.topics import Topics
from shared.events import RegistrationDecided
from shared.readmodel.store import create_engine, migrate
from tests.integration.projections.projection_support import (
    append_workload,
    positions,
    snapshot,
)
from tests.support.servers import ServerHandle, create_database
from tests.unit.projections.projection_workload import (
    Workload,
    generate,
    partition_breaches,
)

PARTITIONS = 12  # as the benchmark's log


@pytest.fixture(scope="module")
def workload() -> Workload:
    """The benchmark's shape, smaller: many accounts, decisions about other accounts than
    their input's (deadlines, settlements)."""
    found = generate(5000, seed=3, accounts=1700, partners=300)
    assert partition_breaches(found) == []
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, unique: str
                ) -> AsyncIterator[tuple[EmbeddedEventLog, AsyncEngine, Topics]]:
    log = EmbeddedEventLog(tmp_path / "eventlog.sqlite3")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}"
    else:
        server: ServerHandle = request.getfixturevalue("postgres_server")
        url = await create_database(server.url, f"part_{unique}")
    engine = create_engine(url)
    await log.start()
    await migrate(engine)
    topics = Topics.named(f"part-{unique}")
    await log.create_topics(topics.specs(PARTITIONS))
    try:
        yield log, engine, topics
    finally:
        await engine.dispose()
        await log.close()


async def test_a_rebuild_in_1_2_or_4_processes_gives_the_same_read_models(
    store: tuple[EmbeddedEventLog, AsyncEngine, Topics], workload: Workload,
) -> None:
    log, engine, topics = store
    await append_workload(log, topics, workload)
    found = {}
    for processes in (1, 2, 4):
        result = await rebuild(log, engine, topics, batch_records=400, processes=processes)
        assert result.records == len(workload.records)
        assert (result.misrouted, result.fell_back) == (0, None)
        found[processes] = (await snapshot(engine), await positions(engine))
    assert found[1][0]["registrations"] and found[1][0]["disputes"]
    assert found[2] == found[1]
    assert found[4] == found[1]


def _misrouted(workload: Workload) -> tuple[Workload, str]:
    """The workload with one registration's decisions keyed by another account (on another
    partition of a 12-partition log than its submission), as a log that breaks invariant
    14 would hold them; and that registration's id."""
    decided = [r for r in workload.decisions if isinstance(r.event, RegistrationDecided)]
    victim = decided[len(decided) // 2].event
    assert isinstance(victim, RegistrationDecided)
    other = next(r.key for r in workload.records if r.key != victim.account_key)
    records = [
        dataclasses.replace(r, key=other,
                            envelope=r.envelope.model_copy(update={"subject": other}))
        if r.topic == "decisions" and getattr(r.event, "registration_id", None)
        == victim.registration_id and isinstance(r.event, RegistrationDecided) else r
        for r in workload.records]
    return Workload(records), victim.registration_id


async def test_a_log_with_a_misrouted_decision_is_rebuilt_in_one_process_and_named(
    store: tuple[EmbeddedEventLog, AsyncEngine, Topics], workload: Workload,
) -> None:
    """A parallel rebuild stops at the first decision keyed by another account than its
    own, starts again in one process (partition after partition: one order, whatever the
    timing) and says why; the rows equal a one-process rebuild's, which names the same
    decisions."""
    log, engine, topics = store
    broken, victim = _misrouted(workload)
    assert partition_breaches(broken)
    await append_workload(log, topics, broken)

    alone = await rebuild(log, engine, topics, batch_records=400, processes=1)
    assert alone.fell_back is None
    assert alone.misrouted >= 1
    assert {kind for _, _, _, kind, _, _ in alone.misrouted_first} == {RegistrationDecided.TYPE}
    expected = await snapshot(engine), await positions(engine)
    assert victim in {r["id"] for r in expected[0]["registrations"]}

    reported: list[int] = []
    parallel = await rebuild(log, engine, topics, batch_records=400, processes=4,
                             progress=reported.append)
    assert parallel.fell_back is not None and "keyed" in parallel.fell_back
    assert parallel.records == len(broken.records) == sum(reported)  # counted once
    assert (parallel.misrouted, parallel.misrouted_first) == (
        alone.misrouted, alone.misrouted_first)
    assert (await snapshot(engine), await positions(engine)) == expected


@pytest.mark.parametrize("processes", [1, 2])
async def test_a_rebuild_in_small_batches_finds_the_rows_earlier_batches_wrote(
    store: tuple[EmbeddedEventLog, AsyncEngine, Topics], workload: Workload, processes: int,
) -> None:
    """A rebuild looks up only the rows it wrote itself since it emptied the models (any
    other is known absent). On two partitions in batches of about 200 records, many
    registrations, claims, disputes and ownership holders come back in batches after the
    one that wrote them, and must be found: the rows equal a rebuild in one batch per
    partition."""
    log, engine, _ = store
    topics = Topics.named("two-partitions")
    await log.create_topics(topics.specs(2))
    await append_workload(log, topics, workload)
    await rebuild(log, engine, topics, batch_records=10**6, processes=1)
    whole = await snapshot(engine)
    await rebuild(log, engine, topics, batch_records=200, processes=processes)
    assert await snapshot(engine) == whole
