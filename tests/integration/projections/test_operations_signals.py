"""Observability end to end with real traffic and real failures: `/metrics` counts what
happened, `/readyz` fails on a crash-looping worker and on an unreachable database or Kafka
(cut with a real TCP proxy), workers restart with back-off, and a request's `traceparent`
reaches the decision events and the webhook a real receiver gets."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from dealreg.app import create_app
from shared import tracing
from shared.eventlog import TopicPartition
from shared.events import decode
from shared.settings import Settings
from tests.integration.projections.system_support import ADMIN, Running, registration, submit
from tests.integration.projections.test_notifications import (
    Env,
    _env,
    deliveries,
    open_dispute,
    until,
)
from tests.support.proxy import tcp_proxy
from tests.support.receivers import Reply
from tests.support.servers import ServerHandle, create_database

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


# --- metrics after real traffic -------------------------------------------------------------

@pytest.fixture
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with _env(request, tmp_path, readiness_cache_seconds=0) as e:
        yield e


async def test_metrics_count_requests_decisions_deliveries_and_dead_letters(env: Env) -> None:
    system = env.system
    before = await scrape(system.admin)
    domain = "metrics-one.com"
    first = await submit(system.admin, registration("p-1", domain))
    second = await submit(system.admin, registration("p-2", domain))
    assert second["status"] == "in_review"
    missing = await system.admin.get("/v1/registrations/reg_nope")
    assert missing.status_code == 404
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=system.command_app),
                                 base_url="http://dealreg") as anonymous:
        assert (await anonymous.get("/v1/registrations")).status_code == 401
        assert (await anonymous.get("/no/such/path")).status_code == 404
    await env.hook.wait_for(1)

    async def delivered() -> bool:
        return {d["status"] for d in await deliveries(system)} == {"delivered"}
    await until(delivered)
    await system.settle()
    after = await scrape(system.admin)

    http = "dealreg_http_requests_total"
    assert grew(before, after, http, method="POST", route="/v1/registrations",
                status="201") == 2
    assert grew(before, after, http, method="GET", route="/v1/registrations/{registration_id}",
                status="404") == 1
    assert grew(before, after, http, method="GET", route="/v1/registrations",
                status="401") == 1
    assert grew(before, after, http, method="GET", route="(unmatched)", status="404") == 1
    assert grew(before, after, "dealreg_http_request_duration_seconds_count",
                method="POST", route="/v1/registrations") == 2
    assert grew(before, after, "dealreg_http_request_duration_seconds_sum",
                method="POST", route="/v1/registrations") > 0
    # Decisions by rule: the two registrations' decisions and the dispute they opened.
    rules = [first["decision"]["rule"], second["decision"]["rule"]]
    for rule in set(rules):
        assert grew(before, after, "dealreg_adjudicator_decisions_by_rule_total",
                    type="registration.decided", rule=rule) == rules.count(rule)
    assert sum(v for (name, labels), v in after.items()
               if name == "dealreg_adjudicator_decisions_by_rule_total"
               and ("type", "dispute.opened") in labels) >= 1
    lag = [v for (name, _), v in after.items() if name == "dealreg_adjudicator_lag_records"]
    assert lag and sum(lag) == 0
    attempts = "dealreg_notification_attempts_total"
    assert grew(before, after, attempts, channel="webhook", outcome="delivered") == 1
    assert grew(before, after, attempts, channel="email", outcome="delivered") == 1
    assert value(after, "dealreg_notification_outbox", status="pending") == 0
    assert value(after, "dealreg_notification_outbox", status="delivered") == 2
    for worker in ("adjudicator", "projections", "notifications"):
        assert value(after, "dealreg_worker_up", worker=worker) == 1
    assert value(after, "dealreg_dependency_up", dependency="eventlog") == 1
    assert value(after, "dealreg_dependency_up", dependency="database") == 1

    # A webhook that fails every scheduled attempt becomes a dead letter.
    env.hook.replies = [Reply(500)] * 3
    await open_dispute(system)

    async def dead() -> bool:
        return any(d["status"] == "dead" for d in await deliveries(system))
    await until(dead)
    last = await scrape(system.admin)
    assert grew(after, last, "dealreg_notification_dead_letters_total", channel="webhook") == 1
    assert grew(after, last, attempts, channel="webhook", outcome="failed") == 2
    assert grew(after, last, attempts, channel="webhook", outcome="dead") == 1
    assert value(last, "dealreg_notification_outbox", status="dead") == 1


# --- traceparent from the request to the decision and the webhook ----------------------------

@pytest.fixture(params=["embedded", "distributed"])
async def any_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with _env(request, tmp_path, request.param) as e:
        yield e


async def _decisions_and_intake(system: Running) -> list[Any]:
    runtime = system.query_app.state.runtime
    found = []
    for topic in (runtime.topics.intake, runtime.topics.decisions):
        for tp, end in (await runtime.eventlog.end_positions(topic)).items():
            async for batch in runtime.eventlog.read(TopicPartition(topic, tp.partition), 0,
                                                     end):
                found.extend((topic, *decode(r.value)) for r in batch)
    return found


async def test_a_registrations_traceparent_reaches_its_decisions_and_the_webhook(
        any_env: Env) -> None:
    system, hook = any_env.system, any_env.hook
    domain = f"traced-{system.backend}.com"
    with capture_logs() as logs:
        await submit(system.admin, registration("p-1", domain))
        response = await system.admin.post(
            "/v1/registrations", json=registration("p-2", domain),
            headers={"Prefer": "wait=15", "traceparent": TRACE, "tracestate": "vendor=x"})
        assert response.status_code == 201, response.text
        second = response.json()
        assert second["status"] == "in_review"
        [webhook] = await hook.wait_for(1)
        await system.settle()

        async def attempted() -> bool:
            return any(e["event"] == "notification_attempt" for e in logs)
        await until(attempted)

    # The intake event carries the request's context as CloudEvents extension attributes.
    events = await _decisions_and_intake(system)
    [submitted] = [env for t, env, _ in events
                   if t.endswith("intake") and env.traceparent == TRACE]
    assert submitted.tracestate == "vendor=x"
    assert submitted.data["registration_id"] == second["id"]
    # Every decision derived from it carries it too; the first registration (no header)
    # started a trace of its own, which its decision carries.
    derived = [(env, ev) for t, env, ev in events
               if t.endswith("decisions") and env.id.startswith(submitted.id + ".")]
    assert {ev.TYPE for _, ev in derived} >= {"dealreg.registration.decided.v1",
                                              "dealreg.dispute.opened.v1"}
    assert all(env.traceparent == TRACE and env.tracestate == "vendor=x" for env, _ in derived)
    [first] = [env for t, env, _ in events
               if t.endswith("intake") and env.id != submitted.id]
    others = [env for t, env, _ in events
              if t.endswith("decisions") and env.id.startswith(first.id + ".")]
    assert others and all(env.traceparent == first.traceparent for env in others)
    assert tracing.trace_id_of(first.traceparent) not in (None, TRACE_ID)
    # The webhook the receiver got carries the trace.
    assert tracing.trace_id_of(webhook.headers["traceparent"]) == TRACE_ID
    assert webhook.headers["tracestate"] == "vendor=x"
    # And so do the log lines of the chain: the access line, the queued notification, the
    # delivery attempt.
    [access] = [e for e in logs if e["event"] == "http_request"
                and e.get("trace_id") == TRACE_ID]
    assert access["route"] == "/v1/registrations" and access["status"] == 201
    assert access["role"] == "admin" and access["method"] == "POST"
    queued = [e for e in logs if e["event"] == "notification_queued"]
    assert queued and all(e["trace_id"] == TRACE_ID for e in queued)
    sent = [e for e in logs if e["event"] == "notification_attempt"
            and e["channel"] == "webhook"]
    assert sent and sent[0]["trace_id"] == TRACE_ID


async def test_a_request_without_a_traceparent_starts_a_trace_of_its_own(env: Env) -> None:
    with capture_logs() as logs:
        response = await env.system.admin.post(
            "/v1/registrations", json=registration("p-1", "untraced-start.com"),
            headers={"traceparent": "not-a-traceparent"})
    assert response.status_code in (201, 202)
    events = await _decisions_and_intake(env.system)
    [submitted] = [e for t, e, ev in events if t.endswith("intake")
                   and e.data.get("registration_id") == response.json()["id"]]
    started = tracing.TraceContext.parse(submitted.traceparent)
    assert started is not None and started.trace_id != TRACE_ID
    [access] = [e for e in logs if e["event"] == "http_request"]
    assert access["trace_id"] == started.trace_id


async def test_opentelemetry_spans_are_exported_when_configured(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert tracing.configure_otel("console", service="dealreg-test")
    try:
        response = await env.system.admin.post(
            "/v1/registrations", json=registration("p-1", "spans.com"),
            headers={"traceparent": TRACE})
        assert response.status_code in (201, 202)
    finally:
        tracing.configure_otel("off")
    printed = capsys.readouterr().out
    assert '"name": "http.request"' in printed
    assert f'"trace_id": "0x{TRACE_ID}"' in printed
    assert '"parent_id": "0xb7ad6b7169203331"' in printed
    # The event carries the server span's context: the same trace, the span as parent.
    events = await _decisions_and_intake(env.system)
    [submitted] = [e for t, e, _ in events if t.endswith("intake")
                   and e.data.get("registration_id") == response.json()["id"]]
    context = tracing.TraceContext.parse(submitted.traceparent)
    assert context is not None and context.trace_id == TRACE_ID
    assert context.span_id != "b7ad6b7169203331"
    assert f'"span_id": "0x{context.span_id}"' in printed


# --- readiness and back-off with real failures ---------------------------------------------

def _settings(**overrides: Any) -> dict[str, Any]:
    return {"worker_backoff_initial_seconds": 0.2, "worker_backoff_max_seconds": 0.8,
            "worker_healthy_seconds": 3.0, "worker_crash_limit": 3,
            "readiness_cache_seconds": 0, "readiness_timeout_seconds": 2.0, **overrides}


@contextlib.asynccontextmanager
async def _app(settings: Settings, components: frozenset[Any] | None = None
               ) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(settings, components) if components else create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dealreg",
            headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as client:
        yield app, client


async def test_a_crash_looping_worker_backs_off_and_fails_readiness(tmp_path: Path) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN,
                        **_settings())
    async with _app(settings) as (app, client):
        assert (await client.get("/readyz")).status_code == 200
        starts: list[float] = []
        fifth = asyncio.Event()

        async def broken() -> None:  # a component that really fails on every start
            starts.append(time.monotonic())
            if len(starts) == 5:
                fifth.set()
            raise ConnectionError("the downstream refuses")

        with capture_logs() as logs:
            app.state.runtime.supervise("broken", broken)
            await asyncio.wait_for(fifth.wait(), 10)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        delays = [e["backoff_seconds"] for e in logs if e["event"] == "worker_crashed_restarting"
                  and e["worker"] == "broken"][:4]
        # Exponential with jitter in [d/2, d]: 0.2, 0.4, 0.8, then capped at 0.8; each
        # restart really waited its delay (not once a second, not at once).
        for delay, ceiling in zip(delays, (0.2, 0.4, 0.8, 0.8), strict=True):
            assert ceiling / 2 <= delay <= ceiling, delays
        for gap, delay in zip(gaps, delays, strict=True):
            assert delay - 0.01 <= gap < delay + 1.0, (gaps, delays)
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        detail = ready.json()["detail"]["workers"]["broken"]
        assert detail["ready"] is False and detail["restarts"] >= 4
        assert "the downstream refuses" in detail["last_error"]
        assert detail["state"] == "backoff"
        assert ready.json()["detail"]["workers"]["projections"]["ready"] is True
        samples = await scrape(client)
        assert value(samples, "dealreg_worker_restarts_total", worker="broken") >= 4
        assert value(samples, "dealreg_worker_up", worker="broken") == 0


async def test_one_crash_is_unready_only_until_the_restart(tmp_path: Path) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN,
                        **_settings(worker_backoff_initial_seconds=1.0))
    async with _app(settings) as (app, client):
        runs = 0

        async def flaky() -> None:
            nonlocal runs
            runs += 1
            if runs == 1:
                raise RuntimeError("first start fails")
            await app.state.runtime._stopped.wait()

        app.state.runtime.supervise("flaky", flaky)
        await asyncio.sleep(0.1)
        assert (await client.get("/readyz")).status_code == 503
        deadline = time.monotonic() + 5
        while (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "never ready again"
            await asyncio.sleep(0.05)
        assert runs == 2


async def test_a_worker_cancelled_from_inside_is_restarted_not_lost(tmp_path: Path) -> None:
    """A client library may cancel a future the worker awaits (aiokafka does when its
    sender routine dies with the broker): the worker then ends with CancelledError although
    nobody cancelled it. It used to end the supervised worker for good, leaving the process
    up and its partitions undecided (found by the fault suite, a Kafka restart)."""
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN,
                        **_settings(worker_backoff_initial_seconds=0.1))
    async with _app(settings) as (app, client):
        runs = 0

        async def cancelled_inside() -> None:
            nonlocal runs
            runs += 1
            if runs == 1:
                raise asyncio.CancelledError()
            await app.state.runtime._stopped.wait()

        app.state.runtime.supervise("cancelled", cancelled_inside)
        deadline = time.monotonic() + 10
        while runs < 2 or (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, f"not restarted (runs={runs})"
            await asyncio.sleep(0.05)
        assert app.state.runtime.workers["cancelled"].restarts == 1


async def test_readiness_fails_while_the_database_or_kafka_is_unreachable(
        request: pytest.FixtureRequest, unique: str) -> None:
    kafka: ServerHandle = request.getfixturevalue("kafka_server")
    postgres: ServerHandle = request.getfixturevalue("postgres_server")
    database = make_url(await create_database(postgres.url, f"r_{unique}"))
    kafka_host, kafka_port = kafka.url.split(",")[0].rsplit(":", 1)
    async with tcp_proxy(database.host or "127.0.0.1", database.port or 5432) as db_proxy, \
            tcp_proxy(kafka_host, int(kafka_port)) as kafka_proxy:
        base = dict(backend="distributed", admin_token=ADMIN, topic_prefix=f"r-{unique}",
                    topic_partitions=2, adjudicator_group=f"adj-{unique}",
                    projections_group=f"proj-{unique}", **_settings())
        direct = Settings(kafka_bootstrap_servers=kafka.url,
                          database_url=database.render_as_string(hide_password=False), **base)
        proxied = Settings(
            kafka_bootstrap_servers=f"127.0.0.1:{kafka_proxy.port}",
            database_url=database.set(host="127.0.0.1", port=db_proxy.port,
                                      password=database.password or "s3cret-pw")
            .render_as_string(hide_password=False), **base)
        async with _app(direct, frozenset({"registration"})) as (_, commands), \
                _app(direct, frozenset({"adjudication"})), \
                _app(proxied, frozenset({"projections"})) as (projections, queries), \
                contextlib.AsyncExitStack() as stack:
            assert (await queries.get("/readyz")).status_code == 200

            # (Logs captured, not rendered: a traceback per crash would slow the loop.)
            logs = stack.enter_context(capture_logs())
            await db_proxy.cut()
            started = time.monotonic()
            ready = await queries.get("/readyz")
            assert time.monotonic() - started < 5  # time-bounded
            assert ready.status_code == 503
            down = ready.json()["detail"]["dependencies"]["database"]
            assert down["ok"] is False and f":{db_proxy.port}/" in down["error"]
            assert (database.password or "s3cret-pw") not in down["error"]  # masked
            assert "***" in down["error"]
            # The projection worker really fails when it must write, and backs off.
            await submit(commands, registration("p-1", f"outage-{unique}.com"), wait=0)
            worker = projections.state.runtime.workers["projections"]
            deadline = time.monotonic() + 20
            while worker.restarts < 2:
                assert time.monotonic() < deadline, "the worker never crashed"
                await asyncio.sleep(0.05)
            samples = await scrape(commands)  # the registry is shared in this process
            assert value(samples, "dealreg_worker_restarts_total", worker="projections") >= 2
            crashes = [e for e in logs if e["event"] == "worker_crashed_restarting"
                       and e["worker"] == "projections"]
            assert len(crashes) >= 2 and all(e["backoff_seconds"] <= 0.8 for e in crashes)

            await db_proxy.restore()
            deadline = time.monotonic() + 20
            while (await queries.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "not ready after the database returned"
                await asyncio.sleep(0.1)

            await kafka_proxy.cut()
            ready = await queries.get("/readyz")
            assert ready.status_code == 503
            kafka_down = ready.json()["detail"]["dependencies"]["eventlog"]
            assert kafka_down["ok"] is False
            assert f"127.0.0.1:{kafka_proxy.port}" in kafka_down["error"]
            await kafka_proxy.restore()
            deadline = time.monotonic() + 20
            while (await queries.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "not ready after Kafka returned"
                await asyncio.sleep(0.1)


# --- ingested CloudEvents bring their own trace ---------------------------------------------

async def test_an_ingested_cloudevents_trace_is_the_one_its_event_carries(env: Env) -> None:
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    structured = {"specversion": "1.0", "id": "prm-1", "source": "urn:prm:test",
                  "type": "dealreg.registration.submitted.v1", "traceparent": TRACE,
                  "tracestate": "prm=1", "data": registration("p-1", "ingested-one.com")}
    response = await env.system.admin.post(
        "/v1/events", content=orjson.dumps(structured),
        headers={"content-type": "application/cloudevents+json", "traceparent": other})
    assert response.status_code == 202, response.text
    [first] = response.json()["results"]
    binary = await env.system.admin.post(
        "/v1/events", content=orjson.dumps(registration("p-1", "ingested-two.com")),
        headers={"content-type": "application/json", "ce-specversion": "1.0",
                 "ce-id": "prm-2", "ce-source": "urn:prm:test",
                 "ce-type": "dealreg.registration.submitted.v1", "ce-traceparent": TRACE,
                 "traceparent": other})
    assert binary.status_code == 202, binary.text
    [second] = binary.json()["results"]
    events = await _decisions_and_intake(env.system)
    by_registration = {e.data.get("registration_id"): e for t, e, _ in events
                       if t.endswith("intake")}
    assert by_registration[first["resource"]["id"]].traceparent == TRACE
    assert by_registration[first["resource"]["id"]].tracestate == "prm=1"
    assert by_registration[second["resource"]["id"]].traceparent == TRACE
