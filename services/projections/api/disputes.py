"""`GET /v1/disputes` (the queue per escalation owner) and `GET /v1/disputes/{id}`.

Who sees which disputes: an escalation owner those it is (or was) assigned; a partner
those its registrations are party to (competitors' registrations nulled); a rep those its
claims are party to; channel managers, integrations and admins every dispute.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projections.adapters import queries
from services.projections.api.deps import (
    decode_cursor,
    encode_cursor,
    read_your_writes,
    viewer,
)
from services.projections.api.schemas import DisputePage
from shared.api import partner_view
from shared.api.partner_view import Viewer
from shared.api.problems import PROBLEM_RESPONSES, Problem
from shared.api.resources import DisputeView
from shared.readmodel.queries import first_decided, holders_of

router = APIRouter(prefix="/v1", tags=["queries"], dependencies=[Depends(read_your_writes)])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES, 503: {"description": "`min_position` not reached in time"}}


def _party(who: Viewer) -> tuple[str, str] | None:
    if who.role == "partner":
        return "partner", who.subject_id or ""
    if who.role == "rep":
        return "direct", who.subject_id or ""
    return None


async def _view(conn: AsyncConnection, row: dict[str, Any], breaches: list[dict[str, Any]],
                who: Viewer) -> DisputeView:
    data: dict[str, Any] = {
        **{k: row[k] for k in ("id", "status", "level", "owner_id", "due_at",
                               "acknowledged_at", "registration_ids", "resolution",
                               "account_key", "reason", "opened_at", "reminder_at",
                               "resolved_at", "breached", "explanation")},
        "breaches": [{"level": b["level"], "deadline": b["deadline"],
                      "outcome": b["outcome"]} for b in breaches],
    }
    if who.restricted:
        mentioned = partner_view.mentioned_ids(data)
        scope = partner_view.Scope.of(who, await holders_of(conn, mentioned), mentioned)
        data = partner_view.dispute(data, scope,
                                    await first_decided(conn, scope.own_ids))
    return DisputeView.model_validate(data)


@router.get("/disputes", response_model=DisputePage, responses=_RESPONSES,
            summary="Disputes (an escalation owner's queue), oldest first")
async def list_disputes(
    request: Request,
    who: Annotated[Viewer, Depends(viewer)],
    owner_id: Annotated[str | None, Query(max_length=100,
                                          description="The owner currently assigned")] = None,
    status: Annotated[list[Literal["open", "resolved"]] | None, Query()] = None,
    account_key: Annotated[str | None, Query(max_length=300)] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DisputePage:
    if who.role == "owner":
        if owner_id is not None and owner_id != who.subject_id:
            raise Problem(403, "Forbidden", "An escalation owner lists its own queue.")
        owner_id = who.subject_id
    async with request.app.state.runtime.engine.connect() as conn:
        rows = await queries.dispute_page(
            conn, owner_id=owner_id, statuses=status or [], account_key=account_key,
            involving=_party(who), after=decode_cursor(cursor), limit=limit)
        page = rows[:limit]
        breaches = await queries.breaches_of(conn, [r["id"] for r in page])
        items = [await _view(conn, r, breaches[r["id"]], who) for r in page]
    return DisputePage(items=items,
                       next_cursor=encode_cursor(page[-1]["id"]) if len(rows) > limit else None)


@router.get("/disputes/{dispute_id}", response_model=DisputeView, responses=_RESPONSES,
            summary="A dispute")
async def read_dispute(
    dispute_id: str, request: Request, who: Annotated[Viewer, Depends(viewer)],
) -> DisputeView:
    async with request.app.state.runtime.engine.connect() as conn:
        row = await queries.get_dispute(conn, dispute_id)
        if row is None or not await _may_read(conn, row, who):
            # Existence must not leak to a caller who is not party to it.
            raise Problem(404, "Not found", f"No dispute {dispute_id}.")
        breaches = await queries.breaches_of(conn, [dispute_id])
        return await _view(conn, row, breaches[dispute_id], who)


async def _may_read(conn: AsyncConnection, row: dict[str, Any], who: Viewer) -> bool:
    if who.role == "owner":
        return who.subject_id in (row["owners"] or [])
    party = _party(who)
    if party is None:
        return True
    members = await queries.members_of(conn, row["id"])
    holders = await holders_of(conn, members)
    return any((kind, who_) == party for kind, who_, _ in holders.values())
