"""CPU of the durable re-reporter's own bookkeeping on PostgreSQL (`ReReporter` alone).

    set -a; . .services/env; set +a   # or any DEALREG_TEST_DATABASE_URL
    PYTHONPATH=$PWD python3 tests/bench/re_report_bookkeeping.py

Prints `time.process_time` per command for recording pending rows one at a time (what a
command pays before its append), how many statements 100 concurrent records took, and
per decision for 400 decided registrations notified in batches of 20 (status read, lease
check, delete; the rule itself is a no-op here). A second round shows the warm figures.
Then (session 26) decisions one at a time through the real path: the projections' row
upsert and `NOTIFY` (`notify_registrations`), the `LISTEN` connection
(`DecisionListener`), the re-reporter's lease check and delete; CPU of this one process
(both sides) per decision, and the statements the re-reporter's engine sent.
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
from shared.readmodel.waiter import DecisionListener, DecisionWaiter, notify_registrations
from tests.support.servers import create_database
from tests.unit.registration.test_decision_waiter import row

IDENTITY = AccountIdentity("001", "acme.com", "acme", "US")


def _pending(entity_id: str) -> Pending:
    return Pending(entity_id, "dom:acme.com", IDENTITY, {"crm:1": frozenset({"reg_a"})},
                   "api", datetime.now(UTC))


async def main() -> None:
    if "DEALREG_TEST_DATABASE_URL" not in os.environ:
        from tests.support.servers import start_postgres

        server = start_postgres()
        os.environ["DEALREG_TEST_DATABASE_URL"] = server.url
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
    await _one_at_a_time(url, engine, waiter, reporter)
    await reporter.stop()
    await engine.dispose()


async def _one_at_a_time(url: str, engine: Any, waiter: DecisionWaiter,
                         reporter: ReReporter) -> None:
    from sqlalchemy import event

    writer = create_engine(url)
    statements = 0

    def counted(*_: Any) -> None:
        nonlocal statements
        statements += 1

    stop = asyncio.Event()
    listening = asyncio.create_task(DecisionListener(url, waiter).run(stop.is_set))
    while not waiter.listening:  # noqa: ASYNC110 (a bench: polled)
        await asyncio.sleep(0.05)
    for round_ in range(2):
        ids = [f"one_reg_{round_}_{n}" for n in range(200)]
        await asyncio.gather(*(reporter.record(_pending(i)) for i in ids))
        event.listen(engine.sync_engine, "before_cursor_execute", counted)
        statements = 0
        started = time.process_time()
        for rid in ids:
            decided = row(rid, "approved")
            async with writer.begin() as conn:
                await repository.upsert(conn, registrations, [decided], ("id",))
                await notify_registrations(conn, [rid], {rid: decided})
            while rid in reporter.pending:  # noqa: ASYNC110 (the rule ran: deleted)
                await asyncio.sleep(0.001)
        spent = time.process_time() - started
        event.remove(engine.sync_engine, "before_cursor_execute", counted)
        print(f"round {round_}: decided one at a time through NOTIFY: "
              f"{spent * 1000 / len(ids):.3f} ms CPU each (both sides), "
              f"{statements / len(ids):.2f} statements by the re-reporter's engine each")
    stop.set()
    await listening
    await writer.dispose()


if __name__ == "__main__":
    asyncio.run(main())
