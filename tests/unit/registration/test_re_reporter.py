"""The durable re-reporter's bookkeeping (services/registration/rereports.py) on the real
SQLite read model: woken by the decisions the projections notify (no poll), run once per
registration by the one process holding it, retried after a failure, taken over after a
crash only once the lease ran out, and an append that never reached the read model
dropped after the orphan age. The rule it runs (`Commands._re_report`) is recorded here;
tests/e2e/test_re_report_durable.py runs the real one end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registration.adapters.tables import re_reports
from services.registration.rereports import Pending, ReReporter
from shared.accounts import AccountIdentity
from shared.readmodel.store import create_engine, migrate
from shared.readmodel.waiter import DecisionWaiter
from tests.unit.registration.test_decision_waiter import project, row

LEASE = 60.0
ORPHAN = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Rule:
    """Records what it re-reported; fails while `failing`."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, str]] = []
        self.failing = False

    async def __call__(self, pending: Pending, decided: dict[str, Any]) -> None:
        if self.failing:
            raise OSError("the log did not confirm")
        self.ran.append((pending.entity_id, decided["status"]))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


def _reporter(engine: AsyncEngine, waiter: DecisionWaiter, clock: Clock, rule: Rule
              ) -> ReReporter:
    return ReReporter(engine, waiter, rule, clock=clock, lease_seconds=LEASE,
                      orphan_seconds=ORPHAN)


def _pending(rid: str, clock: Clock) -> Pending:
    return Pending(rid, "dom:example.com", AccountIdentity(None, "example.com", "example",
                                                           "US"),
                   {"crm:001": frozenset({"reg_0"})}, "api", clock())


async def _left(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(re_reports))
                    ).scalar_one())


async def test_a_registration_is_re_reported_once_when_its_decision_is_projected(
        engine: AsyncEngine) -> None:
    clock, rule = Clock(), Rule()
    waiter = DecisionWaiter(engine, in_process=True)
    reporter = _reporter(engine, waiter, clock, rule)
    await reporter.record(_pending("reg_1", clock))
    await project(engine, waiter, row("reg_1", "submitted"))
    await reporter.settled()
    assert rule.ran == [] and reporter.reads == 1 and await _left(engine) == 1
    clock.now += timedelta(hours=5)  # however late
    await project(engine, waiter, row("reg_1", "approved"))
    await reporter.settled()
    await project(engine, waiter, row("reg_1", "approved"))  # notified again
    await reporter.settled()
    assert rule.ran == [("reg_1", "approved")]
    assert await _left(engine) == 0 and not reporter.pending


async def test_a_failed_re_report_is_tried_again_at_the_next_sweep(engine: AsyncEngine
                                                                    ) -> None:
    clock, rule = Clock(), Rule()
    waiter = DecisionWaiter(engine, in_process=True)
    reporter = _reporter(engine, waiter, clock, rule)
    await reporter.record(_pending("reg_1", clock))
    rule.failing = True
    await project(engine, waiter, row("reg_1", "in_review"))
    await reporter.settled()
    assert rule.ran == [] and await _left(engine) == 1
    rule.failing = False
    await reporter.sweep()
    await reporter.settled()
    assert rule.ran == [("reg_1", "in_review")] and await _left(engine) == 0


async def test_a_crashed_process_s_row_is_taken_over_after_its_lease_and_run_once(
        engine: AsyncEngine) -> None:
    clock, first_rule, second_rule = Clock(), Rule(), Rule()
    waiter = DecisionWaiter(engine, in_process=True)
    first = _reporter(engine, waiter, clock, first_rule)
    second = _reporter(engine, waiter, clock, second_rule)
    await first.record(_pending("reg_1", clock))
    await second.sweep()  # the first's lease is live: not taken
    assert not second.pending
    clock.now += timedelta(seconds=LEASE + 1)  # the first stopped renewing (hung)
    await second.sweep()
    await second.settled()
    assert set(second.pending) == {"reg_1"}
    await project(engine, waiter, row("reg_1", "approved"))
    await first.settled()
    await second.settled()
    # Both heard the decision; only the one holding the row re-reported it.
    assert first_rule.ran == [] and second_rule.ran == [("reg_1", "approved")]
    assert not first.pending and await _left(engine) == 0


async def test_a_clean_stop_hands_its_rows_over_at_once(engine: AsyncEngine) -> None:
    clock, rule = Clock(), Rule()
    waiter = DecisionWaiter(engine, in_process=True)
    first = _reporter(engine, waiter, clock, Rule())
    await first.record(_pending("reg_1", clock))
    await first.stop()
    second = _reporter(engine, waiter, clock, rule)
    await second.sweep()
    assert set(second.pending) == {"reg_1"}
    await project(engine, waiter, row("reg_1", "approved"))
    await second.settled()
    assert rule.ran == [("reg_1", "approved")]


