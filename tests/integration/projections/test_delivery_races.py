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
from sqlalchemy import event, select, text, update
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


async def test_a_claim_leases_each_due_delivery_once_in_one_statement(
    engine: AsyncEngine,
) -> None:
    """Two senders claim at once: each due delivery is leased by exactly one, with its
    recipient; one not due, leased by another sender, or in flight here is not taken. On
    PostgreSQL a claim is one `UPDATE .. RETURNING` in autocommit and a read of the
    recipients (session 28): it was a transaction of a locking SELECT, the lease UPDATE and
    the recipients between BEGIN and COMMIT, and the delivery worker claims about twice
    per delivery at low rates."""
    now = datetime.now(UTC)

    def row(i: int, **changes: object) -> dict[str, object]:
        return {"id": f"msg_{i}", "event_id": f"evt_{i}.d0", "dispute_id": "dsp_1",
                "type": "dispute.opened", "recipient_kind": "owner",
                "recipient_id": f"cm-{i % 2}", "channel": "webhook",
                "payload": {"type": "dispute.opened", "n": i}, "status": "pending",
                "attempts": 0, "retry_from": 0, "next_attempt_at": now - timedelta(seconds=i),
                "lease_until": None, "last_error": None, "created_at": now,
                "delivered_at": None, "traceparent": None, "tracestate": None, **changes}

    due = [row(i) for i in range(10)]
    async with engine.begin() as conn:
        await conn.execute(notification_outbox.insert(), [
            *due,
            row(10, next_attempt_at=now + timedelta(seconds=60)),  # not due yet
            row(11, lease_until=now + timedelta(seconds=60)),  # another sender's
            row(12, status="delivered", next_attempt_at=None)])
        await conn.execute(text(
            "INSERT INTO ref_owners (id, name, email, webhook_url, webhook_secret, updated_at) "
            "VALUES ('cm-0', 'Owner', 'o@example.com', 'https://hooks.example.com/x', "
            "'whsec_x', now())"
        ))
    settings = Settings(notification_lease_seconds=60)
    first, second = NotificationSender(engine, settings), NotificationSender(engine, settings)
    second.in_flight["msg_9"] = asyncio.get_running_loop().create_future()  # type: ignore[assignment]
    statements: list[str] = []
    listen = (engine.sync_engine, "before_cursor_execute",
              lambda *args: statements.append(args[2]))
    event.listen(*listen)
    try:
        a, b = await asyncio.gather(first.claim(4), second.claim(20))
    finally:
        event.remove(*listen)
    leased_a, leased_b = {r["id"] for r in a}, {r["id"] for r in b}
    assert not leased_a & leased_b
    # Whichever ran first: the first sender takes the longest due (the second has it in
    # flight), at most its limit; between them every due delivery, each once.
    assert "msg_9" in leased_a and len(leased_a) <= 4
    assert leased_a | leased_b == {r["id"] for r in due}
    assert [r["payload"]["n"] for r in a] == sorted((r["payload"]["n"] for r in a),
                                                     reverse=True)  # the longest due first
    for sender, rows in ((first, a), (second, b)):
        for r in rows:
            recipient = sender._recipients[str(r["id"])]
            assert (recipient is not None) == (r["recipient_id"] == "cm-0")
    async with engine.connect() as conn:
        leased = set((await conn.execute(select(notification_outbox.c.id).where(
            notification_outbox.c.lease_until > now))).scalars())
    assert leased == leased_a | leased_b | {"msg_11"}
    # Per claim: the lease with its rows, then the recipients (one kind here).
    assert len(statements) == 4, statements
