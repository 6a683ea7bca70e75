"""Stopping a runtime ends its idle notification sender at once. Since the sender sleeps
until the next delivery is due or `notification_poll_seconds` (s27, issue 16), nothing woke
it on stop: every stop of a process with the projections component waited out its sleep
(5 s by default; 10 s, a third of the shutdown budget, then a cancel, with a longer poll).
That was every app fixture of the test suite too (12 -> 18.6 min). Both tests failed
before the fix (the stop took 10 s; the stop during a claim waited out the poll)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from dealreg.runtime import Runtime
from services.projections.notifications import NotificationSender
from shared.settings import Settings

POLL = 60.0


async def test_stopping_a_runtime_wakes_its_idle_sender(tmp_path: Path) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, notification_poll_seconds=POLL,
                        admin_token="drk_admin_" + "x" * 40)
    runtime = Runtime.build(settings, frozenset({"projections"}))
    await runtime.start()
    sender = runtime.notification_sender
    assert sender is not None
    claims = 0
    claim = sender.claim

    async def counted(limit: int) -> list[dict[str, Any]]:
        nonlocal claims
        claims += 1
        return await claim(limit)
    sender.claim = counted  # type: ignore[method-assign]
    sender.wake.set()  # one more claim: then it is surely asleep, waiting for the next
    deadline = time.monotonic() + 30
    while claims == 0:
        assert time.monotonic() < deadline, "the sender never claimed"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    began = time.monotonic()
    await asyncio.wait_for(runtime.stop(), 30)
    took = time.monotonic() - began
    assert took < 5.0, f"the stop took {took:.1f} s (the idle sender slept on)"
    assert runtime.shutdown_problem is None


class _Idle(NotificationSender):
    """Nothing to send; the stop arrives while a claim runs (as Runtime.stop does it: the
    flag, then a wake-up)."""

    def __init__(self) -> None:
        super().__init__(engine=None, settings=Settings(  # type: ignore[arg-type]
            notification_poll_seconds=POLL))
        self.stop = False

    async def claim(self, limit: int) -> list[dict[str, Any]]:
        self.stop = True
        self.wake.set()
        return []

    async def seconds_to_next_due(self) -> float:
        return float("inf")


async def test_a_stop_that_arrives_during_a_claim_is_not_slept_through() -> None:
    sender = _Idle()
    began = time.monotonic()
    await asyncio.wait_for(sender.run(lambda: sender.stop), POLL / 2)
    assert time.monotonic() - began < 5.0
