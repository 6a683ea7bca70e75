"""OpenTelemetry spans through the real path (issue 15): one registration with a
`traceparent` yields, in that trace, the HTTP request's span, the command's append, the
adjudicator's decision, the projections' folding and the notification deliveries, each a
child of the span the event carries. The SDK's in-memory exporter collects them; both
backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing
from tests.integration.projections.system_support import registration, submit
from tests.integration.projections.test_notifications import Env, _env, deliveries, until
from tests.integration.projections.test_operations_signals import (
    TRACE,
    TRACE_ID,
    _decisions_and_intake,
)

CALLER_SPAN = int("b7ad6b7169203331", 16)


@pytest.fixture(params=["embedded", "distributed"])
async def traced(request: pytest.FixtureRequest, tmp_path: Path
                 ) -> AsyncIterator[tuple[Env, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_otel(exporter=exporter, service="dealreg-test")
    try:
        async with _env(request, tmp_path, request.param) as env:
            yield env, exporter
    finally:
        tracing.configure_otel("off")
    assert not tracing.enabled()


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def test_one_registration_yields_the_linked_span_chain(
        traced: tuple[Env, InMemorySpanExporter]) -> None:
    env, exporter = traced
    system = env.system
    domain = f"spans-{system.backend}.com"
    await submit(system.admin, registration("p-1", domain))
    response = await system.admin.post(
        "/v1/registrations", json=registration("p-2", domain),
        headers={"Prefer": "wait=15", "traceparent": TRACE, "tracestate": "vendor=x"})
    assert response.status_code == 201 and response.json()["status"] == "in_review"
    [webhook] = await env.hook.wait_for(1)

    async def delivered() -> bool:
        rows = [d for d in await deliveries(system) if d["type"] == "dispute.opened"]
        return len(rows) == 2 and {d["status"] for d in rows} == {"delivered"}
    await until(delivered)
    await system.settle()

    spans = [s for s in exporter.get_finished_spans()
             if s.context is not None and s.context.trace_id == int(TRACE_ID, 16)]
    named: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        named.setdefault(s.name, []).append(s)
    # The request: a child of the caller's span.
    [request] = named["http.request"]
    assert _parent(request) == CALLER_SPAN
    # The append: a child of the request; the intake event carries its context.
    [append] = named["command.append"]
    assert _parent(append) == _id(request)
    events = await _decisions_and_intake(system)
    [submitted] = [e for t, e, _ in events if t.endswith("intake")
                   and e.data.get("registration_id") == response.json()["id"]]
    carried = tracing.TraceContext.parse(submitted.traceparent)
    assert carried is not None and int(carried.span_id, 16) == _id(append)
    assert submitted.tracestate == "vendor=x"
    # The decision and the folding of every event derived from it: children of the append.
    [decide] = named["adjudicator.decide"]
    assert _parent(decide) == _id(append)
    assert decide.attributes is not None and decide.attributes["event_id"] == submitted.id
    applied = named["projection.apply"]
    derived = {e.id for t, e, _ in events if e.id == submitted.id
               or e.id.startswith(submitted.id + ".")}
    assert {_attr(s, "event_id") for s in applied} == derived
    assert {_parent(s) for s in applied} == {_id(append)}
    # The deliveries (webhook and e-mail to the owner): children of the append; the POST
    # a child of its delivery, and the header the receiver got is the POST's span.
    delivered_spans = named["notification.deliver"]
    assert {_attr(s, "channel") for s in delivered_spans} == {"webhook", "email"}
    assert {_parent(s) for s in delivered_spans} == {_id(append)}
    assert {_attr(s, "outcome") for s in delivered_spans} == {"delivered"}
    [post] = named["webhook.deliver"]
    assert _parent(post) in {_id(s) for s in delivered_spans
                             if _attr(s, "channel") == "webhook"}
    header = tracing.TraceContext.parse(webhook.headers["traceparent"])
    assert header is not None and header.trace_id == TRACE_ID
    assert int(header.span_id, 16) == _id(post)
    # Nothing else of this trace was left unlinked.
    ids = {_id(s) for s in spans} | {CALLER_SPAN}
    assert all(_parent(s) in ids for s in spans)


def _attr(span: ReadableSpan, name: str) -> Any:
    return (span.attributes or {}).get(name)