async def test_a_row_whose_registration_never_reached_the_read_model_is_dropped(
        engine: AsyncEngine) -> None:
    """Dropped once the projections applied a registration filed an orphan age after it
    (its append surely failed), not merely once it is a day old."""
    clock, rule = Clock(), Rule()
    waiter = DecisionWaiter(engine, in_process=True)
    reporter = _reporter(engine, waiter, clock, rule)
    await reporter.record(_pending("reg_lost", clock))  # its append failed
    await reporter.sweep()
    await reporter.settled()
    assert await _left(engine) == 1
    clock.now += timedelta(seconds=ORPHAN + 1)
    await reporter.sweep()
    await reporter.settled()
    # Older than the orphan age, but the projections have applied nothing filed since:
    # they may be down (the weekend case of tests/e2e/test_re_report_durable.py), so
    # the row stays.
    assert await _left(engine) == 1 and set(reporter.pending) == {"reg_lost"}
    later = row("reg_later", "submitted")
    later["submitted_at"] = clock.now - timedelta(seconds=2)  # filed just under an age
    await project(engine, waiter, later)
    await reporter.sweep()
    await reporter.settled()
    assert await _left(engine) == 1
    later["submitted_at"] = clock.now  # the projections ran an orphan age past it
    await project(engine, waiter, later)
    await reporter.sweep()
    await reporter.settled()
    assert await _left(engine) == 0 and not reporter.pending and rule.ran == []


async def test_nothing_is_read_while_nothing_is_notified(engine: AsyncEngine) -> None:
    """No poll per registration: pending ones cost no read until a decision is notified
    (or the process's one sweep)."""
    clock, rule = Clock(), Rule()
    waiter = DecisionWaiter(engine, in_process=True)
    reporter = _reporter(engine, waiter, clock, rule)
    for n in range(50):
        await reporter.record(_pending(f"reg_{n}", clock))
    await asyncio.sleep(0.3)
    assert reporter.reads == 0
    await reporter.sweep()
    await reporter.settled()
    assert reporter.reads == 1  # all fifty in one batched read


async def test_concurrent_commands_record_their_rows_together(engine: AsyncEngine) -> None:
    """One statement per group of commands arriving together, not one per command."""
    clock = Clock()
    reporter = _reporter(engine, DecisionWaiter(engine, in_process=True), clock, Rule())
    await asyncio.gather(*(reporter.record(_pending(f"reg_{n}", clock)) for n in range(20)))
    assert reporter.writes <= 2 and await _left(engine) == 20
    assert all(p.durable for p in reporter.pending.values())



async def test_what_arrives_while_the_writer_waits_for_its_turn_rides_in_that_turn(
        engine: AsyncEngine) -> None:
    """On SQLite every write transaction of the process waits for its one write turn,
    which the projection worker holds while it folds a batch. Rows of commands that
    arrived while the writer waited, and the lease check of a registration decided
    meanwhile, go in the turn the writer gets (they took three more turns, each queued
    behind the projections: the later commands' rows, the check, the delete); the delete
    after the re-report is one more."""
    clock, rule = Clock(), Rule()
    waiter = DecisionWaiter(engine, in_process=True)
    reporter = _reporter(engine, waiter, clock, rule)
    await reporter.record(_pending("reg_0", clock))
    turns: Any = cast(Any, engine)._writers
    take, taken = turns.turn, []

    def counted() -> Any:
        taken.append(1)
        return take()

    turns.turn = counted
    folded, release = asyncio.Event(), asyncio.Event()

    async def projections() -> None:  # the projection worker folding a batch
        async with engine.begin():
            folded.set()
            await release.wait()

    fold = asyncio.create_task(projections())
    await folded.wait()
    first = asyncio.create_task(reporter.record(_pending("reg_1", clock)))
    await asyncio.sleep(0.05)  # the writer waits for the turn
    later = [asyncio.create_task(reporter.record(_pending(f"reg_{n}", clock)))
             for n in (2, 3)]
    waiter.notify(["reg_0"], {"reg_0": row("reg_0", "approved")})  # decided
    await asyncio.sleep(0.05)
    assert not first.done() and rule.ran == []
    release.set()
    await asyncio.gather(fold, first, *later)
    await reporter.settled()
    assert rule.ran == [("reg_0", "approved")]
    assert len(taken) - 1 == 2  # the rows and the check in one turn, then the delete
    assert all(p.durable for p in reporter.pending.values())
    assert set(reporter.pending) == {"reg_1", "reg_2", "reg_3"} and await _left(engine) == 3


