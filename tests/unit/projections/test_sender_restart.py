"""The notification sender is restarted by its supervisor after a crash (a database
restart, say): the restarted run must deliver with an open HTTP client. It used to keep the
client its crashed run had closed, and every delivery then failed with "Cannot send a
request, as the client has been closed" until the process restarted (found by the fault
suite, tests/faults/, after a PostgreSQL restart)."""

from __future__ import annotations

from typing import Any

import pytest

from services.projections.notifications import NotificationSender
from shared.settings import Settings


class _Sender(NotificationSender):
    def __init__(self) -> None:
        super().__init__(engine=None, settings=Settings())  # type: ignore[arg-type]
        self.runs = 0
        self.client_open_on_claim: list[bool] = []

    async def claim(self, limit: int) -> list[dict[str, Any]]:
        assert self.http is not None
        self.client_open_on_claim.append(not self.http.is_closed)
        if self.runs == 1:
            raise ConnectionError("the database went away")
        return []


async def test_a_sender_restarted_after_a_crash_delivers_with_an_open_client() -> None:
    sender = _Sender()
    sender.runs = 1
    with pytest.raises(ConnectionError):
        await sender.run(lambda: False)
    sender.runs = 2
    calls = 0

    def stopping() -> bool:
        nonlocal calls
        calls += 1
        return calls > 1

    await sender.run(stopping)
    assert sender.client_open_on_claim == [True, True]
