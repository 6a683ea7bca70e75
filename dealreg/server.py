"""uvicorn for `dealreg dev`, `serve` and `gateway`: a stop (Ctrl-C, SIGTERM) ends without a
stack trace, and always with the application's own shutdown.

uvicorn alone (0.54) ended two ordinary stops with CancelledError stack traces:

- **A second Ctrl-C** while it drains ("Waiting for connections to close. (CTRL+C to force
  quit)", for a request still in flight) sets its `force_exit`, and it then skips the
  lifespan's shutdown altogether. The lifespan task is left waiting for that message, and
  `asyncio.Runner` cancels it when the loop closes: Starlette reports the CancelledError as
  `lifespan.shutdown.failed` with its traceback (which passes through FastAPI's telemetry
  wrapper of `receive`, fastapi/telemetry/_runtime.py: a pass-through, not the cause), and
  the runtime's stop (workers, the event log's flush, the re-report leases) ran inside
  that cancelled task at the loop's teardown, racing the cancellation of its own workers.
  The request still in flight was cancelled there too, logged as "Exception in ASGI
  application" with its traceback.
- **A request still running when the drain ends** (`timeout_graceful_shutdown`, 10 s: a slow
  client, a long `Prefer: wait`) is cancelled by uvicorn and logged the same way, and
  answered 500.

`Server` keeps uvicorn's meaning of a second Ctrl-C (stop waiting for connections) but runs
the application's shutdown afterwards anyway (bounded: `DEALREG_SHUTDOWN_TIMEOUT_SECONDS`);
`CutShort` answers a request the stop cancels with a 503 problem and `Retry-After` (its
outcome is unknown: retry with the same Idempotency-Key) instead of a stack trace and a 500.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.api.backpressure import StartWatch
from shared.api.problems import Problem, problem_response

CUT_SHORT_RETRY_AFTER_SECONDS = 5
REQUESTS_CANCEL_WAIT_SECONDS = 5.0


class CutShort:
    """Outermost ASGI wrapper: a request the server's stop cancels is answered 503 (when
    nothing was sent yet) and ends without re-raising, so uvicorn logs no stack trace.
    Only while the server stops: any other cancellation propagates untouched."""

    def __init__(self, app: ASGIApp, server: uvicorn.Server) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracking = StartWatch(send)
        try:
            await self.app(scope, receive, tracking)
        except asyncio.CancelledError:
            if not self.server.should_exit:
                raise
            # The access line (`shared.api.access`, inside) says 503 for it already.
            if not tracking.started:
                await problem_response(Problem(
                    503, "Service unavailable",
                    "The service stopped before this request finished: it may or may not "
                    "have taken effect. Retry it (with the same Idempotency-Key) once the "
                    "service is back.",
                    headers={"Retry-After": str(CUT_SHORT_RETRY_AFTER_SECONDS)},
                ))(scope, receive, send)


class Server(uvicorn.Server):
    """uvicorn's server with `CutShort` outermost and the application's shutdown never
    skipped (see the module's docstring)."""

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        super().__init__(uvicorn.Config(CutShort(app, self), **options))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets=sockets)
        if not self.force_exit:
            return
        # A second Ctrl-C: uvicorn stopped waiting for the requests in flight and skipped
        # the lifespan's shutdown. End the requests here (answered by `CutShort`), not at
        # the loop's teardown, then shut the application down as a first Ctrl-C would.
        tasks = list(self.server_state.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=REQUESTS_CANCEL_WAIT_SECONDS)
        done = getattr(self.lifespan, "shutdown_event", None)  # LifespanOn (not Off)
        if done is not None and not done.is_set():
            await self.lifespan.shutdown()
