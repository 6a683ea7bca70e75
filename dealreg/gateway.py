"""`dealreg gateway`: the distributed deployment's front door.

One base URL for the whole API: a small asynchronous reverse proxy that sends each request
to the process that serves it, by method and path (GET and POST of `/v1/registrations` go
to different services), and serves one `/openapi.json` (and `/docs`) describing all of it.

The routing table is not written by hand: it is read from the apps `dealreg serve
registration` and `dealreg serve projections` build (`create_app`), so a route added to
either service is routed without touching this file. Anything the table does not know goes
to the queries (GET, HEAD) or the commands (other methods), where authentication answers it.

Bodies stream both ways (nothing is buffered whole); headers pass through (authorization,
`X-Request-ID`, `Prefer`, `Idempotency-Key`, `ce-*`...) except hop-by-hop ones, with
`X-Forwarded-For/-Proto/-Host` added. An upstream that cannot be reached is a 502 problem,
one that does not answer in time a 504 problem. The gateway holds no state: run several.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import httpx
import orjson
import structlog
from fastapi import FastAPI
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from shared import tracing
from shared.api.access import UNMATCHED, access_line
from shared.api.openapi import ASSETS, SWAGGER_UI, docs_html
from shared.api.problems import PROBLEM_JSON, TYPE_BASE
from shared.ids import new_id
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger(__name__)

Upstream = Literal["commands", "queries"]
SERVICES: Final[dict[Upstream, str]] = {"commands": "registration", "queries": "projections"}
# Served by the gateway itself (each process has its own; the gateway's describe the whole).
LOCAL: Final = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/metrics"})
HOP_BY_HOP: Final = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-connection", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"host", b"content-length"})


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    path: str
    upstream: Upstream


class RouteTable:
    """Which service answers `METHOD path`, read from the services' own routes."""

    def __init__(self, rules: list[Rule], both: set[tuple[str, str]] | None = None) -> None:
        self.rules = rules
        self.both = both or set()
        """`(METHOD, path)` every service serves (routed by the default)."""

    @classmethod
    def of(cls, apps: dict[Upstream, FastAPI]) -> RouteTable:
        rules: list[Rule] = []
        for upstream, app in apps.items():
            for route in _routes(app):
                if route.path in LOCAL or route.path.startswith("/docs"):
                    continue
                methods = frozenset(route.methods or ())
                rules.append(Rule(methods, route.path_regex, route.path, upstream))
        # What both serve (e.g. a page every process has) goes by the default below.
        both = {(m, r.path) for r in rules for m in r.methods
                if any(o.upstream != r.upstream and o.path == r.path and m in o.methods
                       for o in rules)}
        return cls([Rule(frozenset(m for m in r.methods if (m, r.path) not in both),
                         r.pattern, r.path, r.upstream) for r in rules], both)

    @classmethod
    def build(cls) -> RouteTable:
        """From the apps the services build (nothing connects: no lifespan runs)."""
        return cls.of({upstream: _service_app(service)
                       for upstream, service in SERVICES.items()})

    def upstream(self, method: str, path: str) -> Upstream:
        return self.route(method, path)[0]

    def route(self, method: str, path: str) -> tuple[Upstream, str]:
        """The service that answers `METHOD path`, and the route template it matched
        (`(unmatched)` when none did: the default service answers)."""
        for rule in self.rules:
            if method in rule.methods and rule.pattern.match(path):
                return rule.upstream, rule.path
        if method == "HEAD":
            return self.route("GET", path)
        for rule in self.rules:  # a path both serve, or a method the path does not have
            if rule.pattern.match(path):
                return ("queries" if method in ("GET", "HEAD") else "commands"), rule.path
        return ("queries" if method in ("GET", "HEAD") else "commands"), UNMATCHED


