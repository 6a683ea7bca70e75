"""Load shedding: an overloaded process answers 503 with `Retry-After` before its queues or
pools run dry, never 500.

`LoadShedding` is pure ASGI middleware, the outermost of the app's own, with two guards,
both answering an RFC 9457 problem (`application/problem+json`) with `Retry-After`
(seconds, `Settings.overload_retry_after_seconds`):

- **In flight**: at most `Settings.max_in_flight_requests` requests are inside the
  application at once; the next one is refused at the door, before its body is read or any
  work is done. This bounds the event loop's own queue (uvicorn's `limit_concurrency`, set
  above it, would answer a bare 503 without `Retry-After`). Operations endpoints
  (`/healthz`, `/readyz`, `/metrics`) are never shed: an orchestrator must see an
  overloaded process as alive.
- **Database pool**: a request that waited `Settings.db_pool_timeout_seconds` for a pooled
  connection (SQLAlchemy's pool `TimeoutError`, from any layer: authentication, handler,
  wait) is answered 503, not 500, when nothing was sent yet. Without a connection nothing
  was written, so a retry is safe.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api.problems import Problem, problem_response
from shared.logging import get_logger

log = get_logger(__name__)

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
SHED = Counter("dealreg_http_requests_shed_total",
               "Requests answered 503 because the process was overloaded", ["reason"])
IN_FLIGHT = Gauge("dealreg_http_requests_in_flight", "Requests inside the application")


def overloaded(retry_after: int, detail: str) -> Problem:
    return Problem(503, "Service unavailable", detail,
                   headers={"Retry-After": str(retry_after)})



class StartWatch:
    """A `send` that remembers whether the response has started: a middleware that answers
    in place of a failed request (a 503) may do so only before the application did."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)

class LoadShedding:
    def __init__(self, app: ASGIApp, *, limit: int, retry_after: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = retry_after
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if 0 < self.limit <= self.in_flight:
            SHED.labels("in_flight").inc()
            await problem_response(overloaded(
                self.retry_after,
                f"This process is at its limit of {self.limit} requests in flight "
                "(DEALREG_MAX_IN_FLIGHT_REQUESTS); nothing was done."))(scope, receive, send)
            return
        tracking = StartWatch(send)
        self.in_flight += 1
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, tracking)
        except PoolTimeout:
            if tracking.started:
                raise
            SHED.labels("db_pool").inc()
            log.warning("db_pool_exhausted_request_shed", path=scope["path"])
            await problem_response(overloaded(
                self.retry_after,
                "No database connection became free in time (DEALREG_DB_POOL_SIZE, "
                "DEALREG_DB_POOL_TIMEOUT_SECONDS); nothing was done."))(scope, receive, send)
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()
