"""`Idempotency-Key` records in the read-model store: shared by every process, so a retry
that lands on another process (or after a restart) still gets the first response.

Race safety comes from the primary key: the first request inserts a `pending` row and runs
the command; a concurrent twin finds the row and is told the request is in progress (409),
or -- once the first finished -- gets its stored response.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registration.adapters.sql import insert_if_absent
from services.registration.adapters.tables import idempotency_keys
from services.registration.domain.idempotency import Stored, Verdict, judge


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Claim:
    verdict: Verdict
    response: StoredResponse | None = None


class IdempotencyStore:
    _PURGE_EVERY = 60.0

    def __init__(self, engine: AsyncEngine, *, ttl_seconds: float, lease_seconds: float) -> None:
        self.engine = engine
        self.ttl = timedelta(seconds=ttl_seconds)
        self.lease_seconds = lease_seconds
        self._purged_at = 0.0

    async def claim(self, scope: str, key: str, fingerprint: str) -> Claim:
        """Reserve `key` for this request, or say why not (replay, mismatch, in progress)."""
        now = datetime.now(UTC)
        await self._purge(now)
        row = {"scope": scope, "key": key, "fingerprint": fingerprint, "state": "pending",
               "status_code": None, "body": None, "headers": None, "created_at": now,
               "expires_at": now + self.ttl}
        async with self.engine.begin() as conn:
            if await insert_if_absent(conn, idempotency_keys, row, ("scope", "key")):
                return Claim(Verdict.PROCEED)
            found = (await conn.execute(
                select(idempotency_keys).where(idempotency_keys.c.scope == scope,
                                               idempotency_keys.c.key == key)
            )).first()
            if found is None:  # deleted between the two statements: try once more
                inserted = await insert_if_absent(conn, idempotency_keys, row, ("scope", "key"))
                return Claim(Verdict.PROCEED if inserted else Verdict.IN_PROGRESS)
            stored = Stored(found.fingerprint, found.state == "done", found.created_at,
                            found.expires_at)
            verdict = judge(stored, fingerprint, now, self.lease_seconds)
            if verdict is Verdict.PROCEED:
                # Expired or abandoned: take it over, but only if nobody else just did.
                taken = await conn.execute(
                    update(idempotency_keys)
                    .where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key,
                           idempotency_keys.c.created_at == found.created_at)
                    .values(**{k: v for k, v in row.items() if k not in ("scope", "key")}))
                return Claim(Verdict.PROCEED if taken.rowcount else Verdict.IN_PROGRESS)
            if verdict is Verdict.REPLAY:
                return Claim(verdict, StoredResponse(found.status_code, found.body or "",
                                                     dict(found.headers or {})))
            return Claim(verdict)

    async def complete(self, scope: str, key: str, status_code: int, body: str,
                       headers: dict[str, Any]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(idempotency_keys)
                .where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
                .values(state="done", status_code=status_code, body=body, headers=headers))

    async def release(self, scope: str, key: str) -> None:
        """Forget a reservation whose request failed on our side (5xx): a retry runs anew."""
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(idempotency_keys)
                .where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key,
                       idempotency_keys.c.state == "pending"))

    async def _purge(self, now: datetime) -> None:
        # Expired keys are dead weight; sweep them at most once a minute per process.
        tick = time.monotonic()
        if tick - self._purged_at < self._PURGE_EVERY:
            return
        self._purged_at = tick
        async with self.engine.begin() as conn:
            await conn.execute(delete(idempotency_keys)
                               .where(idempotency_keys.c.expires_at < now))
