"""Observability pieces that need no server: W3C trace context, the envelope's tracing
extension (events-forever), worker back-off and crash-loop detection, one log format."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from dealreg.runtime import Backoff, WorkerHealth
from shared.events import RegistrationWithdrawn, decode, encode, new_envelope
from shared.tracing import TraceContext, trace_id_of

ROOT = Path(__file__).resolve().parents[2]
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


# --- trace context ----------------------------------------------------------------------

def test_a_valid_traceparent_is_accepted_with_its_tracestate() -> None:
    context = TraceContext.parse(PARENT, "congo=t61rcWkgMzE")
    assert context is not None
    assert context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert context.span_id == "00f067aa0ba902b7"
    assert context.traceparent == PARENT
    assert context.headers() == {"traceparent": PARENT, "tracestate": "congo=t61rcWkgMzE"}


@pytest.mark.parametrize("bad", [
    "", "garbage", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
])
def test_a_malformed_traceparent_is_ignored(bad: str) -> None:
    assert TraceContext.parse(bad) is None
    assert trace_id_of(bad) is None


def test_a_future_version_with_more_fields_is_read_for_its_ids() -> None:
    context = TraceContext.parse(
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")
    assert context is not None and context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_new_trace_and_a_child_share_nothing_and_the_trace_id_respectively() -> None:
    first, second = TraceContext.new(), TraceContext.new()
    assert first.trace_id != second.trace_id
    assert TraceContext.parse(first.traceparent) == first
    child = first.child()
    assert child.trace_id == first.trace_id and child.span_id != first.span_id


# --- the envelope's distributed-tracing extension ------------------------------------------

def _event() -> RegistrationWithdrawn:
    return RegistrationWithdrawn(registration_id="reg_1", partner_id="p-1",
                                 account_key="dom:a.com",
                                 withdrawn_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_an_event_with_a_trace_carries_it_as_cloudevents_attributes() -> None:
    envelope = new_envelope(_event(), id="evt_1", source="urn:t", subject="dom:a.com",
                            time=datetime(2026, 1, 1, tzinfo=UTC), traceparent=PARENT,
                            tracestate="a=b")
    raw = orjson.loads(encode(envelope))
    assert raw["traceparent"] == PARENT and raw["tracestate"] == "a=b"
    again, event = decode(encode(envelope))
    assert again.traceparent == PARENT and again.tracestate == "a=b"
    assert event == _event()


def test_an_untraced_event_is_written_exactly_as_before_the_extension() -> None:
    envelope = new_envelope(_event(), id="evt_1", source="urn:t", subject="dom:a.com",
                            time=datetime(2026, 1, 1, tzinfo=UTC))
    raw = orjson.loads(encode(envelope))
    assert "traceparent" not in raw and "tracestate" not in raw
    assert set(raw) == {"specversion", "id", "source", "type", "time", "subject",
                        "datacontenttype", "data"}


def test_an_event_written_before_the_extension_still_reads() -> None:
    old = orjson.dumps({
        "specversion": "1.0", "id": "evt_old", "source": "urn:t",
        "type": "dealreg.registration.withdrawn.v1", "time": "2026-01-01T00:00:00+00:00",
        "subject": "dom:a.com", "datacontenttype": "application/json",
        "data": _event().to_data()})
    envelope, event = decode(old)
    assert envelope.traceparent is None and envelope.tracestate is None
    assert event == _event()


# --- worker back-off ------------------------------------------------------------------------

def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, healthy_after=60)
    highs = [backoff.next_delay(ran_for=0.1, rand=lambda: 1.0) for _ in range(6)]
    assert highs == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff = Backoff(initial=0.5, maximum=4.0, healthy_after=60)
    lows = [backoff.next_delay(ran_for=0.1, rand=lambda: 0.0) for _ in range(4)]
    assert lows == [0.25, 0.5, 1.0, 2.0]


def test_backoff_starts_over_after_a_healthy_run() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, healthy_after=10)
    for _ in range(4):
        backoff.next_delay(ran_for=1.0, rand=lambda: 1.0)
    assert backoff.next_delay(ran_for=9.9, rand=lambda: 1.0) == 8.0
    assert backoff.next_delay(ran_for=10.0, rand=lambda: 1.0) == 0.5


def test_a_worker_is_unready_while_restarting_and_when_it_crashes_often() -> None:
    health = WorkerHealth("w", Backoff(0.01, 0.02, healthy_after=5.0))
    health.running()
    assert health.problem(now=health.started_at, crash_limit=3) is None
    health.crashed(RuntimeError("db gone"))
    assert health.problem(now=health.crashes[-1], crash_limit=3) == "restarting"
    assert health.last_error == "RuntimeError: db gone"
    health.running()
    assert health.problem(now=health.crashes[-1], crash_limit=3) is None
    for _ in range(2):
        health.crashed(RuntimeError("again"))
        health.running()
    last = health.crashes[-1]
    assert health.restarts == 3
    assert health.problem(now=last, crash_limit=3) == "crash-looping"
    # Crashes older than the healthy period no longer count.
    assert health.problem(now=last + 5.1, crash_limit=3) is None


# --- one log format -------------------------------------------------------------------------

_LIBRARIES = textwrap.dedent("""
    import logging, sys, warnings
    from shared.logging import configure_logging, get_logger
    configure_logging("INFO", sys.argv[1])
    get_logger("dealreg.test").info("structlog_line", answer=42)
    logging.getLogger("uvicorn.error").warning("Invalid path %s", "/v1/x\\n2026 [info] forged=1")
    logging.getLogger("uvicorn.error").info("Uvicorn running on %s", "http://x")
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 7,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"})
    logging.getLogger("alembic.runtime.migration").info("Running upgrade  -> 0001")
    logging.getLogger("aiokafka.consumer").warning("Heartbeat failed")
    logging.getLogger("aiokafka.consumer").info("chatty join")
    logging.getLogger("httpx").info(
        "HTTP Request: GET http://q:8080/v1/registrations?api_key=LEAKED (200 OK)")
    logging.getLogger("httpcore.connection").debug("connect_tcp.started host=LEAKED")
    warnings.warn("a SQLAlchemy-style warning", UserWarning, stacklevel=1)
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("sqlalchemy.pool").exception("pool failure")
""")


def _run(fmt: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _LIBRARIES, fmt], cwd=ROOT, text=True,
                          capture_output=True, timeout=60, env={"PYTHONPATH": str(ROOT)},
                          check=True)
    return [line for line in done.stderr.splitlines() if line.strip()]


def test_every_library_logs_in_the_same_json_format() -> None:
    lines = _run("json")
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    by_event = {r["event"].strip(): r for r in records}
    assert by_event["structlog_line"]["answer"] == 42
    assert by_event["Uvicorn running on http://x"]["logger"] == "uvicorn.error"
    assert by_event["Running upgrade  -> 0001"]["logger"] == "alembic.runtime.migration"
    assert by_event["Heartbeat failed"]["level"] == "warning"
    assert "chatty join" not in by_event  # aiokafka's INFO chatter is kept out
    # httpx logs every URL it requests (the gateway's proxied query strings, webhook URLs
    # whose path is their secret): never at INFO.
    assert not any("LEAKED" in line for line in lines), lines
    [warning] = [r for r in records if r["logger"] == "py.warnings"]
    assert "a SQLAlchemy-style warning" in warning["event"]
    assert "ZeroDivisionError" in by_event["pool failure"]["exception"]
    assert all("timestamp" in r and "level" in r for r in records)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_uvicorns_coloured_duplicate_of_its_message_is_not_logged(fmt: str) -> None:
    lines = _run(fmt)
    assert any("Started server process [7]" in line for line in lines), lines
    assert not any("color_message" in line or "\x1b[36m" in line for line in lines), lines


def test_the_console_format_is_for_people() -> None:
    lines = _run("console")
    # A value cannot forge a line of its own (a path with %0A in it): shown escaped.
    assert not any(line.startswith("2026 [info] forged") for line in lines), lines
    assert any("Invalid path /v1/x\\n2026 [info] forged=1" in line for line in lines), lines
    assert not any(line.lstrip().startswith("{") for line in lines), lines
    assert any("structlog_line" in line and "answer=42" in line for line in lines)
    assert any("Uvicorn running on http://x" in line for line in lines)


# --- metric labels stay bounded ----------------------------------------------------------


def test_a_made_up_http_method_does_not_make_a_new_metric_series() -> None:
    from prometheus_client import REGISTRY

    from shared.metrics import observe_request
    for n in range(3):
        observe_request(f"X-INVENTED-{n}", "(unmatched)", 405, 0.001)
    methods = {sample.labels["method"] for metric in REGISTRY.collect()
               if metric.name == "dealreg_http_requests"
               for sample in metric.samples}
    assert not any(m.startswith("X-INVENTED") for m in methods), methods
    assert "OTHER" in methods
