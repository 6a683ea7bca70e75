"""The Program area: program dashboards.

A placeholder: its screens come next.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from services.console.pages import Area, render
from services.console.session import Session

AREA = Area("program", "Program", frozenset({"channel_manager"}))
router = AREA.router()


@router.get("/")
async def index(request: Request, session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    return render(request, "placeholder.html", session, area=AREA,
                  what="Program dashboards")
