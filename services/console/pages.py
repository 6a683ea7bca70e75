"""What every console screen shares: areas (a nav entry + the roles that may use it),
rendering with the base layout, and time formatting.

Adding an area (see `partner.py` for a full one):

    AREA = Area("owner", "Dispute queue", frozenset({"owner"}))
    router = AREA.router()

    @router.get("/")
    async def queue(request: Request, session: Annotated[Session, Depends(AREA.guard)]):
        api = ConsoleApi.of(request, session)
        return render(request, "owner/queue.html", session, disputes=await api.get(...))

then list `AREA`/`router` in `app.AREAS`. The nav shows the area only to its roles (and
admin); any other signed-in role gets the 403 page, a signed-out user the sign-in page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.responses import Response

from services.console.session import CSRF_FIELD, Session, signed_in
from shared.api.auth import Role

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
STATIC = HERE / "static"

SECURITY_HEADERS = {
    # Only our own files: no inline script or style (not even `style=` attributes: use a
    # class, or SVG presentation attributes for charts), no CDN, nothing framed. The
    # browser tests fail on any violation (`Console.browser_errors`).
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class AreaForbidden(Exception):
    """A signed-in user opened an area its role may not use (answered with the 403 page)."""

    def __init__(self, area: Area) -> None:
        super().__init__(area.key)
        self.area = area


@dataclass(frozen=True, slots=True)
class Area:
    """A part of the console: its URL segment, its nav label, and who may use it."""

    key: str
    label: str
    roles: frozenset[Role]

    @property
    def path(self) -> str:
        return f"/console/{self.key}/"

    def allows(self, role: Role) -> bool:
        return role == "admin" or role in self.roles

    async def guard(self, session: Annotated[Session, Depends(signed_in)]) -> Session:
        """The signed-in user, if its role may use this area (CSRF checked on non-GET)."""
        if not self.allows(session.role):
            raise AreaForbidden(self)
        return session

    def router(self) -> APIRouter:
        """A router for this area's pages, every route behind `guard`."""
        return APIRouter(prefix=f"/{self.key}", dependencies=[Depends(self.guard)])


def areas_for(role: Role) -> list[Area]:
    from services.console.app import AREAS

    return [area for area, _ in AREAS if area.allows(role)]


def render(request: Request, template: str, session: Session | None, *,
           status_code: int = 200, **context: Any) -> Response:
    """A page with the base layout (nav for the user's role, CSRF token, flash message)."""
    nav = areas_for(session.role) if session else []
    response = TEMPLATES.TemplateResponse(request, template, {
        "session": session, "nav": nav, "csrf": session.csrf if session else None,
        "csrf_field": CSRF_FIELD, "path": request.url.path, **context,
    }, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


# --- formatting (Jinja filters) ----------------------------------------------------------


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def timestamp(value: Any) -> Markup:
    """`<time>` in UTC; static/console.js rewrites the text in the viewer's timezone and
    keeps the UTC value as the hover title."""
    moment = _parse(value)
    if moment is None:
        return Markup("&mdash;") if not value else escape(str(value))
    utc = moment.astimezone(UTC)
    iso = utc.isoformat().replace("+00:00", "Z")
    text = utc.strftime("%Y-%m-%d %H:%M UTC")
    return Markup('<time datetime="{0}" title="{1}">{1}</time>').format(iso, text)


def day(value: Any) -> Markup:
    """A calendar date (no timezone conversion)."""
    if isinstance(value, date | str) and value:
        return escape(str(value)[:10])
    return Markup("&mdash;")


def label(value: Any) -> str:
    """`in_review` -> `in review`."""
    return str(value or "").replace("_", " ")


def money(amount: Any) -> str:
    if isinstance(amount, dict) and amount.get("value") is not None:
        return f"{amount.get('currency', '')} {amount['value']}".strip()
    return "—"


TEMPLATES.env.filters.update(timestamp=timestamp, day=day, label=label, money=money)
