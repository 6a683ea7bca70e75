"""`Idempotency-Key` records in the read-model store: shared by every process, so a retry
that lands on another process (or after a restart) still gets the first response.

Race safety comes from the primary key: the first request inserts a `pending` row and runs
the command; a concurrent twin finds the row and is told the request is in progress (409),
or -- once the first finished -- gets its stored response.

A running request holds a lease (`leased_at`) and renews it while it runs (`renew`), so a
reservation is taken over only when its process stopped: died, or cannot reach the store
for a whole lease. `created_at`, the key's first use, survives such a takeover: it is part
of the command's identity (`domain.idempotency.command_seed`). `leased_at` is also the
holder's token: renewal, completion and release act only while it still holds the value
this request last wrote (`Lease`), so a request whose reservation was taken over cannot
renew it, overwrite the taker's answer or drop the taker's reservation.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registration.adapters.sql import insert_if_absent
from services.registration.adapters.tables import idempotency_keys
from services.registration.domain.idempotency import Stored, Verdict, judge, stranded
from shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: str
    headers: dict[str, str]


@dataclass(slots=True)
class Lease:
    """The lease one request holds on its key. `held`: the values `leased_at` may hold
    while it is still this request's -- the last one confirmed written, and any written
    since whose commit is unknown (a renewal that failed or was cancelled mid-way)."""

    first_used: datetime
    held: list[datetime]
    confirmed: float = field(default_factory=time.monotonic)
    """When (monotonic) a value this request wrote was last confirmed: the claim, or the
    start of the last renewal that succeeded."""


@dataclass(frozen=True, slots=True)
class Claim:
    verdict: Verdict
    response: StoredResponse | None = None
    first_used: datetime | None = None
    """PROCEED: the key's first use (the command's identity derives from it)."""
    stranded: bool = False
    """PROCEED over a pending reservation whose lease lapsed: its command may be in the log."""
    lease: Lease | None = None
    """PROCEED: the lease this request holds (renew, complete and release with it)."""


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
               "expires_at": now + self.ttl, "leased_at": now}
        c = idempotency_keys.c
        async with self.engine.begin() as conn:
            if await insert_if_absent(conn, idempotency_keys, row, ("scope", "key")):
                return Claim(Verdict.PROCEED, first_used=now, lease=Lease(now, [now]))
            found = (await conn.execute(
                select(idempotency_keys).where(c.scope == scope, c.key == key))).first()
            if found is None:  # deleted between the two statements: try once more
                inserted = await insert_if_absent(conn, idempotency_keys, row, ("scope", "key"))
                return (Claim(Verdict.PROCEED, first_used=now, lease=Lease(now, [now]))
                        if inserted else Claim(Verdict.IN_PROGRESS))
            stored = Stored(found.fingerprint, found.state == "done", found.created_at,
                            found.expires_at, found.leased_at)
            verdict = judge(stored, fingerprint, now, self.lease_seconds)
            if verdict is Verdict.PROCEED:
                # Expired or abandoned: take it over, but only if nobody else just did. An
                # abandoned (stranded) reservation keeps its first use: the command is the
                # same one, and may be in the log already.
                lapsed = stranded(stored, now)
                lease = (c.leased_at.is_(None) if found.leased_at is None
                         else c.leased_at == found.leased_at)
                values = ({"leased_at": now} if lapsed else
                          {k: v for k, v in row.items() if k not in ("scope", "key")})
                taken = await conn.execute(
                    update(idempotency_keys)
                    .where(c.scope == scope, c.key == key, c.created_at == found.created_at,
                           lease)
                    .values(**values))
                if not taken.rowcount:
                    return Claim(Verdict.IN_PROGRESS)
                first_used = found.created_at if lapsed else now
                return Claim(Verdict.PROCEED, first_used=first_used, stranded=lapsed,
                             lease=Lease(first_used, [now]))
            if verdict is Verdict.REPLAY:
                return Claim(verdict, StoredResponse(found.status_code, found.body or "",
                                                     dict(found.headers or {})))
            return Claim(verdict)

    async def renew(self, scope: str, key: str, lease: Lease) -> bool:
        """Renew the lease of the request running under `key` (False: not pending any more,
        or taken over by a retry)."""
        c = idempotency_keys.c
        started, now = time.monotonic(), datetime.now(UTC)
        lease.held.append(now)  # may be written even if this call fails or is cancelled
        async with self.engine.begin() as conn:
            renewed = await conn.execute(
                update(idempotency_keys)
                .where(c.scope == scope, c.key == key, c.created_at == lease.first_used,
                       c.state == "pending", c.leased_at.in_(lease.held[:-1]))
                .values(leased_at=now))
        if renewed.rowcount:
            lease.held[:] = [now]
            lease.confirmed = started
        return bool(renewed.rowcount)

    def holds(self, lease: Lease) -> bool:
        """Whether the request may still count `lease` as its own: confirmed within two
        thirds of a lease (a retry takes over only after a whole one; the last third is a
        margin for the clocks of two processes). One that may have lapsed must not append:
        a retry may have taken the command over and appended it."""
        return time.monotonic() - lease.confirmed < self.lease_seconds * 2 / 3

    async def keep_leased(self, scope: str, key: str, lease: Lease) -> None:
        """Renew the lease every third of it until cancelled (the request ended); a store
        that cannot be reached is retried at the next tick."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await self.renew(scope, key, lease):
                    return
            except Exception as exc:  # the store restarting: try again next tick
                log.warning("idempotency_lease_not_renewed", error=type(exc).__name__)

    def _held(self, scope: str, key: str, lease: Lease | None) -> list[Any]:
        c = idempotency_keys.c
        where = [c.scope == scope, c.key == key]
        if lease is not None:
            where += [c.created_at == lease.first_used, c.leased_at.in_(lease.held)]
        return where

    async def complete(self, scope: str, key: str, status_code: int, body: str,
                       headers: dict[str, Any], lease: Lease | None = None) -> None:
        """Store the answer, if the reservation is still this request's (`lease`)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(idempotency_keys).where(*self._held(scope, key, lease))
                .values(state="done", status_code=status_code, body=body, headers=headers))

    async def release(self, scope: str, key: str, lease: Lease | None = None) -> None:
        """Forget a reservation whose request failed on our side (5xx) before anything could
        reach the log: a retry runs anew. Not one a retry took over meanwhile (`lease`)."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(idempotency_keys).where(
                *self._held(scope, key, lease), idempotency_keys.c.state == "pending"))

    async def _purge(self, now: datetime) -> None:
        # Expired keys are dead weight; sweep them at most once a minute per process.
        tick = time.monotonic()
        if tick - self._purged_at < self._PURGE_EVERY:
            return
        self._purged_at = tick
        async with self.engine.begin() as conn:
            await conn.execute(delete(idempotency_keys)
                               .where(idempotency_keys.c.expires_at < now))
