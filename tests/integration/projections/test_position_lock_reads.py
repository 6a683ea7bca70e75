"""A projection batch locks and reads its positions in one statement (session 28), on real
PostgreSQL: the lock (`repository.lock_positions`, every model and partition of the batch,
missing rows inserted) returns the positions as committed, also when it had to wait for
another batch holding them, so the batch reads them in one round trip instead of two."""

from __future__ import annotations

import asyncio

from sqlalchemy import event

from services.projections.adapters import repository
from services.projections.domain.batch import REGISTRATIONS, TIMELINES
from shared.eventlog import TopicPartition
from shared.readmodel.store import create_engine, migrate
from tests.support.servers import ServerHandle, create_database

INTAKE = TopicPartition("lockread.intake", 0)
DECISIONS = TopicPartition("lockread.decisions", 0)


async def test_a_batch_locks_and_reads_its_positions_in_one_statement(
        postgres_server: ServerHandle, unique: str) -> None:
    engine = create_engine(await create_database(postgres_server.url, f"lockread_{unique}"))
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await repository.save_positions(conn, {REGISTRATIONS: {INTAKE: 5}},
                                            stage_from=repository.STAGE_FROM_ROWS)
        statements.clear()
        async with engine.begin() as conn:
            found = await repository.load_positions(conn, [REGISTRATIONS, TIMELINES],
                                                    [INTAKE, DECISIONS], lock=True)
            locking = [s for s in statements if s.lstrip().upper().startswith(
                ("INSERT", "SELECT"))]
        assert found == {REGISTRATIONS: {INTAKE: 5, DECISIONS: 0},
                         TIMELINES: {INTAKE: 0, DECISIONS: 0}}
        assert len(locking) == 1, locking  # was a lock, then a SELECT of the positions
    finally:
        await engine.dispose()


async def test_the_lock_returns_what_the_batch_it_waited_for_committed(
        postgres_server: ServerHandle, unique: str) -> None:
    engine = create_engine(await create_database(postgres_server.url, f"lockwait_{unique}"))
    try:
        await migrate(engine)
        async with engine.connect() as first:
            await first.begin()
            assert await repository.lock_positions(first, [REGISTRATIONS], [INTAKE]) == {
                REGISTRATIONS: {INTAKE: 0}}  # inserted, not committed yet
            await repository.save_positions(first, {REGISTRATIONS: {INTAKE: 7}},
                                            stage_from=repository.STAGE_FROM_ROWS)

            async def second() -> repository.Positions:
                async with engine.begin() as conn:
                    return await repository.load_positions(
                        conn, [REGISTRATIONS, TIMELINES], [INTAKE, DECISIONS], lock=True)

            waiting = asyncio.create_task(second())
            await asyncio.sleep(0.5)
            assert not waiting.done()  # blocked on the first batch's position rows
            await first.commit()
        assert await asyncio.wait_for(waiting, 10) == {
            REGISTRATIONS: {INTAKE: 7, DECISIONS: 0}, TIMELINES: {INTAKE: 0, DECISIONS: 0}}
    finally:
        await engine.dispose()
