"""Waiting for a registration's decision to reach the read model (`Prefer: wait=N`).

In one process (`dealreg dev`, or a registration service co-located with projections) the
projection worker wakes waiters directly after its transaction commits. A registration
service in its own process polls the read model instead, with a short back-off.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.readmodel.queries import get_registration

DECIDED = {"approved", "rejected", "in_review", "expired", "withdrawn", "won", "lost"}


class DecisionWaiter:
    def __init__(self, engine: AsyncEngine, *, in_process: bool) -> None:
        self.engine = engine
        self.in_process = in_process
        self._events: dict[str, list[asyncio.Event]] = defaultdict(list)

    def notify(self, registration_ids: Iterable[str]) -> None:
        """Called by a co-located projection worker after it committed these rows."""
        for rid in registration_ids:
            for event in self._events.pop(rid, ()):
                event.set()

    async def _decided(self, registration_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = await get_registration(conn, registration_id)
        return row if row is not None and row["status"] in DECIDED else None

    async def wait_decided(self, registration_id: str, timeout: float) -> dict[str, Any] | None:
        """The decided row, or None when no decision arrived within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.005
        while True:
            event = asyncio.Event()
            if self.in_process:
                self._events[registration_id].append(event)
            row = await self._decided(registration_id)
            if row is not None:
                self._forget(registration_id, event)
                return row
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._forget(registration_id, event)
                return None
            try:
                await asyncio.wait_for(
                    event.wait(), remaining if self.in_process else min(delay, remaining)
                )
            except TimeoutError:
                delay = min(delay * 2, 0.05)
            self._forget(registration_id, event)

    def _forget(self, registration_id: str, event: asyncio.Event) -> None:
        waiting = self._events.get(registration_id)
        if waiting and event in waiting:
            waiting.remove(event)
            if not waiting:
                del self._events[registration_id]
