"""`ConsoleApi`: the console's only way to read or change anything.

Every screen calls the public /v1 API with the signed-in user's own API key, so roles, the
partner view (what a partner may learn about competitors) and problem details are exactly
the API's: there is one authorization and redaction path, not a second one for the UI.
In-process the calls go through `httpx.ASGITransport` to the same app (no socket, no second
server); with `DEALREG_CONSOLE_API_URL` they go over HTTP to that front door instead (the
query service of a distributed deployment, which has no command routes of its own).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from starlette.datastructures import ImmutableMultiDict

from services.console.session import Session

_INTERNAL_BASE = "http://console.internal"
IDEMPOTENT_TWIN_WAIT = 5.0
"""How long (beyond `Prefer: wait`) a resubmitted form waits for its first submission."""


@dataclass(slots=True)
class ApiProblem(Exception):
    """A /v1 answer outside 2xx, as its RFC 9457 problem: shown to the user, with
    `errors[]` next to the form fields they name."""

    status: int
    title: str
    detail: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, response: httpx.Response) -> ApiProblem:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
        return cls(response.status_code, str(body.get("title") or response.reason_phrase),
                   body.get("detail"), [{"field": str(e.get("field", "")),
                                         "message": str(e.get("message", ""))}
                                        for e in errors])

    def field_errors(self, prefix: str = "") -> dict[str, str]:
        """`{field path: message}`, e.g. `{"account.domain": "..."}` (first message per
        field; `prefix` is stripped)."""
        out: dict[str, str] = {}
        for e in self.errors:
            name = e["field"].removeprefix(prefix)
            out.setdefault(name, e["message"])
        return out


_FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


def form_key(form: ImmutableMultiDict[str, str] | None = None) -> str:
    """The `Idempotency-Key` of a command form (register, claim, extend, withdraw, contest,
    release, acknowledge, resolve): drawn when the form is shown, sent back with every
    submission of it, so a double click or a resubmitted page applies the command once and
    gets the first answer again (a second registration would be rejected as a duplicate, a
    second extension would use up another one, a second resolve was "already resolved")."""
    sent = (form.get("idempotency_key") or "") if form is not None else ""
    return sent if _FORM_KEY.fullmatch(sent) else secrets.token_urlsafe(18)


def item_key(key: str, item: str) -> str:
    """The key of one command of a form that sends several (bulk acknowledge)."""
    return hashlib.sha256(f"{key}\0{item}".encode()).hexdigest()[:32]


def seg(value: str) -> str:
    """An id as one segment of a /v1 path: quoted, so a `?`, `#`, `/` or `%` in an id taken
    from a console URL cannot turn the call into another request (`/v1/disputes/?` is the
    dispute list, which a page then read as one dispute: a 500)."""
    return quote(str(value), safe="")


def _checked(path: str) -> str:
    """A /v1 path as the console builds it; a `?` or `#` in it is an id that was not
    passed through `seg`, answered as the API would answer an unknown id."""
    if "?" in path or "#" in path:
        raise ApiProblem(404, "Not found", "There is no such object.")
    return path


def unreachable(exc: httpx.TransportError) -> ApiProblem:
    """The API did not answer (down, refused, timed out): a 503 page, not a 500."""
    what = "did not answer in time" if isinstance(exc, httpx.TimeoutException) \
        else "could not be reached"
    return ApiProblem(503, "Service unavailable",
                      f"The dealreg API {what}; try again in a moment (a form you sent may or "
                      "may not have been applied: look before sending it again).")


def shared_client(app: FastAPI, base_url: str | None) -> httpx.AsyncClient:
    """One pooled client per app (kept on `app.state`)."""
    client = getattr(app.state, "console_http", None)
    if client is None:
        if base_url:
            client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=35.0)
        else:
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                       base_url=_INTERNAL_BASE, timeout=35.0)
        app.state.console_http = client
    return cast(httpx.AsyncClient, client)


class ConsoleApi:
    """The /v1 API as the signed-in user."""

    def __init__(self, client: httpx.AsyncClient, session: Session,
                 request_id: str | None = None) -> None:
        self._client = client
        self._headers = {"Authorization": f"Bearer {session.token}",
                         "Accept": "application/json"}
        if request_id:
            self._headers["X-Request-ID"] = request_id

    @classmethod
    def of(cls, request: Request, session: Session) -> ConsoleApi:
        settings = request.app.state.runtime.settings
        return cls(shared_client(request.app, settings.console_api_url), session,
                   request.headers.get("x-request-id"))

    async def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                   json: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        """The JSON body of a 2xx answer (None when empty), else raises `ApiProblem`."""
        try:
            response = await self._client.request(
                method, _checked(path), params=_clean(params), json=json,
                headers={**self._headers, **(headers or {})})
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        if response.status_code >= 400:
            raise ApiProblem.of(response)
        if not response.content:
            return None
        return response.json()

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def download(self, path: str, accept: str, **params: Any) -> httpx.Response:
        """A 2xx answer as it came (e.g. a CSV the API rendered), else raises `ApiProblem`."""
        try:
            response = await self._client.get(_checked(path), params=_clean(params),
                                              headers={**self._headers, "Accept": accept})
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        if response.status_code >= 400:
            raise ApiProblem.of(response)
        return response

    async def post(self, path: str, json: Any = None, *, wait: float | None = None,
                   idempotency_key: str | None = None) -> Any:
        """POST; with `idempotency_key` a twin of a request still running is waited for
        (the API answers 409 until the first finishes), then gets the first one's answer.
        A key already used for another body (a form page kept from an earlier submission,
        then changed) is a new request: it is sent once more under a fresh key."""
        headers = {"Prefer": f"wait={wait:g}"} if wait else {}
        if idempotency_key is None:
            return await self.call("POST", path, json=json, headers=headers)
        headers["Idempotency-Key"] = idempotency_key
        deadline = time.monotonic() + (wait or 0) + IDEMPOTENT_TWIN_WAIT
        while True:
            try:
                return await self.call("POST", path, json=json, headers=headers)
            except ApiProblem as problem:
                if problem.status == 422 and problem.title == "Idempotency key reused" \
                        and headers["Idempotency-Key"] == idempotency_key:
                    headers["Idempotency-Key"] = secrets.token_urlsafe(18)
                    continue
                if problem.status != 409 or "Idempotency-Key" not in (problem.detail or "") \
                        or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(0.2)


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v not in (None, "", [])}
