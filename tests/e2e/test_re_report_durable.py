"""The post-decision re-report is durable and waits for a decision however late (DESIGN.md,
"Two first registrations racing across partitions"; services/registration/rereports.py).

Two partners register one customer at the same moment under keys on two intake
partitions (a domain; a name + CRM id), through two registration processes, so each
edge report is built before the other registration is in the read model and both
partitions approve. Only the re-report after the decisions brings them into one
`cross_key` review (invariant 1). It used to be a task per request that waited at most
60 s (`RE_REPORT_WAIT`) and died with its process: here the decisions come late (the
adjudicator is held), and the registration processes stop (cleanly, or crash) between
their appends and the decisions; the re-report still runs, exactly one review opens,
and nothing is left pending.

Embedded: the step-by-step pipeline (tests/support/pipeline.py) holds the adjudicator and
moves the simulated clock hours ahead. Distributed: real Kafka and PostgreSQL, the
adjudicator's process started only after both registration processes stopped.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from dealreg.app import create_app
from services.registration.adapters.tables import re_reports
from services.registration.handlers import Commands
from services.registration.models import RegistrationRequest
from shared.eventlog.partitioner import partition_for
from shared.readmodel.schema import disputes
from shared.readmodel.store import create_engine
from shared.settings import Settings
from tests.e2e.conftest import ADMIN, _serve
from tests.support.pipeline import ADMIN as ADMIN_PRINCIPAL
from tests.support.pipeline import Pipeline, SimClock, simulated_time
from tests.support.servers import ServerHandle, create_database

PARTITIONS = 3
NAME = "Austin-Adams"


def _accounts(partitions: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same customer by domain and by name + CRM id, under keys on two partitions."""
    domain, crm = "austinadams.com", "0010AUS"
    while partition_for(f"dom:{domain}", partitions) == partition_for(f"crm:{crm}",
                                                                       partitions):
        crm += "X"
    return ({"name": NAME, "domain": domain, "country": "US"},
            {"name": NAME, "crm_account_id": crm, "country": "US"})


def _body(partner: str, account: dict[str, Any]) -> dict[str, Any]:
    return {"partner_id": partner, "account": account, "motion": "resell",
            "opportunity": {"title": "Rollout", "products": ["analytics"]}}


def _crash(commands: Commands) -> None:
    """The process dies: its re-reporter hears no more decisions, sweeps no more and does
    not release its leases (its rows are taken over once they run out)."""
    reporter = commands.re_reporter
    reporter.waiter.observers.remove(reporter.notify)
    reporter._stopped = True
    reporter._stopping.set()

    async def dead() -> None:
        return None

    reporter.stop = dead  # type: ignore[method-assign]


# --- embedded: the step-by-step pipeline ----------------------------------------------

async def _embedded_race(root: Path, stop: str) -> tuple[list[dict[str, Any]], int]:
    clock = SimClock()
    pipeline = Pipeline(root, clock, partitions=PARTITIONS)
    with simulated_time(clock):
        await pipeline.start()
        try:
            for partner in ("p-a", "p-b"):
                await pipeline.commands.reference.put_partner(partner, {
                    "name": partner, "type": "reseller", "tier": "gold",
                    "status": "active"}, by="test")
            other = await pipeline.other_edge()
            by_domain, by_crm = _accounts(PARTITIONS)
            a = await pipeline.commands.submit_registration(
                ADMIN_PRINCIPAL, RegistrationRequest.model_validate(_body("p-a", by_domain)))
            b = await other.submit_registration(
                ADMIN_PRINCIPAL, RegistrationRequest.model_validate(_body("p-b", by_crm)))
            assert a.status_code == b.status_code == 202
            ids = {a.body.id, b.body.id}  # type: ignore[attr-defined]
            lease = timedelta(seconds=pipeline.settings.re_report_lease_seconds)
            if stop == "late":
                # Hours pass before the adjudicator decides; both processes sweep meanwhile
                # (their leases renewed): nothing is dropped, nothing times out.
                for _ in range(3):
                    clock.advance(timedelta(hours=1))
                    for edge in (pipeline.commands, other):
                        await edge.re_reporter.sweep()
            elif stop == "weekend":
                # The projection worker died on Friday evening and is restarted on Monday
                # (the adjudicator decided meanwhile: both approved). Nothing reached the
                # read model for two days, yet the registrations were appended: the
                # processes' hourly sweeps must not drop their rows as orphans.
                for _ in range(60):
                    clock.advance(timedelta(hours=1))
                    for edge in (pipeline.commands, other):
                        await edge.re_reporter.sweep()
                        await edge.re_reporter.settled()
            elif stop == "restart":
                # Both processes stop cleanly before the decisions; one starts again.
                await pipeline.drop_edge(other)
                await pipeline.restart()
            else:
                # Both crash; a new process starts, and takes their rows over once their
                # leases ran out (its sweep; before that it holds none of them).
                _crash(pipeline.commands)
                _crash(other)
                pipeline.edges.remove(other)
                pipeline.commands = Commands(pipeline.runtime)
                await pipeline.commands.start()
                assert not pipeline.commands.re_reporter.pending
                clock.advance(lease + timedelta(seconds=1))
                await pipeline.commands.re_reporter.sweep()
                assert set(pipeline.commands.re_reporter.pending) == ids
            await pipeline.pump()
            async with pipeline.runtime.engine.connect() as conn:
                found = [dict(r._mapping) for r in await conn.execute(
                    select(disputes).where(disputes.c.reason == "cross_key"))]
                left = (await conn.execute(select(func.count()).select_from(re_reports))
                        ).scalar_one()
            return [d for d in found if ids & set(d["registration_ids"])], left
        finally:
            await pipeline.close()


