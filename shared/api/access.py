"""The outermost HTTP middleware: request id, trace context, access log line and metrics.

For every HTTP request: a request id (the caller's `X-Request-ID`, else a new one, echoed
in the response), the W3C trace context (the caller's `traceparent` / `tracestate`, else a
new trace; an OpenTelemetry server span when tracing is configured), both bound to every
log line made while it is served; then one access log line (`http_request`) and the HTTP
metrics (`shared.metrics`), by route template, never by raw path, so ids in paths do not
multiply the series. Requests for the probes and `/metrics` are logged at DEBUG.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from typing import Any

import structlog
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics, tracing
from shared.ids import new_id
from shared.logging import get_logger

log = get_logger("dealreg.access")

QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
UNMATCHED = "(unmatched)"


def route_template(scope: Scope) -> str:
    """The route template that served (or would have served) the request, e.g.
    `/v1/registrations/{registration_id}`; `(unmatched)` for paths no route has. A request
    answered before routing (a 401 or 429 under `/v1`) is matched against the templates
    the app registered (`RouteTemplates.install`)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    templates = getattr(getattr(scope.get("app"), "state", None), "route_templates", None)
    if isinstance(templates, RouteTemplates):
        return templates.match(str(scope.get("path", "")), str(scope.get("method", "GET")))
    return UNMATCHED


class RouteTemplates:
    """Path templates as regular expressions, for requests answered before routing."""

    def __init__(self, routes: Iterable[Any]) -> None:
        self.paths: list[tuple[re.Pattern[str], str, frozenset[str]]] = []
        for route in routes:
            template, methods = getattr(route, "path", None), getattr(route, "methods", None)
            if isinstance(template, str):
                regex, _, _ = compile_path(template)
                self.paths.append((regex, template, frozenset(methods or ())))

    @classmethod
    def install(cls, app: Any, routers: Iterable[Any]) -> None:
        """Register the routes of the routers `app` includes (each route's path has its
        router's prefix)."""
        app.state.route_templates = cls(r for router in routers for r in router.routes)

    def match(self, path: str, method: str) -> str:
        other: str | None = None
        for regex, template, methods in self.paths:
            if regex.match(path):
                if method.upper() in methods:
                    return template
                other = other or template  # the path exists, the method does not (405)
        return other or UNMATCHED


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestContext:
    """Pure ASGI middleware; add it last (outermost)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = incoming[:100] if incoming else new_id("req")
        parent = tracing.TraceContext.parse(_header(scope, b"traceparent"),
                                            _header(scope, b"tracestate"))
        status = 500
        method = str(scope.get("method", "GET"))

        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = int(message["status"]), True
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id), \
                tracing.span("http.request", parent or tracing.TraceContext.new(), "server",
                             **{"http.request.method": method,
                                "url.path": scope.get("path")}) as trace:
            try:
                await self.app(scope, receive, send_with_id)
            except (PoolTimeout, asyncio.CancelledError):
                # No response yet: `LoadShedding` (outside) answers a pool time-out 503 +
                # Retry-After; the access log and metrics said 500 for those answers (seen
                # in the bench). A request the server's stop cancels is answered 503 by
                # `dealreg.server.CutShort` (outermost).
                if not answered:
                    status = 503
                raise
            finally:
                self._done(scope, method, status, time.perf_counter() - started,
                           trace.trace_id if trace is not None else None)

    def _done(self, scope: Scope, method: str, status: int, seconds: float,
              trace_id: str | None) -> None:
        route = route_template(scope)
        metrics.observe_request(method, route, status, seconds)
        principal: Any = (scope.get("state") or {}).get("principal")
        access_line(scope, method, route, status, seconds, trace_id,
                    role=getattr(principal, "role", None),
                    subject=getattr(principal, "subject_id", None))


def access_line(scope: Scope, method: str, route: str, status: int, seconds: float,
                trace_id: str | None, **extra: Any) -> None:
    """The one access log line (`http_request`) of a served request, for the services
    and `dealreg gateway` alike: the path without its query string, never a header
    (so no token); the request id comes from the bound context. 5xx at ERROR, the
    probes and `/metrics` at DEBUG, the rest at INFO."""
    client = scope.get("client")
    fields = {
        "method": method, "route": route, "path": scope.get("path"), "status": status,
        "duration_ms": round(seconds * 1000, 2), **extra,
        "client": client[0] if client else None, "trace_id": trace_id,
    }
    if status >= 500:
        log.error("http_request", **fields)
    elif scope.get("path") in QUIET_PATHS:
        log.debug("http_request", **fields)
    else:
        log.info("http_request", **fields)
