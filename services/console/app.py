"""The console: server-rendered pages under `/console`, mounted on the FastAPI app.

`mount_console(app, settings)` adds the static files, the sign-in/sign-out pages, every
area's router and the error pages; `/` redirects to `/console/`. Served by `dealreg dev` and
by the query service (projections component) of a distributed deployment.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.console import manager, owner, partner, program
from services.console.client import ApiProblem
from services.console.pages import STATIC, Area, AreaForbidden, areas_for, render
from services.console.session import (
    CARRY_FIELD,
    CsrfRefused,
    FormTooLarge,
    Session,
    SessionCodec,
    Sessions,
    SignInRequired,
    check_signin_csrf,
    form_owner,
    kept_form,
    next_param,
    optional_session,
    read_form,
    safe_next,
    same_user,
    sessions,
    set_signin_cookie,
    signed_in,
    signin_csrf,
)
from shared.api.auth import Authenticator, Principal, TooManyFailures, limit_failures
from shared.api.ratelimit import TokenBuckets, client_key
from shared.settings import Settings

AREAS: list[tuple[Area, APIRouter]] = [
    (partner.AREA, partner.router),
    (owner.AREA, owner.router),
    (manager.AREA, manager.router),
    (program.AREA, program.router),
]
"""Every area, in nav order."""

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
async def console_root() -> Response:
    return RedirectResponse("/console/", status_code=302)


@router.get("/")
async def home(request: Request,
               session: Annotated[Session | None, Depends(optional_session)]) -> Response:
    if session is None:
        return RedirectResponse("/console/sign-in", status_code=303)
    allowed = areas_for(session.role)
    if allowed:
        return RedirectResponse(allowed[0].path, status_code=303)
    return render(request, "home.html", session)


def _signin_page(request: Request, *, error: str | None = None, status_code: int = 200,
                 message: str | None = None, carry: str | None = None,
                 next_path: str | None = None) -> Response:
    """The sign-in page; `carry`: a form refused for want of a session, sealed to its
    user (`SessionCodec.seal_form`), offered again once that user signs in (`next_path`:
    where it was sent)."""
    token = signin_csrf(request)
    response = render(request, "signin.html", None, status_code=status_code, error=error,
                      message=message, signin_csrf=token, carry=carry or "",
                      carry_field=CARRY_FIELD,
                      next=safe_next(next_path or request.query_params.get("next")))
    set_signin_cookie(response, request, token)
    return response


KEPT_AFTER_SIGN_IN = ("Your session ended, so your form was not sent. Sign in again to "
                      "check it and send it: nothing you typed is lost.")
KEPT_AFTER_STALE_TOKEN = ("Your form was not sent: it came from a page shown before your "
                          "latest sign-in, so its security token is stale.")
KEPT_SIGNED_IN = "You are signed in again. Your form was not sent yet: check it and send it."
_UNSHOWN = frozenset({"idempotency_key", "back"})


def _resume_page(request: Request, session: Session, action: str,
                 fields: list[tuple[str, str]], why: str, status_code: int) -> Response:
    """A form that was not sent, offered to send again under `session` (its CSRF token):
    what was typed, and one button. Nothing is sent until the user presses it."""
    shown = [(name.replace(".", " ").replace("_", " "), value) for name, value in fields
             if name not in _UNSHOWN and value.strip()]
    return render(request, "resume.html", session, status_code=status_code, action=action,
                  fields=fields, shown=shown, why=why)


@router.get("/sign-in")
async def signin_form(request: Request,
                      session: Annotated[Session | None, Depends(optional_session)]) -> Response:
    if session is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    signed_out = request.query_params.get("signed_out") == "1"
    return _signin_page(request, message="You are signed out." if signed_out else None)


def _too_many_signins(request: Request, wait: float, carry: str | None,
                      next_path: str | None) -> Response:
    response = _signin_page(request, status_code=429, error="Too many failed sign-ins from "
                            "this address; wait a moment and try again.", carry=carry,
                            next_path=next_path)
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


@router.post("/sign-in", dependencies=[Depends(check_signin_csrf)])
async def signin(request: Request) -> Response:
    form = await read_form(request)
    token = (form.get("api_key") or "").strip()
    sealed = form.get(CARRY_FIELD)
    carry = sealed if isinstance(sealed, str) and sealed else None
    authenticator: Authenticator = request.app.state.authenticator
    # Failed sign-ins are counted per address by the API's rule (`limit_failures`): a
    # guess is counted before its key is looked up, and past the limit no key is even
    # tried, so a right guess among the refused ones does not sign in (a weak admin token
    # included), however many are sent at once.
    failures: TokenBuckets | None = request.app.state.console_signin_failures
    client = client_key(request.client.host) if request.client else "-"

    async def attempt() -> Principal | None:
        return await authenticator.authenticate(token) if token else None

    try:
        principal = await limit_failures(failures, client, time.monotonic, attempt)
    except TooManyFailures as exc:
        return _too_many_signins(request, exc.wait, carry, form.get("next"))
    if principal is None:
        return _signin_page(request, status_code=401, error="That API key is unknown or "
                            "revoked.", carry=carry, next_path=form.get("next"))
    target = safe_next(form.get("next"))
    session = sessions(request).new(token, principal.role, principal.subject_id)
    # Offered again only to the user whose page the form was: another user signing in
    # on that browser gets their own start page, never the previous user's form.
    kept = sessions(request).codec.open_form(
        carry, sessions(request).codec.owner_tag(principal.role, principal.subject_id))
    response = (_resume_page(request, session, target, kept, KEPT_SIGNED_IN, 200)
                if kept and target == form.get("next") else
                RedirectResponse(target, status_code=303))
    sessions(request).attach(response, request, session)
    return response


@router.post("/sign-out")
async def signout(request: Request,
                  session: Annotated[Session, Depends(signed_in)]) -> Response:
    response = RedirectResponse("/console/sign-in?signed_out=1", status_code=303)
    sessions(request).sign_out(response, session, time.time())
    return response


for _area, _router in AREAS:
    router.include_router(_router)


# --- error pages -------------------------------------------------------------------------


async def _sign_in_required(request: Request, _: Exception) -> Response:
    target = f"/console/sign-in?next={next_param(request)}"
    if request.headers.get("hx-request"):
        # Back to the page the user was on, not to the fragment it polled (signing in
        # again from the owner's queue landed on a bare, unstyled table of rows).
        shown = urlsplit(request.headers.get("hx-current-url") or "")
        page = shown.path + (f"?{shown.query}" if shown.query else "")
        if safe_next(page) == page:
            target = f"/console/sign-in?next={quote(page, safe='')}"
        return Response(status_code=401, headers={"HX-Redirect": target})
    kept = await kept_form(request)
    owner = await form_owner(request) if kept else None
    if kept and owner and safe_next(request.url.path) == request.url.path:
        # A form sent after the session ended: the sign-in page carries it, sealed to the
        # user whose page it was, so that what was typed is offered again once that user
        # signs in (not sent until confirmed); nobody else reads or gets it.
        response = _signin_page(
            request, status_code=401, message=KEPT_AFTER_SIGN_IN, next_path=request.url.path,
            carry=sessions(request).codec.seal_form(owner, kept))
    else:
        response = RedirectResponse(target, status_code=303)
    Sessions.end(response)
    return response


async def _forbidden(request: Request, exc: Exception) -> Response:
    session = await optional_session(request)
    area = exc.area if isinstance(exc, AreaForbidden) else None
    return render(request, "error.html", session, status_code=403, title="Not for your role",
                  detail=f"The {area.label if area else 'requested'} area is not available "
                         f"to the {session.role.replace('_', ' ') if session else ''} role.")


async def _csrf(request: Request, exc: Exception) -> Response:
    session = await optional_session(request)
    kept = await kept_form(request) if session is not None else None
    if session is not None and kept and safe_next(request.url.path) == request.url.path \
            and await same_user(request, session):
        # Signed in, but the page is from an earlier sign-in of the same user: offer the
        # form again under this session's token rather than drop what was typed (another
        # user's page, a shared machine: never, `same_user`).
        return _resume_page(request, session, request.url.path, kept,
                            KEPT_AFTER_STALE_TOKEN, 403)
    return render(request, "error.html", session, status_code=403,
                  title="Request refused", detail=str(exc))


async def _too_large(request: Request, exc: Exception) -> Response:
    """A form over `MAX_FORM_BYTES`: 413, refused before anything read it (it was a 403
    "Request refused", as if its token were wrong: a reload would not have helped)."""
    session = await optional_session(request)
    return render(request, "error.html", session, status_code=413,
                  title="Form too large", detail=str(exc))


async def _api_problem(request: Request, exc: Exception) -> Response:
    session = await optional_session(request)
    assert isinstance(exc, ApiProblem)
    if exc.status == 401:
        return await _sign_in_required(request, exc)
    return render(request, "error.html", session, status_code=exc.status, title=exc.title,
                  detail=exc.detail)


def _html_not_found(fallback: Any) -> Any:
    """A console URL that matches no page gets an HTML page; anything else the app's
    problem response."""

    async def handler(request: Request, exc: Exception) -> Response:
        if isinstance(exc, StarletteHTTPException) and request.url.path.startswith("/console") \
                and exc.status_code in (404, 405):
            session = await optional_session(request)
            return render(request, "error.html", session, status_code=exc.status_code,
                          title="Not found" if exc.status_code == 404 else "Not allowed",
                          detail="There is no such console page.")
        response: Response = await fallback(request, exc)
        return response

    return handler


def mount_console(app: FastAPI, settings: Settings) -> None:
    """Serve the console on `app` (sessions keyed by `DEALREG_SESSION_SECRET`)."""
    app.state.console_sessions = Sessions(SessionCodec(settings.session_secret), settings)
    app.state.console_signin_failures = (
        TokenBuckets(settings.auth_failure_limit_per_second, settings.auth_failure_burst)
        if settings.auth_failure_limit_per_second > 0 else None)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(router)
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(AreaForbidden, _forbidden)
    app.add_exception_handler(CsrfRefused, _csrf)
    app.add_exception_handler(FormTooLarge, _too_large)
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(StarletteHTTPException, _html_not_found(
        app.exception_handlers[StarletteHTTPException]))

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/console/", status_code=302)