@pytest.mark.parametrize("stop", ["late", "weekend", "restart", "crash"])
def test_a_race_decided_late_or_after_a_restart_is_re_reported_into_one_review(
        tmp_path: Path, stop: str) -> None:
    reviews, left = asyncio.run(_embedded_race(tmp_path, stop))
    assert len(reviews) == 1, (stop, reviews)
    assert reviews[0]["status"] == "open", reviews
    assert len(reviews[0]["registration_ids"]) == 2, reviews
    assert left == 0, f"{left} re-report(s) still pending after the decisions"


# --- distributed: real Kafka and PostgreSQL ---------------------------------------------

async def _open_cross_key(queries: httpx.AsyncClient, ids: set[str]) -> list[dict[str, Any]]:
    page = await queries.get("/v1/disputes", params={"limit": 500})
    assert page.status_code == 200, page.text
    return [d for d in page.json()["items"]
            if d["reason"] == "cross_key" and ids & set(d["registration_ids"])]


async def test_a_race_decided_after_both_registration_processes_stopped_meets_in_one_review(
    kafka_server: ServerHandle, postgres_server: ServerHandle, unique: str,
) -> None:
    """Two registration processes append the racing registrations; the adjudicator is
    not running. One process stops cleanly, the other crashes; a third starts. Only then,
    seconds later, does the adjudicator start and decide: the third process re-reports
    both (it took the clean one's rows at once and the crashed one's when their lease ran
    out) and one `cross_key` review opens."""
    database = await create_database(postgres_server.url, f"e2e_{unique}")
    settings = Settings(
        backend="distributed", admin_token=ADMIN, kafka_bootstrap_servers=kafka_server.url,
        database_url=database, topic_prefix=f"e2e-{unique}", topic_partitions=PARTITIONS,
        adjudicator_group=f"adj-{unique}", projections_group=f"proj-{unique}",
        re_report_lease_seconds=2.0, re_report_recheck_seconds=0.5)
    engine = create_engine(database)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        queries = await _serve(stack, create_app(settings, frozenset({"projections"})))
        first, second = AsyncExitStack(), AsyncExitStack()
        one = await _serve(first, create_app(settings, frozenset({"registration"})))
        two = await _serve(second, create_app(settings, frozenset({"registration"})))
        by_domain, by_crm = _accounts(PARTITIONS)
        a, b = await asyncio.gather(
            one.post("/v1/registrations", json=_body("p-a", by_domain)),
            two.post("/v1/registrations", json=_body("p-b", by_crm)))
        assert a.status_code == b.status_code == 202, (a.text, b.text)
        ids = {a.json()["id"], b.json()["id"]}
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(re_reports))
                    ).scalar_one() == 2
        await first.aclose()  # a clean stop: its leases are released
        crashed = two._transport.app.state.commands  # type: ignore[attr-defined]
        _crash(crashed)
        await second.aclose()
        await _serve(stack, create_app(settings, frozenset({"registration"})))
        await asyncio.sleep(3.0)  # the decisions come late
        await _serve(stack, create_app(settings, frozenset({"adjudication"})))
        reviews: list[dict[str, Any]] = []
        for _ in range(300):
            reviews = await _open_cross_key(queries, ids)
            if reviews:
                break
            await asyncio.sleep(0.1)
        assert reviews, "two approvals of one customer and no review"
        await asyncio.sleep(1.0)  # a second report must open nothing
        reviews = await _open_cross_key(queries, ids)
        assert len(reviews) == 1 and set(reviews[0]["registration_ids"]) == ids, reviews
        assert reviews[0]["status"] == "open", reviews
        for _ in range(50):
            async with engine.connect() as conn:
                left = (await conn.execute(select(func.count()).select_from(re_reports))
                        ).scalar_one()
            if left == 0:
                break
            await asyncio.sleep(0.1)
        assert left == 0, f"{left} re-report(s) still pending after the decisions"
