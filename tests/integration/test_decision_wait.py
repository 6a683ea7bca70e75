"""`Prefer: wait` on real PostgreSQL, registration service in its own process: the waiter is
woken by the projections' NOTIFY (sent inside their transaction) and holds no database
connection while it waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import event, func, select

from services.projections.adapters import repository
from services.projections.domain.registrations import empty_row
from services.registration.adapters.tables import re_reports
from services.registration.rereports import Pending, ReReporter
from shared.accounts import AccountIdentity
from shared.readmodel.schema import registrations
from shared.readmodel.store import create_engine, migrate
from shared.readmodel.waiter import (
    RECHECK_SECONDS,
    DecisionListener,
    DecisionWaiter,
    notify_registrations,
    parse_payload,
)
from tests.support.servers import ServerHandle, create_database


async def eventually(check: Callable[[], bool], timeout: float) -> bool:
    for _ in range(int(timeout / 0.05)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


def decided_row(rid: str) -> dict[str, object]:
    at = datetime.now(UTC)
    row = empty_row(rid)
    row.update(partner_id="p-1", account_key="dom:example.com", motion="resell",
               status="approved", submitted_at=at, decided_at=at, first_decided_at=at,
               first_rule="no_conflict", account={"name": "Example", "domain": "example.com"},
               opportunity={"title": "Deal", "products": ["crm"]})
    return row


async def test_a_waiting_request_is_woken_by_notify_and_holds_no_connection(
        postgres_server: ServerHandle, unique: str) -> None:
    url = await create_database(postgres_server.url, f"wait_{unique}")
    engine = create_engine(url)  # the registration service's pool
    writer = create_engine(url)  # the projections process
    await migrate(engine)
    checkouts = 0

    def counted(*_: object) -> None:
        nonlocal checkouts
        checkouts += 1

    event.listen(engine.sync_engine.pool, "checkout", counted)
    waiter = DecisionWaiter(engine, in_process=False)
    listener = DecisionListener(url, waiter)
    stop = asyncio.Event()
    listening = asyncio.create_task(listener.run(stop.is_set))
    try:
        assert await eventually(lambda: waiter.listening, 10)
        rid = f"reg_{unique}"
        waiting = asyncio.create_task(waiter.wait_decided(rid, timeout=10))
        await asyncio.sleep(0.8)  # waiting, below RECHECK_SECONDS: no polling
        assert not waiting.done()
        held_while_waiting = engine.sync_engine.pool.checkedout()
        reads_while_waiting = checkouts
        async with writer.begin() as conn:  # what the projection worker does
            await repository.upsert(conn, registrations, [decided_row(rid)], ("id",))
            await notify_registrations(conn, [rid])
        woken_at = time.monotonic()
        row = await asyncio.wait_for(waiting, 5)
        answered_in = time.monotonic() - woken_at
    finally:
        stop.set()
        await listening
        await engine.dispose()
        await writer.dispose()
    assert row is not None and row["status"] == "approved"
    assert held_while_waiting == 0  # no connection held while waiting
    assert reads_while_waiting == 1  # one read when it started, no polling since
    assert answered_in < RECHECK_SECONDS / 2  # woken by the notification, not a re-check
    assert not waiter.listening  # stopped cleanly


async def test_notify_payloads_stay_under_the_postgresql_limit(
        postgres_server: ServerHandle, unique: str) -> None:
    url = await create_database(postgres_server.url, f"notify_{unique}")
    engine = create_engine(url)
    await migrate(engine)
    waiter = DecisionWaiter(engine, in_process=False)
    got: list[str] = []
    waiter.notify = lambda ids, **_: got.extend(ids)  # type: ignore[method-assign]
    stop = asyncio.Event()
    listening = asyncio.create_task(DecisionListener(url, waiter).run(stop.is_set))
    ids = [f"reg_{i:026d}" for i in range(1000)]  # ~28 KB of ids: several notifications
    try:
        assert await eventually(lambda: waiter.listening, 10)
        async with engine.begin() as conn:
            await notify_registrations(conn, ids)
        await eventually(lambda: len(got) >= len(ids), 5)
    finally:
        stop.set()
        await listening
        await engine.dispose()
    assert sorted(got) == ids


async def test_a_batch_notifies_only_the_registrations_it_decided(
        postgres_server: ServerHandle, unique: str) -> None:
    """A waiter only ever wants a decided row, and every notified id costs each listening
    registration service a read back: a batch that only filed a submission notifies
    nothing for it; its decided rows (and ids whose row the batch does not hold) are sent."""
    url = await create_database(postgres_server.url, f"notifydecided_{unique}")
    engine = create_engine(url)
    await migrate(engine)
    waiter = DecisionWaiter(engine, in_process=False)
    got: list[str] = []
    waiter.notify = lambda ids, **_: got.extend(ids)  # type: ignore[method-assign]
    stop = asyncio.Event()
    listening = asyncio.create_task(DecisionListener(url, waiter).run(stop.is_set))
    rows = {"reg_submitted": empty_row("reg_submitted"),  # status "submitted"
            "reg_decided": decided_row("reg_decided")}
    try:
        assert await eventually(lambda: waiter.listening, 10)
        async with engine.begin() as conn:
            await notify_registrations(conn, ["reg_submitted", "reg_decided", "clm_other"],
                                       rows)
        async with engine.begin() as conn:  # a later batch: its arrival ends the wait
            await notify_registrations(conn, ["reg_last"])
        await eventually(lambda: "reg_last" in got, 5)
    finally:
        stop.set()
        await listening
        await engine.dispose()
    assert got == ["clm_other", "reg_decided", "reg_last"]


async def test_batched_decision_reads_of_every_size_share_one_statement_and_match_whole_ids(
        postgres_server: ServerHandle, unique: str) -> None:
    """The waiter reads notified registrations back in batches of whatever size came
    together. With `id IN ($1, .., $n)` each size was a new statement text, so a new
    prepared statement on the connection (parse, plan, type introspection) that pushed
    another out of the cache; as `id = ANY($1)` (`queries.one_of`) every size is one text.
    The array is bound without the column's length: an id longer than the column finds no
    row by its prefix (a cast to VARCHAR(n)[] would cut it)."""
    url = await create_database(postgres_server.url, f"anyread_{unique}")
    engine = create_engine(url, pool_size=1, max_overflow=0)  # one connection: its cache
    await migrate(engine)
    ids = [f"reg_{unique}_{i:03d}" for i in range(7)]
    long_id = "r" * 64
    try:
        async with engine.begin() as conn:
            await repository.upsert(conn, registrations,
                                    [decided_row(rid) for rid in [*ids, long_id]], ("id",))
        waiter = DecisionWaiter(engine, in_process=False)
        for size in (1, 2, 3, 5, 7):
            assert sorted(await waiter._read(ids[:size]) or {}) == ids[:size]
        assert await waiter._read([long_id + "-other"]) == {}
        assert list(await waiter._read([long_id + "-other", long_id]) or {}) == [long_id]
        async with engine.connect() as conn:
            prepared = (await conn.exec_driver_sql(
                "SELECT statement FROM pg_prepared_statements")).scalars().all()
    finally:
        await engine.dispose()
    reads = [s for s in prepared if s.startswith("SELECT registrations.id")]
    assert len(reads) == 1, reads
    assert "ANY" in reads[0]


async def test_a_notified_decision_names_its_status_so_the_re_reporter_reads_nothing(
        postgres_server: ServerHandle, unique: str) -> None:
    """The projections' `NOTIFY` follows each decided id with its status (`=approved`):
    the post-decision re-reporter, which needs only the status, runs its rule from the
    notification and reads no status back (it did one batched read per notification),
    then checks its lease and deletes the row. A notified id without a status (an older
    sender) is still read back."""
    url = await create_database(postgres_server.url, f"notifystatus_{unique}")
    engine = create_engine(url)  # the registration service's
    writer = create_engine(url)  # the projections process
    await migrate(engine)
    waiter = DecisionWaiter(engine, in_process=False)
    ran: list[tuple[str, str]] = []

    async def rule(pending: Pending, decided: dict[str, object]) -> None:
        ran.append((pending.entity_id, str(decided["status"])))

    reporter = ReReporter(engine, waiter, rule, clock=lambda: datetime.now(UTC),
                          lease_seconds=60, orphan_seconds=3600)
    identity = AccountIdentity(None, "example.com", "example", "US")
    stop = asyncio.Event()
    listening = asyncio.create_task(DecisionListener(url, waiter).run(stop.is_set))
    try:
        assert await eventually(lambda: waiter.listening, 10)
        for rid in ("reg_a", "reg_b", "reg_c"):
            await reporter.record(Pending(rid, "dom:example.com", identity, {}, "api",
                                          datetime.now(UTC)))
        rows = {"reg_a": decided_row("reg_a"), "reg_b": {**decided_row("reg_b"),
                                                         "status": "rejected"}}
        async with writer.begin() as conn:
            await repository.upsert(conn, registrations, list(rows.values()), ("id",))
            await notify_registrations(conn, ["reg_a", "reg_b"], rows)
        assert await eventually(lambda: len(ran) == 2, 5)
        await reporter.settled()
        reads_for_statuses = reporter.reads
        async with writer.begin() as conn:  # an older sender: the bare id
            await repository.upsert(conn, registrations, [decided_row("reg_c")], ("id",))
            await notify_registrations(conn, ["reg_c"])
        assert await eventually(lambda: len(ran) == 3, 5)
        await reporter.settled()
        async with engine.connect() as conn:
            left = (await conn.execute(select(func.count()).select_from(re_reports))
                    ).scalar_one()
    finally:
        stop.set()
        await listening
        await reporter.stop()
        await engine.dispose()
        await writer.dispose()
    assert sorted(ran) == [("reg_a", "approved"), ("reg_b", "rejected"), ("reg_c", "approved")]
    assert reads_for_statuses == 0
    assert reporter.reads == 1  # the bare id: read back
    assert left == 0 and not reporter.pending


def test_a_notification_payload_reads_with_or_without_statuses() -> None:
    """Either side may be upgraded first: bare ids (an older sender) are ids without a
    status, and a `=status` token is never taken for an id."""
    assert parse_payload("reg_a =approved clm_b reg_c =in_review") == (
        ["reg_a", "clm_b", "reg_c"],
        {"reg_a": {"status": "approved"}, "reg_c": {"status": "in_review"}})
    assert parse_payload("reg_a reg_b") == (["reg_a", "reg_b"], {})
    assert parse_payload("reg_a =nonsense") == (["reg_a"], {})
