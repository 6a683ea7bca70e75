"""The FastAPI application factory: routers of the components this process runs."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dealreg.runtime import ALL, Component, Runtime
from services.console.app import mount_console
from services.projections.api import routers as query_routers
from services.registration.api import routers as command_routers
from shared.api.access import RequestContext, RouteTemplates
from shared.api.auth import AuthenticateFirst, Authenticator, bearer_token
from shared.api.backpressure import LoadShedding
from shared.api.openapi import install_docs, install_openapi, operation_id
from shared.api.problems import Problem, install_problem_handlers, problem_responses
from shared.api.ratelimit import TokenBuckets
from shared.api.resources import Health
from shared.settings import Settings


def ops_required(settings: Settings) -> bool:
    """Whether `/metrics` and the detail of `/readyz` need a token (unset: yes; `dev` sets
    it to no unless configured)."""
    return settings.ops_token_required is not False


async def ops_authorized(request: Request, settings: Settings,
                         authenticator: Authenticator) -> bool:
    """The caller may see operations detail: the endpoints are open, or it sent the ops
    token or an admin credential."""
    if not ops_required(settings):
        return True
    header = request.headers.get("authorization")
    if not header:
        return False
    try:
        token = bearer_token(header)
    except Problem:
        return False
    if settings.ops_token and hmac.compare_digest(token.encode(), settings.ops_token.encode()):
        return True
    principal = await authenticator.authenticate(token)
    return principal is not None and principal.role == "admin"


def rate_limits(settings: Settings) -> tuple[TokenBuckets | None, TokenBuckets | None]:
    """(per API key, per client address for failed authentications); None: disabled."""
    keys = (TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst)
            if settings.rate_limit_per_second > 0 else None)
    failures = (TokenBuckets(settings.auth_failure_limit_per_second,
                             settings.auth_failure_burst)
                if settings.auth_failure_limit_per_second > 0 else None)
    return keys, failures


def create_app(settings: Settings, components: frozenset[Component] = ALL) -> FastAPI:
    runtime = Runtime.build(settings, components)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="dealreg",
        version="1.0.0",
        summary="Deal registration and channel-conflict resolution",
        description="Who owns this customer deal? See the README for the rules of engagement.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None, redoc_url=None,  # served from local files (install_docs)
    )
    install_openapi(app)
    install_docs(app)
    app.state.runtime = runtime
    app.state.authenticator = runtime.authenticator
    install_problem_handlers(app)
    # Outermost first on the way in: request id, then authentication (before the body
    # limits, parameter validation, look-ups and waits of everything under /v1).
    keys, failures = rate_limits(settings)
    app.add_middleware(AuthenticateFirst, authenticator=runtime.authenticator, keys=keys,
                       auth_failures=failures)
    app.add_middleware(RequestContext)
    # Outermost: an overloaded process refuses at the door (503 + Retry-After), not later.
    app.add_middleware(LoadShedding, limit=settings.max_in_flight_requests,
                       retry_after=settings.overload_retry_after_seconds)
    # Every /v1 operation can answer these two before its own code runs.
    guarded = problem_responses(401, 429)
    if "registration" in components:
        for router in command_routers:
            app.include_router(router, responses=guarded)
    if "projections" in components:
        for router in query_routers:
            app.include_router(router, responses=guarded)
    # Route templates of requests answered before routing (401, 429) for logs and metrics.
    RouteTemplates.install(app, [*(command_routers if "registration" in components else ()),
                                 *(query_routers if "projections" in components else ())])

    if "projections" in components:
        # The console (web UI) reads and acts through /v1 (in-process, or
        # DEALREG_CONSOLE_API_URL): served wherever the queries are.
        mount_console(app, settings)

    @app.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["operations"],
             responses={503: {"model": Health}},
             description="Readiness. The detail (workers, backend, projection lag) only "
                         "with the operations token when `DEALREG_OPS_TOKEN_REQUIRED`.")
    async def readyz(request: Request, response: Response) -> Health:
        # Not ready: starting or stopping, a worker crash-looping (or waiting to restart),
        # or the event log / database not answering (time-bounded, cached briefly).
        unhealthy = runtime.unhealthy_workers()
        dependencies = await runtime.checks.dependencies() if runtime.ready else {}
        down = {name: why for name, why in dependencies.items() if why is not None}
        ok = runtime.ready and not unhealthy and not down
        status = "ok" if ok else ("starting" if not runtime.ready else "degraded")
        if not ok:
            response.status_code = 503
        if not await ops_authorized(request, settings, runtime.authenticator):
            return Health(status=status)
        now = time.monotonic()
        workers = {name: {**health.detail(now), "ready": name not in unhealthy}
                   for name, health in runtime.workers.items()}
        detail: dict[str, object] = {
            "backend": settings.backend, "workers": workers,
            "dependencies": {name: {"ok": why is None, "error": why}
                             for name, why in dependencies.items()}}
        if runtime.projection_worker is not None:
            # Per-partition lag of the read models (also exported on /metrics).
            detail["projections"] = runtime.projection_worker.lag.report.detail()
        return Health(status=status, detail=detail)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if not await ops_authorized(request, settings, runtime.authenticator):
            raise Problem(401, "Unauthorized",
                          "Send `Authorization: Bearer <ops token>` (DEALREG_OPS_TOKEN).",
                          headers={"WWW-Authenticate": "Bearer"})
        if runtime.ready:
            await runtime.checks.measure()  # gauges of stored state, bounded and cached
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
