"""`Prefer: wait` in one process (`dealreg dev`): the waiter is registered before the append,
woken by the co-located projection worker, and reads the rows of everyone notified together
in one batched query, on the real SQLite read model."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.adapters import repository
from services.projections.domain.registrations import empty_row
from shared.readmodel.schema import registrations
from shared.readmodel.store import create_engine, migrate
from shared.readmodel.waiter import RECHECK_SECONDS, DecisionWaiter


def row(rid: str, status: str) -> dict[str, object]:
    at = datetime.now(UTC)
    out = empty_row(rid)
    out.update(partner_id="p-1", account_key="dom:example.com", motion="resell",
               status=status, submitted_at=at,
               account={"name": "Example", "domain": "example.com"},
               opportunity={"title": "Deal", "products": ["crm"]})
    if status != "submitted":
        out.update(decided_at=at, first_decided_at=at, first_rule="no_conflict")
    return out


async def project(engine: AsyncEngine, waiter: DecisionWaiter, *rows: dict[str, object]
                  ) -> None:
    """What the co-located projection worker does: commit the rows, then notify."""
    async with engine.begin() as conn:
        await repository.upsert(conn, registrations, list(rows), ("id",))
    waiter.notify([str(r["id"]) for r in rows])


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


async def test_a_decision_projected_before_the_request_waits_is_not_missed(
        engine: AsyncEngine) -> None:
    waiter = DecisionWaiter(engine, in_process=True)
    with waiter.expect("reg_1") as decision:
        # The adjudicator and projections were faster than the request: decided and
        # notified between the append and the wait.
        await project(engine, waiter, row("reg_1", "approved"))
        await asyncio.sleep(0.05)
        got = await asyncio.wait_for(decision.wait(5), 1)
    assert got is not None and got["status"] == "approved"
    assert waiter.reads == 1  # the one batched read after the notification


async def test_waiters_notified_together_share_one_read(engine: AsyncEngine) -> None:
    waiter = DecisionWaiter(engine, in_process=True)
    ids = [f"reg_{i}" for i in range(40)]
    with contextlib.ExitStack() as stack:
        expected = [stack.enter_context(waiter.expect(rid)) for rid in ids]
        waiting = [asyncio.create_task(e.wait(5)) for e in expected]
        await asyncio.sleep(0.05)
        assert waiter.reads == 0  # no read of their own while they wait
        await project(engine, waiter, *(row(rid, "approved") for rid in ids))
        got = await asyncio.wait_for(asyncio.gather(*waiting), 2)
    assert [g["id"] for g in got if g is not None] == ids
    assert waiter.reads == 1


async def test_an_undecided_row_keeps_the_request_waiting_until_decided(
        engine: AsyncEngine) -> None:
    waiter = DecisionWaiter(engine, in_process=True)
    with waiter.expect("reg_1") as decision:
        waiting = asyncio.create_task(decision.wait(5))
        await project(engine, waiter, row("reg_1", "submitted"))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await project(engine, waiter, row("reg_1", "rejected"))
        got = await asyncio.wait_for(waiting, 2)
    assert got is not None and got["status"] == "rejected"


async def test_in_process_a_wait_without_decision_ends_at_its_timeout_without_reads(
        engine: AsyncEngine) -> None:
    waiter = DecisionWaiter(engine, in_process=True)
    with waiter.expect("reg_1") as decision:
        assert await decision.wait(0.2) is None
    assert waiter.reads == 0
    assert not waiter._waiting  # nothing left behind for later notifications


async def test_a_batched_read_that_failed_is_retried(tmp_path: Path) -> None:
    # The read model cannot be read at first (its schema is not there yet): the notified
    # waiter is answered once it can, not left to its time-out.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'late.sqlite3'}")
    try:
        waiter = DecisionWaiter(engine, in_process=True)
        with waiter.expect("reg_1") as decision:
            waiting = asyncio.create_task(decision.wait(5))
            waiter.notify(["reg_1"])
            await asyncio.sleep(0.05)
            assert waiter.reads >= 1 and not waiting.done()
            await migrate(engine)
            async with engine.begin() as conn:
                await repository.upsert(conn, registrations, [row("reg_1", "approved")],
                                        ("id",))
            got = await asyncio.wait_for(waiting, 3)
        assert got is not None and got["status"] == "approved"
    finally:
        await engine.dispose()


async def test_wait_decided_reads_once_for_a_registration_decided_earlier(
        engine: AsyncEngine) -> None:
    waiter = DecisionWaiter(engine, in_process=True)
    async with engine.begin() as conn:
        await repository.upsert(conn, registrations, [row("reg_1", "approved")], ("id",))
    got = await waiter.wait_decided("reg_1", 1)
    assert got is not None and got["status"] == "approved" and waiter.reads == 1


async def test_polling_waiters_share_their_reads(engine: AsyncEngine) -> None:
    # A registration service without notifications (its listener down) polls; hundreds of
    # waiters reading alone every few milliseconds ran its pool dry.
    waiter = DecisionWaiter(engine, in_process=False)
    ids = [f"reg_{i}" for i in range(40)]
    with contextlib.ExitStack() as stack:
        expected = [stack.enter_context(waiter.expect(rid)) for rid in ids]
        waiting = [asyncio.create_task(e.wait(5)) for e in expected]
        await asyncio.sleep(0.3)  # several polls each
        async with engine.begin() as conn:  # decided, no notification
            await repository.upsert(conn, registrations, [row(rid, "approved") for rid in ids],
                                    ("id",))
        got = await asyncio.wait_for(asyncio.gather(*waiting), 2)
    assert [g["id"] for g in got if g is not None] == ids
    assert waiter.reads < len(ids)  # batched: about one read per polling round


async def test_a_row_handed_over_by_the_worker_is_the_row_a_read_returns(
        engine: AsyncEngine) -> None:
    """The co-located worker hands its committed rows to the waiters (no read back); they
    must get what reading the row gives: UTC datetimes, Decimal credit of two places, JSON
    as decoded (lists, not tuples). A row still undecided keeps its waiter waiting, and
    neither case reads."""
    from datetime import timedelta, timezone
    from decimal import Decimal

    waiter = DecisionWaiter(engine, in_process=True)
    handed = row("reg-h", "in_review")
    handed.update(submitted_at=datetime.now(timezone(timedelta(hours=2))),
                  credit_percent=Decimal("50"), scope_products=("crm", "erp"),
                  decision={"rule": "dispute", "conflicts": [{"id": "reg-x", "score": 0.5}]})
    undecided = row("reg-u", "submitted")
    async with engine.begin() as conn:
        await repository.upsert(conn, registrations, [handed, undecided], ("id",))
    with waiter.expect("reg-h") as expected, waiter.expect("reg-u") as pending:
        waiter.notify(["reg-h", "reg-u"], {"reg-h": handed, "reg-u": undecided})
        got = await expected.wait(1)
        assert await pending.wait(0.05) is None
    assert waiter.reads == 0 and waiter.handed == 1
    assert repr(got) == repr(await waiter.read_decided("reg-h"))  # types and zones too
    assert list(got or {}) == [c.name for c in registrations.columns]


async def test_a_listening_waiter_rechecks_only_as_often_as_it_asks(engine: AsyncEngine
                                                                    ) -> None:
    """Woken by a `DecisionListener`, a waiter re-reads its row now and then in case a
    notification was lost. Every waiter still waiting is re-read at each re-check, so the
    post-decision re-report (a minute's wait, until session 25) asked for a long
    interval: with decisions late, a backlog was re-read every second for that minute."""
    waiter = DecisionWaiter(engine, in_process=False)
    waiter.listening = True  # notifications flow; none comes for this row
    await project(engine, waiter, row("reg_1", "submitted"))
    with waiter.expect("reg_1") as often:
        assert await often.wait(0.5, recheck=0.1) is None
    await asyncio.sleep(0.05)  # the last batched read
    frequent = waiter.reads
    with waiter.expect("reg_1") as rarely:  # longer than the default interval
        assert await rarely.wait(RECHECK_SECONDS + 0.3, recheck=10) is None
    await asyncio.sleep(0.05)
    assert frequent >= 2  # re-checked while it waited
    assert waiter.reads == frequent  # a long interval: no re-read within the wait
