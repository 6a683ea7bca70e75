"""W3C Trace Context (`traceparent`, `tracestate`) carried from a request to its consequences.

The HTTP edge accepts a caller's `traceparent` (or starts a trace), every event it appends
carries it in the envelope as the CloudEvents distributed-tracing extension, the
adjudicator copies it onto the decisions it derives from that event (unchanged, so a
replayed decision is byte-identical), the projections copy it onto the notifications they
queue, and the delivery worker sends it as the webhook's `traceparent` header. Every log
line of that chain carries the `trace_id`.

The current context lives in a contextvar (set by the HTTP middleware for one request, or
around one event's work by a worker); `shared.logging` adds its `trace_id` to log lines.

OpenTelemetry spans (`span()`) are made only when an exporter is configured
(`OTEL_EXPORTER_OTLP_ENDPOINT`, or `DEALREG_OTEL=console`); otherwise `span()` costs a
contextvar look-up and nothing is exported. The spans of one command, all in the trace of
the request's `traceparent`:

    http.request (server)                      the HTTP edge
    └─ command.append (producer)               the append; the events carry this span
       ├─ adjudicator.decide (consumer)        each intake event decided
       ├─ projection.apply (consumer)          each event folded, spanning its batch
       └─ notification.deliver                 each delivery attempt (webhook or e-mail)
          └─ webhook.deliver (client)          the HTTP POST; its context is the header

Decisions carry their input's context unchanged (a replay stays byte-identical), so the
projection and the notifications of a decision are children of the append as well.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import secrets
import sys
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_MAX_TRACESTATE = 512


@dataclass(frozen=True, slots=True)
class TraceContext:
    """One W3C trace context: the trace id, the parent span id, flags, and `tracestate`."""

    trace_id: str
    span_id: str
    flags: str = "01"
    tracestate: str | None = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    @classmethod
    def parse(cls, traceparent: str | None, tracestate: str | None = None
              ) -> TraceContext | None:
        """The context of a `traceparent` value; None if absent or malformed (W3C: a
        malformed header is ignored and a new trace started)."""
        if not traceparent:
            return None
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match is None:
            return None
        version, trace_id, span_id, flags, rest = match.groups()
        if version == "ff" or (version == "00" and rest):
            return None
        if trace_id == "0" * 32 or span_id == "0" * 16:
            return None
        state = tracestate.strip()[:_MAX_TRACESTATE] if tracestate else None
        return cls(trace_id, span_id, flags, state or None)

    @classmethod
    def new(cls) -> TraceContext:
        """A new trace (sampled)."""
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    def child(self) -> TraceContext:
        """The same trace with a new span id (what a hop that takes part sends on)."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags, self.tracestate)

    def headers(self) -> dict[str, str]:
        out = {"traceparent": self.traceparent}
        if self.tracestate:
            out["tracestate"] = self.tracestate
        return out


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a stored `traceparent` (None if absent or malformed)."""
    context = TraceContext.parse(traceparent)
    return context.trace_id if context is not None else None


_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "dealreg_trace", default=None)


def current() -> TraceContext | None:
    return _current.get()


@contextlib.contextmanager
def using(context: TraceContext | None) -> Iterator[TraceContext | None]:
    """Make `context` the current trace context inside the block."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def set_current(context: TraceContext | None) -> None:
    """Set the current context for the rest of this task (the HTTP middleware, which runs
    each request in its own task)."""
    _current.set(context)


def add_trace_id(_: Any, __: str, event_dict: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
    """structlog processor: the current trace id on every log line made inside a trace."""
    context = _current.get()
    if context is not None and "trace_id" not in event_dict:
        event_dict["trace_id"] = context.trace_id
    return event_dict


# --- OpenTelemetry (optional) -------------------------------------------------------------

_tracer: Any = None


def enabled() -> bool:
    """Whether spans are made (an exporter is configured)."""
    return _tracer is not None


def configure_otel(mode: str | None = None, service: str = "dealreg",
                   exporter: Any = None) -> bool:
    """Install an OpenTelemetry tracer provider when an exporter is configured: `console`
    (spans printed to standard output) or OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`), or `exporter` (a
    `SpanExporter`, exported synchronously: the tests' in-memory one). Off otherwise, and
    off (with a warning) when the SDK is not installed (`pip install 'dealreg[otel]'`).
    True: spans are exported."""
    global _tracer
    mode = (mode or "").strip().lower() or None
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if exporter is None and (mode in ("off", "none") or (mode is None and not endpoint)):
        _tracer = None
        return False
    from shared.logging import get_logger

    log = get_logger(__name__)
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError:
        log.warning("otel_sdk_missing", hint="pip install 'dealreg[otel]'")
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif mode == "console":
        # The stream of now: the exporter's default is `sys.stdout` as it was when the SDK
        # was first imported (a stream since replaced, e.g. by a test's capture).
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout)))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("otel_otlp_exporter_missing",
                        hint="pip install opentelemetry-exporter-otlp-proto-http")
            return False
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = provider.get_tracer("dealreg")
    log.info("otel_enabled", exporter=type(exporter).__name__ if exporter is not None
             else mode or "otlp", service=service)
    return True


def _otel_parent(parent: TraceContext | None) -> Any:
    """The OpenTelemetry context whose (remote) parent is `parent`."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    if parent is None:
        return None
    state = TraceState()
    if parent.tracestate:
        with contextlib.suppress(Exception):
            state = TraceState.from_header([parent.tracestate])
    return trace.set_span_in_context(NonRecordingSpan(SpanContext(
        int(parent.trace_id, 16), int(parent.span_id, 16), is_remote=True,
        trace_flags=TraceFlags(int(parent.flags, 16)), trace_state=state)))


def _kind(kind: str) -> Any:
    from opentelemetry.trace import SpanKind

    return {"server": SpanKind.SERVER, "client": SpanKind.CLIENT,
            "consumer": SpanKind.CONSUMER, "producer": SpanKind.PRODUCER
            }.get(kind, SpanKind.INTERNAL)


def annotate(**attributes: Any) -> None:
    """Attributes on the current span (e.g. an outcome known at its end); nothing when
    tracing is off."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(
        {k: v for k, v in attributes.items() if v is not None})


def record_span(name: str, parent: TraceContext | None, start_ns: int, end_ns: int,
                kind: str = "internal", **attributes: Any) -> None:
    """A span that already happened (`time.time_ns()` bounds), child of `parent`: for work
    done for many events at once (a projection batch), one span per event's trace. Nothing
    when tracing is off or the event carries no trace."""
    if _tracer is None or parent is None:
        return
    started = _tracer.start_span(name, context=_otel_parent(parent), kind=_kind(kind),
                                 start_time=start_ns,
                                 attributes={k: v for k, v in attributes.items()
                                             if v is not None})
    started.end(end_time=end_ns)


@contextlib.contextmanager
def span(name: str, parent: TraceContext | None, kind: str = "internal",
         **attributes: Any) -> Iterator[TraceContext | None]:
    """An OpenTelemetry span, child of `parent`, when tracing is configured; yields the
    context a hop forwards (the span's own, or `parent` unchanged when tracing is off)."""
    if _tracer is None:
        with using(parent):
            yield parent
        return
    with _tracer.start_as_current_span(name, context=_otel_parent(parent), kind=_kind(kind),
                                       attributes={k: v for k, v in attributes.items()
                                                   if v is not None}) as current_span:
        ctx = current_span.get_span_context()
        mine = TraceContext(f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}",
                            f"{int(ctx.trace_flags):02x}", parent.tracestate if parent else None)
        with using(mine):
            yield mine