def _routes(app: FastAPI) -> list[Route]:
    """Every HTTP route of an app with its full path (FastAPI >= 0.16x keeps included
    routers lazily: `iter_route_contexts` flattens them)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are copied into app.routes
        candidates: list[Any] = list(app.routes)
    else:
        candidates = [context.route for context in iter_route_contexts(app.routes)]
    return [r for r in candidates if isinstance(r, Route) and not isinstance(r, Mount)]


def _describing() -> Settings:
    """Settings for apps that are only looked at (routes, document), never started: explicit
    connection values, so the gateway needs neither the database's nor Kafka's secrets."""
    return Settings(backend="distributed", kafka_bootstrap_servers="127.0.0.1:9092",
                    database_url="postgresql+asyncpg://gateway@127.0.0.1:5432/unused")


def _service_app(service: str) -> FastAPI:
    from dealreg.app import create_app

    return create_app(_describing(), frozenset({service}))  # type: ignore[arg-type]


def whole_document() -> dict[str, Any]:
    """The OpenAPI document of the whole API (commands and queries)."""
    from dealreg.app import create_app

    app = create_app(_describing(), frozenset({"registration", "projections"}))
    return app.openapi()


def _problem(status: int, title: str, detail: str, request_id: str,
             retry_after: int | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = orjson.dumps({"type": TYPE_BASE + title.lower().replace(" ", "-"),
                         "title": title, "status": status, "detail": detail})
    headers = [(b"content-type", PROBLEM_JSON.encode()),
               (b"x-request-id", request_id.encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return status, headers, body


class Gateway:
    """The ASGI app of `dealreg gateway`."""

    def __init__(self, commands_url: str, queries_url: str, *, timeout: float = 60.0,
                 connect_timeout: float = 5.0, table: RouteTable | None = None,
                 document: dict[str, Any] | None = None) -> None:
        self.upstreams: dict[Upstream, str] = {"commands": commands_url.rstrip("/"),
                                               "queries": queries_url.rstrip("/")}
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.table = table or RouteTable.build()
        self.document = orjson.dumps(document or whole_document())
        self.client: httpx.AsyncClient | None = None

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                                trust_env=False,
                                                limits=httpx.Limits(max_connections=1000))
                log.info("gateway_started", **self.upstreams)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve or proxy one request, then write the services' access line
        (`shared.api.access.access_line`) with the upstream that answered."""
        started = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id")
        request_id = incoming.decode("latin-1")[:100] if incoming else new_id("req")
        # The caller's trace, else a new one the services continue (same trace id).
        parent = tracing.TraceContext.parse(
            headers[b"traceparent"].decode("latin-1") if b"traceparent" in headers else None,
            headers[b"tracestate"].decode("latin-1") if b"tracestate" in headers else None)
        trace = parent or tracing.TraceContext.new()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        local = path in LOCAL or path.startswith(ASSETS + "/")
        upstream, route = (None, path if path in LOCAL else ASSETS + "/{name}") if local \
            else self.table.route(method, path)
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                if upstream is None:
                    await self._local(method, path, request_id, sending)
                else:
                    await self._proxy(scope, receive, sending, upstream, request_id,
                                      None if parent is not None else trace)
            finally:
                access_line(scope, method, route, status, time.perf_counter() - started,
                            trace.trace_id,
                            upstream=SERVICES[upstream] if upstream is not None else None)

    async def _respond(self, send: Send, status: int, headers: list[tuple[bytes, bytes]],
                       body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    # -- served here ------------------------------------------------------------------------

    async def _local(self, method: str, path: str, request_id: str, send: Send) -> None:
        rid = (b"x-request-id", request_id.encode())
        if method not in ("GET", "HEAD"):
            await self._respond(send, *_problem(405, "Method not allowed",
                                                f"{path} answers GET.", request_id))
            return
        if path == "/healthz":
            await self._respond(send, 200, [(b"content-type", b"application/json"), rid],
                                b'{"status":"ok","detail":{}}')
        elif path == "/readyz":
            # Ready while either service answers: with one of them down the other half of
            # the API still works, and an unready gateway would close the door on it too.
            detail = {name: await self._healthy(name) for name in self.upstreams}
            answering = [v == "ok" for v in detail.values()]
            status = "ok" if all(answering) else "degraded" if any(answering) else "down"
            body = orjson.dumps({"status": status, "detail": detail})
            await self._respond(send, 200 if any(answering) else 503,
                                [(b"content-type", b"application/json"), rid], body)
        elif path == "/openapi.json":
            await self._respond(send, 200, [(b"content-type", b"application/json"), rid],
                                self.document)
        elif path == "/metrics":
            await self._respond(send, *_problem(
                404, "Not found", "The gateway has no metrics of its own: scrape each "
                "service's /metrics directly (not through the front door).", request_id))
        elif path == "/docs":
            await self._respond(send, 200, [(b"content-type", b"text/html; charset=utf-8"),
                                            rid], docs_html().encode())
        else:
            name = path[len(ASSETS) + 1:]
            asset = SWAGGER_UI / name
            if "/" in name or not asset.is_file():
                await self._respond(send, *_problem(404, "Not found", f"No {path}.",
                                                    request_id))
                return
            kind = {".js": b"text/javascript", ".css": b"text/css",
                    ".png": b"image/png"}.get(asset.suffix, b"application/octet-stream")
            await self._respond(send, 200, [(b"content-type", kind), rid],
                                asset.read_bytes())

    async def _healthy(self, upstream: Upstream) -> str:
        assert self.client is not None
        try:
            response = await self.client.get(f"{self.upstreams[upstream]}/healthz",
                                             timeout=2.0)
        except httpx.HTTPError as exc:
            return f"unreachable ({type(exc).__name__})"
        return "ok" if response.status_code == 200 else f"status {response.status_code}"

    # -- proxied ----------------------------------------------------------------------------

    async def _proxy(self, scope: Scope, receive: Receive, send: Send, upstream: Upstream,
                     request_id: str, trace: tracing.TraceContext | None = None) -> None:
        assert self.client is not None
        headers = [(k, v) for k, v in scope.get("headers") or [] if k not in HOP_BY_HOP
                   and not k.startswith(b"x-forwarded-")]
        if not any(k == b"x-request-id" for k, _ in headers):
            headers.append((b"x-request-id", request_id.encode()))
        if trace is not None:  # the caller sent none: the service continues ours
            headers = [(k, v) for k, v in headers if k not in (b"traceparent", b"tracestate")]
            headers.append((b"traceparent", trace.traceparent.encode()))
        client = scope.get("client")
        original = {k: v for k, v in scope.get("headers") or []}
        if client:
            earlier = original.get(b"x-forwarded-for")
            forwarded = client[0].encode()
            headers.append((b"x-forwarded-for",
                            earlier + b", " + forwarded if earlier else forwarded))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        if b"host" in original:
            headers.append((b"x-forwarded-host", original[b"host"]))
        url = self.upstreams[upstream] + scope.get("raw_path", scope["path"].encode()
                                                   ).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        has_body = scope["method"] in ("POST", "PUT", "PATCH", "DELETE") and (
            b"content-length" in original or b"transfer-encoding" in original)
        if b"content-length" in original:
            headers.append((b"content-length", original[b"content-length"]))
        request = self.client.build_request(
            scope["method"], url, headers=headers,
            content=_body(receive) if has_body else None)
        service = SERVICES[upstream]
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            log.warning("gateway_upstream_timeout", upstream=service, path=scope["path"])
            await self._respond(send, *_problem(
                504, "Gateway timeout", f"The {service} service did not answer in time; "
                "a command may still have been applied: retry with the same "
                "Idempotency-Key.", request_id))
            return
        except httpx.HTTPError as exc:
            log.warning("gateway_upstream_unreachable", upstream=service,
                        error=type(exc).__name__)
            await self._respond(send, *_problem(
                502, "Bad gateway", f"The {service} service is unreachable.", request_id,
                retry_after=1))
            return
        try:
            out = [(k.lower(), v) for k, v in response.headers.raw
                   if k.lower() not in HOP_BY_HOP]
            length = response.headers.get("content-length")
            if length is not None:
                out.append((b"content-length", length.encode()))
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": out})
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
            except httpx.HTTPError as exc:
                # Headers are out: all we can do is end the body (the client sees a short
                # read when it had a Content-Length).
                log.warning("gateway_upstream_broke_off", upstream=service,
                            error=type(exc).__name__)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
