"""The Dispute queue area: escalation owner's queue of open disputes.

A placeholder: its screens come next.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from services.console.pages import Area, render
from services.console.session import Session

AREA = Area("owner", "Dispute queue", frozenset({"owner"}))
router = AREA.router()


@router.get("/")
async def index(request: Request, session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    return render(request, "placeholder.html", session, area=AREA,
                  what="Escalation owner's queue of open disputes")
