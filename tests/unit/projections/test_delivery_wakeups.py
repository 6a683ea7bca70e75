"""The delivery worker coalesces its wake-ups (session 28): under load its projection
worker commits a batch that queues deliveries every few milliseconds, and a claim for each
(a read and a write transaction on the read model) cost more than the deliveries it found.
Woken, it waits `notification_coalesce_seconds` and claims once for all of them."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

from services.projections.notifications import NotificationSender
from shared.settings import Settings


async def _claims_for_wakeups(tmp_path: Path, coalesce: float, wakeups: int
                              ) -> tuple[int, float]:
    """Claims made for `wakeups` wake-ups 5 ms apart, and the seconds they took (more
    than 5 ms each on a loaded machine)."""
    settings = Settings(backend="embedded", data_dir=tmp_path, notification_poll_seconds=5,
                        notification_coalesce_seconds=coalesce)
    sender = NotificationSender(None, settings)  # type: ignore[arg-type]
    claims: list[int] = []

    async def claim(limit: int) -> list[dict[str, Any]]:
        claims.append(limit)
        return []

    async def next_due() -> float:
        return math.inf

    sender.claim = claim  # type: ignore[method-assign]
    sender.seconds_to_next_due = next_due  # type: ignore[method-assign]
    stop = False
    task = asyncio.create_task(sender.run(lambda: stop))
    await asyncio.sleep(0.05)
    first = len(claims)
    started = time.perf_counter()
    for _ in range(wakeups):  # a projection batch queuing deliveries every 5 ms
        sender.wake.set()
        await asyncio.sleep(0.005)
    span = time.perf_counter() - started
    await asyncio.sleep(max(0.1, 2 * coalesce))
    stop = True
    sender.wake.set()
    await asyncio.wait_for(task, 5)
    return len(claims) - first, span


async def test_wakeups_within_the_coalesce_window_make_one_claim(tmp_path: Path) -> None:
    # 20 wake-ups over >= 100 ms: one claim per 0.2 s window (and the one after), not
    # one each.
    claims, span = await _claims_for_wakeups(tmp_path, 0.2, 20)
    assert claims <= span / 0.2 + 2 and claims < 10


async def test_no_coalescing_claims_at_each_wakeup(tmp_path: Path) -> None:
    claims, _ = await _claims_for_wakeups(tmp_path, 0.0, 20)
    assert claims >= 15


async def test_a_wakeup_is_claimed_within_the_window(tmp_path: Path) -> None:
    # One wake-up (a delivery queued on a quiet system) is claimed, after the window.
    claims, _ = await _claims_for_wakeups(tmp_path, 0.05, 1)
    assert claims >= 1
