"""A delivery's outcome and an admin's redelivery at the same moment (real PostgreSQL, the
sender's and the redelivery's own code): neither undoes the other.

Both read the delivery's counters (`attempts`, `retry_from`, `status`) and write new ones
from them; read without a lock, the later writer overwrote the earlier one's row with
values computed from what it read before: an outcome recorded after a redelivery set the
delivery back to `dead` (the admin's 202 came to nothing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.notifications import NotificationSender, Outcome, redeliver
from shared.readmodel.schema import notification_outbox
from shared.readmodel.store import create_engine, migrate
from shared.settings import Settings
from tests.support.servers import ServerHandle, create_database


@pytest.fixture
async def engine(postgres_server: ServerHandle, unique: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(await create_database(postgres_server.url, f"race_{unique}"))
    try:
        await migrate(made)
        yield made
    finally:
        await made.dispose()


async def lock_waiters(engine: AsyncEngine, count: int) -> None:
    """Until `count` sessions of this database wait on a lock."""
    deadline = time.monotonic() + 30
    while True:
        async with engine.connect() as conn:
            waiting = (await conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"))).scalar_one()
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"{waiting} of {count} waiting on a lock"
        await asyncio.sleep(0.02)


async def test_an_outcome_recorded_after_a_redelivery_keeps_the_delivery_queued(
    engine: AsyncEngine,
) -> None:
    now = datetime.now(UTC)
    row = {"id": "msg_race", "event_id": "evt_1.d0", "dispute_id": "dsp_1",
           "type": "dispute.opened", "recipient_kind": "owner", "recipient_id": "cm-1",
           "channel": "webhook", "payload": {"type": "dispute.opened"}, "status": "pending",
           "attempts": 2, "retry_from": 0, "next_attempt_at": now,
           "lease_until": now + timedelta(seconds=60), "last_error": "HTTP 500",
           "created_at": now, "delivered_at": None, "traceparent": None, "tracestate": None}
    async with engine.begin() as conn:
        await conn.execute(notification_outbox.insert().values(**row))
    # The third and last attempt of the schedule is under way: its failure kills it.
    sender = NotificationSender(engine, Settings(notification_schedule_seconds=[0, 1, 1],
                                                 notification_jitter=0))

    async def redelivered() -> None:
        async with engine.begin() as conn:
            assert await redeliver(conn, "msg_race")

    async with engine.connect() as holder:  # holds the row while both line up behind it
        await holder.execute(update(notification_outbox)
                             .where(notification_outbox.c.id == "msg_race")
                             .values(last_error="HTTP 500"))
        admin = asyncio.create_task(redelivered())
        await lock_waiters(engine, 1)
        outcome = asyncio.create_task(sender._record(row, Outcome("retry", 500, "HTTP 500"), 5))
        await lock_waiters(engine, 2)
        await holder.commit()
    await asyncio.wait_for(admin, 30)
    await asyncio.wait_for(outcome, 30)

    async with engine.connect() as conn:
        stored = (await conn.execute(select(notification_outbox).where(
            notification_outbox.c.id == "msg_race"))).mappings().one()
    # The attempt counts in the redelivered round (its first), which goes on.
    assert (stored["status"], stored["attempts"], stored["retry_from"]) == ("pending", 3, 2)
    assert stored["next_attempt_at"] is not None
