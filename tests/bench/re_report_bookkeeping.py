"""CPU of the durable re-reporter's own bookkeeping (`ReReporter` alone).

    set -a; . .services/env; set +a   # or any DEALREG_TEST_DATABASE_URL
    PYTHONPATH=$PWD python3 tests/bench/re_report_bookkeeping.py            # PostgreSQL
    PYTHONPATH=$PWD python3 tests/bench/re_report_bookkeeping.py sqlite     # embedded

Prints `time.process_time` per command for recording pending rows one at a time (what a
command pays before its append), how many statements 100 concurrent records took, and
per decision for 400 decided registrations notified in batches of 20 (status read, lease
check, delete; the rule itself is a no-op here). A second round shows the warm figures.

`sqlite` also runs the co-located steady state of `dealreg dev` (session 26): every tick
10 commands record their rows concurrently while a stand-in projection worker holds the
process's SQLite write turn (`HOLD_MS`, sleeping: no CPU) to commit 10 earlier
registrations approved and hand their rows over, as the real one does; printed: CPU per
command of the whole bookkeeping (records, lease checks, deletes) and the re-reporter's
write turns per command, each of which queues behind the projection batch.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from services.projections.adapters import repository
from services.registration.rereports import Pending, ReReporter
from shared.accounts import AccountIdentity
from shared.readmodel.schema import registrations
from shared.readmodel.store import create_engine, migrate
from shared.readmodel.waiter import DecisionWaiter
from tests.support.servers import create_database
from tests.unit.registration.test_decision_waiter import row

IDENTITY = AccountIdentity("001", "acme.com", "acme", "US")


def _pending(entity_id: str) -> Pending:
    return Pending(entity_id, "dom:acme.com", IDENTITY, {"crm:1": frozenset({"reg_a"})},
                   "api", datetime.now(UTC))


TICKS, PER_TICK, HOLD_MS = 100, 10, 5.0


async def steady(engine: Any) -> None:
    """The co-located steady state (module docstring), two rounds."""

    async def rule(_pending: Pending, _row: dict[str, Any]) -> None:
        return None

    waiter = DecisionWaiter(engine, in_process=True)
    reporter = ReReporter(engine, waiter, rule, clock=lambda: datetime.now(UTC),
                          lease_seconds=60, orphan_seconds=3600)
    turns = engine._writers  # every write transaction of the process takes one
    taken = [0]
    take = turns.turn

    def counted() -> Any:
        taken[0] += 1
        return take()

    turns.turn = counted
    for round_ in range(2):
        ids = [f"st_{round_}_{n}" for n in range(TICKS * PER_TICK)]
        writes, started = taken[0] + (TICKS + 1), time.process_time()
        for tick in range(TICKS + 1):
            filed = ids[tick * PER_TICK:(tick + 1) * PER_TICK]
            decided = ids[(tick - 1) * PER_TICK:tick * PER_TICK] if tick else []

            async def projections(decided: list[str] = decided) -> None:
                rows = {i: row(i, "approved") for i in decided}
                async with engine.begin():
                    await asyncio.sleep(HOLD_MS / 1000)  # the fold, committed
                if rows:
                    waiter.notify(list(rows), rows)

            await asyncio.gather(projections(),
                                 *(reporter.record(_pending(i)) for i in filed))
        await reporter.settled()
        cpu = time.process_time() - started
        print(f"steady round {round_}: {len(ids)} commands recorded and decided, "
              f"{PER_TICK} a tick: {cpu * 1000 / len(ids):.3f} ms CPU each, "
              f"{(taken[0] - writes) / len(ids):.2f} re-reporter write turns each, "
              f"{len(reporter.pending)} left pending")
    await reporter.stop()


async def main() -> None:
    if sys.argv[1:] == ["sqlite"]:
        folder = tempfile.mkdtemp()
        url = f"sqlite+aiosqlite:///{folder}/rm.sqlite3"
    else:
        url = await create_database(os.environ["DEALREG_TEST_DATABASE_URL"],
                                    f"rrbook_{uuid.uuid4().hex[:8]}")
    engine = create_engine(url)
    await migrate(engine)
    if engine.dialect.name == "sqlite":
        await steady(engine)

    async def rule(_pending: Pending, _row: dict[str, Any]) -> None:
        return None

    waiter = DecisionWaiter(engine, in_process=False)
    reporter = ReReporter(engine, waiter, rule, clock=lambda: datetime.now(UTC),
                          lease_seconds=60, orphan_seconds=3600)
    for round_ in range(2):
        started = time.process_time()
        for n in range(300):
            await reporter.record(_pending(f"one_{round_}_{n}"))
        print(f"round {round_}: record one at a time "
              f"{(time.process_time() - started) * 1000 / 300:.3f} ms CPU each")
        writes = reporter.writes
        ids = [f"reg_{round_}_{n}" for n in range(400)]
        await asyncio.gather(*(reporter.record(_pending(i)) for i in ids[:100]))
        print(f"round {round_}: 100 concurrent records, {reporter.writes - writes} "
              "statement(s)")
        await asyncio.gather(*(reporter.record(_pending(i)) for i in ids[100:]))
        async with engine.begin() as conn:
            await repository.upsert(conn, registrations, [row(i, "approved") for i in ids],
                                    ("id",))
        started = time.process_time()
        for batch in range(0, len(ids), 20):
            waiter.notify(ids[batch:batch + 20])
            await reporter.settled()
        print(f"round {round_}: decided, batches of 20: "
              f"{(time.process_time() - started) * 1000 / len(ids):.3f} ms CPU each")
    await reporter.stop()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
