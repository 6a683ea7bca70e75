"""CloudEvents de-duplication on `source` + `id`, persisted in the read-model store.

An event id is reserved before its command runs (`pending`) and its result stored after, so
a redelivery -- in the same batch, another request, another process -- is reported as a
duplicate with the first result and never applied twice. Entries are kept (the CloudEvents
spec makes `source` + `id` unique forever); a pending entry older than the lease counts as
abandoned by a crashed process and may be taken over.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registration.adapters.sql import insert_if_absent
from services.registration.adapters.tables import ingested_events


class IngestedEvents:
    def __init__(self, engine: AsyncEngine, *, lease_seconds: float) -> None:
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)

    async def reserve(self, source: str, id_: str, type_: str
                      ) -> tuple[bool, dict[str, Any] | None]:
        """(True, None) if this call owns the event now; else (False, first result or None
        while the first is still in progress)."""
        now = datetime.now(UTC)
        row = {"source": source, "id": id_, "type": type_, "state": "pending", "result": None,
               "received_at": now}
        async with self.engine.begin() as conn:
            if await insert_if_absent(conn, ingested_events, row, ("source", "id")):
                return True, None
            found = (await conn.execute(select(ingested_events).where(
                ingested_events.c.source == source, ingested_events.c.id == id_))).first()
            if found is None:
                return False, None
            if found.state == "pending" and now - found.received_at > self.lease:
                taken = await conn.execute(
                    update(ingested_events)
                    .where(ingested_events.c.source == source, ingested_events.c.id == id_,
                           ingested_events.c.received_at == found.received_at)
                    .values(received_at=now))
                if taken.rowcount:
                    return True, None
            return False, found.result

    async def complete(self, source: str, id_: str, result: dict[str, Any]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(ingested_events)
                .where(ingested_events.c.source == source, ingested_events.c.id == id_)
                .values(state="done", result=result))

    async def release(self, source: str, id_: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(ingested_events).where(
                ingested_events.c.source == source, ingested_events.c.id == id_,
                ingested_events.c.state == "pending"))
