"""CPU the post-decision re-report costs a registration process while decisions are late.

    PYTHONPATH=$PWD python3 tests/bench/re_report_cpu.py embedded|distributed [N] [SECONDS] [C]

A registration process (no adjudicator: nothing is decided, every re-report stays
pending) files N registrations and N named-account claims of N customers, then idles for
SECONDS; the process's CPU time (`time.process_time`) over that idle window is printed,
beside the same window with nothing pending (the control: the process's own loops). The
difference is what the pending re-reports cost. Also printed: the CPU filing them took
per command (the in-process HTTP client included: compare runs, not absolutes), filed
`C` customers at a time (default 1).
`embedded`: registration + projections in one process (the co-located waiter).
`distributed`: the registration process alone on
a real Kafka broker and PostgreSQL (`DEALREG_TEST_KAFKA_BOOTSTRAP_SERVERS` and
`DEALREG_TEST_DATABASE_URL` when set, else started by tests/support/servers).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import httpx

from dealreg.app import create_app
from shared.settings import Settings

ADMIN = "bench-admin-token"


async def _serve(stack: AsyncExitStack, settings: Settings, components: frozenset[str]
                 ) -> httpx.AsyncClient:
    app = create_app(settings, components)  # type: ignore[arg-type]
    await stack.enter_async_context(app.router.lifespan_context(app))
    return await stack.enter_async_context(httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dealreg",
        headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60))


def _bookkeeping(client: httpx.AsyncClient) -> str:
    """The durable re-reporter's statements, where there is one."""
    commands = client._transport.app.state.commands  # type: ignore[attr-defined]
    reporter = getattr(commands, "re_reporter", None)
    if reporter is None:
        return ""
    return f"; re-reporter: {reporter.writes} writes, {reporter.reads} status reads"


async def _idle(seconds: float) -> float:
    start = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - start


async def measure(backend: str, n: int, seconds: float, concurrency: int) -> None:
    async with AsyncExitStack() as stack:
        unique = uuid.uuid4().hex[:8]
        if backend == "embedded":
            data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            settings = Settings(backend="embedded", data_dir=data, admin_token=ADMIN)
            components = frozenset({"registration", "projections"})
        else:
            from tests.support.servers import create_database, start_kafka, start_postgres

            kafka = os.environ.get("DEALREG_TEST_KAFKA_BOOTSTRAP_SERVERS")
            database = os.environ.get("DEALREG_TEST_DATABASE_URL")
            if not kafka:
                handle = start_kafka()
                stack.callback(handle.stop)
                kafka = handle.url
            if not database:
                handle = start_postgres()
                stack.callback(handle.stop)
                database = handle.url
            database = await create_database(database, f"rrcpu_{unique}")
            settings = Settings(backend="distributed", admin_token=ADMIN,
                                kafka_bootstrap_servers=kafka, database_url=database,
                                topic_prefix=f"rrcpu-{unique}", topic_partitions=3)
            components = frozenset({"registration"})
        client = await _serve(stack, settings, components)
        await asyncio.sleep(2.0)
        control = await _idle(seconds)
        async def file(i: int) -> None:
            r = await client.post("/v1/registrations", json={
                "partner_id": "p-1", "motion": "resell",
                "account": {"name": f"Bench Customer {i}", "domain": f"bench{i}.com",
                            "country": "US"},
                "opportunity": {"title": "Rollout", "products": ["analytics"]}})
            c = await client.post("/v1/claims", json={
                "kind": "named_account", "rep_id": "rep-1",
                "account": {"name": f"Claimed Customer {i}", "crm_account_id": f"00C{i}",
                            "country": "US"}})
            assert r.status_code == 202 and c.status_code == 201, (r.text, c.text)

        filing = time.process_time()
        for start in range(0, n, concurrency):
            await asyncio.gather(*(file(i) for i in range(start, min(n, start + concurrency))))
        filing = time.process_time() - filing
        await asyncio.sleep(2.0)
        pending = await _idle(seconds)
        print(f"{backend}: {n} registrations + {n} claims pending; CPU over {seconds:.0f} s "
              f"idle: control {control:.3f} s, pending {pending:.3f} s, "
              f"re-report cost {pending - control:.3f} s "
              f"({100 * (pending - control) / seconds:.1f} % of a core); filing them "
              f"{1000 * filing / (2 * n):.2f} ms CPU each (client included)"
              f"{_bookkeeping(client)}")


if __name__ == "__main__":
    from tests.bench.common import exit_on_sigterm

    exit_on_sigterm()  # its servers stop when run.py stops it at its timeout
    asyncio.run(measure(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100,
                        float(sys.argv[3]) if len(sys.argv) > 3 else 20.0,
                        int(sys.argv[4]) if len(sys.argv) > 4 else 1))