@pytest.fixture
async def locked(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """The read model, with a short busy timeout, and another engine on the same file to
    hold its write lock (a rebuild, an operator's long transaction)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}"
    engine = create_engine(url, busy_timeout_ms=100)
    blocker = create_engine(url)
    await migrate(engine)
    yield engine, blocker
    await blocker.dispose()
    await engine.dispose()


async def test_a_command_recorded_while_the_read_model_is_locked_is_not_held_up(
        locked: tuple[AsyncEngine, AsyncEngine]) -> None:
    """SQLite's "database is locked" at `BEGIN IMMEDIATE` comes out of the driver as
    `sqlite3.OperationalError`, neither SQLAlchemy's error nor OSError: the group writer
    died with it and every command of the group waited for its row forever."""
    engine, blocker = locked
    clock = Clock()
    reporter = _reporter(engine, DecisionWaiter(engine, in_process=True), clock, Rule())
    async with blocker.begin() as conn:  # takes the write lock at BEGIN
        await conn.execute(select(1))
        await asyncio.wait_for(asyncio.gather(
            reporter.record(_pending("reg_1", clock)),
            reporter.record(_pending("reg_2", clock))), 10)
    assert set(reporter.pending) == {"reg_1", "reg_2"}
    assert not reporter.pending["reg_1"].durable and await _left(engine) == 0
    # The other statements fail softly too: a sweep, a release.
    async with blocker.begin() as conn:
        await conn.execute(select(1))
        await asyncio.wait_for(reporter.sweep(), 10)
        await asyncio.wait_for(reporter.stop(), 10)


async def test_a_row_kept_in_memory_while_the_read_model_was_locked_survives_a_crash(
        locked: tuple[AsyncEngine, AsyncEngine]) -> None:
    """A row kept in memory only (the write lock held past the busy timeout when the
    command ran) is written at the next sweep, so a process that dies once the read
    model is back loses nothing (it stayed memory-only until decided: a restart lost the
    race's re-report)."""
    engine, blocker = locked
    clock, rule = Clock(), Rule()
    waiter = DecisionWaiter(engine, in_process=True)
    first = _reporter(engine, waiter, clock, Rule())
    async with blocker.begin() as conn:
        await conn.execute(select(1))
        await asyncio.wait_for(first.record(_pending("reg_1", clock)), 10)
    assert not first.pending["reg_1"].durable and await _left(engine) == 0
    await first.sweep()  # the read model is back
    await first.settled()
    assert first.pending["reg_1"].durable and await _left(engine) == 1
    # The process dies (no stop: its lease runs out); another takes the row over.
    waiter.observers.remove(first.notify)
    second = _reporter(engine, waiter, clock, rule)
    clock.now += timedelta(seconds=LEASE + 1)
    await second.sweep()
    await second.settled()
    assert set(second.pending) == {"reg_1"}
    await project(engine, waiter, row("reg_1", "approved"))
    await second.settled()
    assert rule.ran == [("reg_1", "approved")] and await _left(engine) == 0


async def test_a_row_written_by_the_driver_reads_back_as_recorded(engine: AsyncEngine
                                                                   ) -> None:
    """SQLite rows are sent by the driver (not SQLAlchemy): bound by the columns' own
    types, they are the rows SQLAlchemy reads back and compares (the lease), and a retried
    command's row replaces the earlier one."""
    clock = Clock()
    waiter = DecisionWaiter(engine, in_process=True)
    first = _reporter(engine, waiter, clock, Rule())
    recorded = Pending("clm_1", "crm:00c7", AccountIdentity("00C7", None, "acme", "DE"),
                       {"crm:00c7": frozenset({"reg_2", "reg_1"}), "dom:acme.de": frozenset()},
                       "claim", clock())
    await first.record(replace(recorded, via="api"))
    await first.record(recorded)  # the retried command: the row is replaced
    async with engine.connect() as conn:
        (stored,) = (await conn.execute(select(re_reports))).all()
    assert stored.lease_until == clock.now + timedelta(seconds=LEASE)
    assert stored.via == "claim" and stored.reported == {
        "crm:00c7": ["reg_1", "reg_2"], "dom:acme.de": []}
    clock.now += timedelta(seconds=LEASE - 1)
    second = _reporter(engine, waiter, clock, Rule())
    await second.sweep()  # the lease is live (compared in SQL): not taken
    assert not second.pending
    clock.now += timedelta(seconds=2)
    await second.sweep()
    assert second.pending == {"clm_1": recorded}
