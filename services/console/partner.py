"""The partner area (partner and rep roles): my registrations, a registration's decision
and timeline, register a deal, extend, withdraw, contest.

Everything shown is what /v1 answers to the user's own key (the partner view): the console
adds no data about competitors and hides nothing the API would show.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from services.console.client import ConsoleApi
from services.console.pages import Area, render
from services.console.session import Session

AREA = Area("partner", "Registrations", frozenset({"partner", "rep"}))
router = AREA.router()

STATUSES = ("submitted", "approved", "in_review", "rejected", "expired", "withdrawn", "won",
            "lost")


@router.get("/")
async def registrations(request: Request, session: Annotated[Session, Depends(AREA.guard)],
                        status: str | None = None, cursor: str | None = None) -> Response:
    api = ConsoleApi.of(request, session)
    page = await api.get("/v1/registrations", status=status if status in STATUSES else None,
                         cursor=cursor, limit=25)
    return render(request, "partner/list.html", session, page=page, statuses=STATUSES,
                  status=status)
