"""A Kafka topic name may have 249 characters: its positions are stored on PostgreSQL (the
projections' and the reference data's), including after upgrading a schema made before
migration 0011, whose VARCHAR(200) refused them (`value too long`)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, insert, select

from services.projections.adapters import repository
from services.registration.adapters.tables import reference_positions
from shared.eventlog import TopicPartition
from shared.readmodel.schema import projection_positions
from shared.readmodel.store import alembic_config, create_engine, migrate
from tests.support.servers import ServerHandle, create_database

LONGEST = "dealreg." + "t" * (249 - len("dealreg."))


async def test_positions_of_a_249_character_topic_are_stored_after_upgrading_from_0010(
        postgres_server: ServerHandle, unique: str) -> None:
    assert len(LONGEST) == 249
    engine = create_engine(await create_database(postgres_server.url, f"topics_{unique}"))

    def upgrade_to(revisions: str) -> object:
        def run(connection: Connection) -> None:
            command.upgrade(alembic_config(connection), revisions)
        return run

    try:
        async with engine.begin() as conn:  # the schema as it was before 0011
            await conn.run_sync(upgrade_to("0010"))
            await conn.run_sync(upgrade_to("0003"))
            await conn.execute(insert(projection_positions),
                               [{"projection": "registrations", "topic": "t" * 200,
                                 "partition": 0, "position": 7}])
        await migrate(engine)
        tp = TopicPartition(LONGEST, 3)
        models = ["registrations", "timelines"]
        for stage_from in (None, 1):  # row by row, and a live batch's multi-row upsert
            async with engine.begin() as conn:
                await repository.lock_positions(conn, models, [tp])
                await repository.save_positions(
                    conn, {m: {tp: 41 + (stage_from or 0)} for m in models},
                    stage_from=stage_from)
            async with engine.connect() as conn:
                assert await repository.load_positions(conn, models, [tp]) == {
                    m: {tp: 41 + (stage_from or 0)} for m in models}
        async with engine.begin() as conn:
            await conn.execute(insert(reference_positions),
                               [{"topic": LONGEST, "partition": 0, "position": 5}])
        async with engine.connect() as conn:
            kept = (await conn.execute(select(projection_positions.c.position).where(
                projection_positions.c.topic == "t" * 200))).scalar_one()
            stored = (await conn.execute(select(reference_positions.c.topic))).scalar_one()
    finally:
        await engine.dispose()
    assert kept == 7  # the upgrade kept what was there
    assert stored == LONGEST
