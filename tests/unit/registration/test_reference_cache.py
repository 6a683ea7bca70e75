"""The command side's cache of the policy and partner snapshots it stamps, on the real
embedded log and SQLite read model: one read refreshes an expired entry for every request
that needs it meanwhile, and a change made here is seen at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.util import await_only

from services.registration.adapters.reference import ReferenceData
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.topics import Topics
from shared.readmodel.store import create_engine, migrate

PARTNER: dict[str, Any] = {"name": "One", "type": "reseller", "status": "active"}


@pytest.fixture
async def reference(tmp_path: Path) -> AsyncIterator[tuple[ReferenceData, list[str]]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}")
    await migrate(engine)
    log = EmbeddedEventLog(tmp_path / "log.sqlite3")
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(1))
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield (ReferenceData(log, engine, topics.reference, source="urn:test",
                             cache_seconds=60), statements)
    finally:
        await log.close()
        await engine.dispose()


def reads_of(statements: list[str], table: str) -> int:
    return sum(s.lstrip().upper().startswith("SELECT") and f"FROM {table}" in s
               for s in statements)


async def test_requests_needing_an_expired_partner_share_one_read(
        reference: tuple[ReferenceData, list[str]]) -> None:
    store, statements = reference
    await store.put_partner("p-1", PARTNER | {"tier": "gold"}, by="test")
    statements.clear()
    found = await asyncio.gather(*(store.partner("p-1") for _ in range(50)))
    assert {f["tier"] for f in found if f is not None} == {"gold"} and None not in found
    assert reads_of(statements, "ref_partners") == 1


async def test_requests_needing_the_expired_policy_share_one_read(
        reference: tuple[ReferenceData, list[str]]) -> None:
    store, statements = reference
    first = await store.current_policy()  # publishes the defaults (version 1)
    store._current = None  # expired
    statements.clear()
    found = await asyncio.gather(*(store.current_policy() for _ in range(50)))
    assert {p.version for p in found} == {first.version}
    assert reads_of(statements, "ref_policies") == 1


async def test_a_partner_change_is_seen_at_once_even_with_a_read_in_flight(
        reference: tuple[ReferenceData, list[str]]) -> None:
    store, _ = reference
    await store.put_partner("p-1", PARTNER | {"tier": "gold"}, by="test")
    store._partners.clear()  # expired
    slow = threading.Event()

    def stall_the_first_read(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The reader has its snapshot (the old row) and finishes after the change below.
        if "FROM ref_partners" in statement and not slow.is_set():
            slow.set()
            await_only(asyncio.sleep(0.3))  # in SQLAlchemy's greenlet: yields the loop

    event.listen(store.engine.sync_engine, "after_cursor_execute", stall_the_first_read)
    reader = asyncio.create_task(store.partner("p-1"))
    await asyncio.sleep(0.05)
    assert slow.is_set()
    await store.put_partner("p-1", PARTNER | {"tier": "silver"}, by="test")
    old = await reader
    assert old is not None and old["tier"] == "gold"  # overlapped the change: either is fine
    current = await store.partner("p-1")
    assert current is not None and current["tier"] == "silver"
