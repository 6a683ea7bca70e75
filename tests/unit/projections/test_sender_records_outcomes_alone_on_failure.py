"""Outcomes that finish together are recorded in one transaction; one of them failing to
record (another sender already recorded the same attempt after its lease expired) must not
lose the others: their deliveries were sent, and unrecorded they would be sent again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from services.projections.notifications import NotificationSender, Outcome
from shared.readmodel.schema import notification_attempts, notification_outbox
from shared.readmodel.store import create_engine, migrate
from shared.settings import Settings


async def test_one_outcome_failing_to_record_keeps_the_others_recorded(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/rm.sqlite3")
    await migrate(engine)
    now = datetime.now(UTC)
    rows = [{"id": f"d{i}", "event_id": f"e{i}", "dispute_id": "x", "type": "dispute.opened",
             "recipient_kind": "owner", "recipient_id": "cm-1", "channel": "webhook",
             "payload": {}, "status": "pending", "attempts": 0, "retry_from": 0,
             "next_attempt_at": now, "lease_until": now + timedelta(seconds=30),
             "created_at": now, "traceparent": None, "tracestate": None} for i in range(3)]
    try:
        async with engine.begin() as conn:
            await conn.execute(notification_outbox.insert(), rows)
            # d1's first attempt was already recorded by a sender whose lease had expired
            await conn.execute(notification_attempts.insert().values(
                delivery_id="d1", attempt=1, at=now, outcome="delivered", duration_ms=1))
        sender = NotificationSender(engine, Settings())
        results = await asyncio.gather(
            *(sender._record(dict(r), Outcome("delivered", status_code=204), 5) for r in rows),
            return_exceptions=True)
        assert results[0] is None and results[2] is None, results
        assert isinstance(results[1], Exception)
        async with engine.connect() as conn:
            status = dict((await conn.execute(select(
                notification_outbox.c.id, notification_outbox.c.status))).all())
        assert status == {"d0": "delivered", "d1": "pending", "d2": "delivered"}
    finally:
        await engine.dispose()

