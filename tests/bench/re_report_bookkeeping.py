"""CPU of the durable re-reporter's own bookkeeping on PostgreSQL (`ReReporter` alone).

    set -a; . .services/env; set +a   # or any DEALREG_TEST_DATABASE_URL
    PYTHONPATH=$PWD python3 tests/bench/re_report_bookkeeping.py

Prints `time.process_time` per command for recording pending rows one at a time (what a
command pays before its append), how many statements 100 concurrent records took, and
per decision for 400 decided registrations notified in batches of 20 (status read, lease
check, delete; the rule itself is a no-op here). A second round shows the warm figures.
"""

from __future__ import annotations

import asyncio
import os
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


async def main() -> None:
    url = await create_database(os.environ["DEALREG_TEST_DATABASE_URL"],
                                f"rrbook_{uuid.uuid4().hex[:8]}")
    engine = create_engine(url)
    await migrate(engine)

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
