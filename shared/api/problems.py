"""RFC 9457 problem details for every error, with a field list for validation failures.

Bad input is answered with a 4xx problem, never a 500 and never a stack trace. The request
limits live here too (`RequestLimits`): bodies over the configured size are 413, bodies in a
media type other than JSON are 415, and malformed JSON is 400, before any handler runs.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.busy import sqlite_busy
from shared.logging import get_logger

log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://dealreg.dev/problems/"


class FieldError(BaseModel):
    field: str
    message: str


class ProblemDetail(BaseModel):
    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem response."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_ or TYPE_BASE + title.lower().replace(" ", "-")
        self.errors = errors
        self.headers = headers


def problem_response(problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    return Response(orjson.dumps(body), status_code=problem.status, media_type=PROBLEM_JSON,
                    headers=problem.headers)


_TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 406: "Not acceptable", 409: "Conflict",
    413: "Payload too large", 415: "Unsupported media type", 422: "Validation failed",
    429: "Too many requests", 503: "Service unavailable",
}


def _field(loc: tuple[Any, ...]) -> str:
    # A body field is named by its path, a query parameter by its name (`as_of`).
    parts = [str(p) for i, p in enumerate(loc) if not (i == 0 and p in ("body", "query"))]
    return ".".join(parts) if parts else "body"


def install_problem_handlers(app: FastAPI) -> None:
    """Problem responses for every error, and the request limits (`RequestLimits`)."""
    app.add_middleware(RequestLimits)

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return problem_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        title = _TITLES.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem_response(Problem(exc.status_code, title, detail,
                                        headers=getattr(exc, "headers", None)))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(Problem(400, "Malformed JSON",
                                            "The request body is not valid JSON."))
        return problem_response(Problem(
            422, "Validation failed", "The request has invalid fields.",
            errors=[{"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg"))}
                    for e in errors],
        ))

    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    async def _store(request: Request, exc: Exception) -> Response:
        if not store_unreachable(exc):
            return await _unexpected(request, exc)
        log.warning("store_unreachable_request_refused", path=request.url.path,
                    error=repr(exc))
        return problem_response(Problem(
            503, "Service unavailable",
            "The database could not be reached (restarting or unreachable). Retry with the "
            "same Idempotency-Key: a command applies once.",
            headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)}))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", error=repr(exc))
        return problem_response(Problem(500, "Internal error",
                                        "Something failed on our side; nothing was applied "
                                        "unless a 2xx was returned."))


STORE_RETRY_AFTER_SECONDS = 2

# Connection-level failures of a driver (asyncpg, sqlite3): the store is restarting or
# unreachable, which is a 503 to retry, not a defect (500).
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError, asyncpg.AdminShutdownError)


def store_unreachable(exc: BaseException) -> bool:
    """True for a database connection that failed or was lost (restart, network), or a
    SQLite database locked past its busy timeout, as opposed to a statement that failed on
    a healthy connection."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _CONNECTION_ERRORS):
            return True
        if sqlite_busy(current):
            return True  # SQLite busy past its timeout: contention, retry later
        if isinstance(current, DBAPIError) and current.orig is not None \
                and current.orig is not current:
            current = current.orig
        else:
            current = current.__cause__ or current.__context__
    return False


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemDetail, "content": {PROBLEM_JSON: {}}, "description": title}
    for code, title in _TITLES.items()
    if code in (400, 401, 403, 404, 409, 413, 415, 422)
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the given problem status codes."""
    return {
        code: {"model": ProblemDetail, "content": {PROBLEM_JSON: {}},
               "description": _TITLES.get(code, "Error")}
        for code in codes
    }


# --- request limits ----------------------------------------------------------------------

DEFAULT_MAX_BODY = 1_048_576
FORM_PATHS = ("/console/",)
"""Where HTML forms are posted (`application/x-www-form-urlencoded`): exempt from JSON-only."""
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` when a streamed body passes the limit: FastAPI re-raises HTTP
    exceptions met while reading the body, so the problem handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


def is_json_media_type(content_type: str) -> bool:
    """`application/json` or any `application/*+json` (problem, cloudevents, batch)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class RequestLimits:
    """Pure ASGI middleware: body size limit (413) and JSON-only bodies (415, except the
    console's forms under `FORM_PATHS`).

    On the hot path it costs a header scan; the body is counted chunk by chunk as the
    handler reads it, so a chunked upload without `Content-Length` is cut off at the limit
    instead of being buffered whole. The limit is `Settings.max_body_bytes` of the app's
    runtime when there is one.
    """

    def __init__(self, app: ASGIApp, max_body: int | None = None) -> None:
        self.app = app
        self._max = max_body

    def _limit(self, scope: Scope) -> int:
        if self._max is None:
            runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
            settings = getattr(runtime, "settings", None)
            self._max = int(getattr(settings, "max_body_bytes", DEFAULT_MAX_BODY))
        return self._max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        length: int | None = None
        content_type: str | None = None
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        if length is not None and length < 0:
            await problem_response(Problem(400, "Bad request", "Invalid Content-Length."))(
                scope, receive, send)
            return
        if length is not None and length > limit:
            await problem_response(Problem(
                413, "Payload too large", f"The request body is larger than {limit} bytes."
            ))(scope, receive, send)
            return
        if content_type is not None and length != 0 and not is_json_media_type(content_type) \
                and not scope["path"].startswith(FORM_PATHS):
            await problem_response(Problem(
                415, "Unsupported media type",
                f"Send JSON (`application/json`), not {content_type.split(';')[0]!r}.",
            ))(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)
