"""`GET /v1/owners/{id}/deliveries` and `GET /v1/partners/{id}/deliveries` (the
notification delivery logs) and `POST /v1/deliveries/{id}/redeliver` (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select

from services.projections.notifications import redeliver
from shared.api import partner_view
from shared.api.auth import Principal, require
from shared.api.problems import PROBLEM_RESPONSES, Problem
from shared.readmodel.queries import holders_of
from shared.readmodel.schema import notification_attempts, notification_outbox

router = APIRouter(prefix="/v1", tags=["notifications"])


class AttemptView(BaseModel):
    attempt: int
    at: datetime
    outcome: Literal["delivered", "failed", "dead", "disabled", "stale"]
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryView(BaseModel):
    id: str
    event_id: str
    dispute_id: str
    type: str
    recipient_kind: str
    recipient_id: str
    channel: Literal["webhook", "email"]
    status: Literal["pending", "delivered", "dead", "disabled", "stale"]
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    attempt_log: list[AttemptView]


class DeliveryPage(BaseModel):
    items: list[DeliveryView]


class PartnerAttemptView(BaseModel):
    """An attempt as its partner sees it: how it ended, not the error text."""

    attempt: int
    at: datetime
    outcome: Literal["delivered", "failed", "dead", "disabled", "stale"]
    status_code: int | None
    duration_ms: int


class PartnerDeliveryView(BaseModel):
    """A delivery as its partner sees it (`shared.api.partner_view.DELIVERY`): not the
    causing event's id nor the error texts; the payload cut to the webhook's shape."""

    id: str
    dispute_id: str
    type: str
    recipient_kind: str
    recipient_id: str | None
    channel: Literal["webhook", "email"]
    status: Literal["pending", "delivered", "dead", "disabled", "stale"]
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    attempt_log: list[PartnerAttemptView]


class PartnerDeliveryPage(BaseModel):
    items: list[PartnerDeliveryView]


Status = Literal["pending", "delivered", "dead", "disabled", "stale"]


@router.get("/owners/{owner_id}/deliveries", response_model=DeliveryPage,
            responses=PROBLEM_RESPONSES, summary="An escalation owner's notification log",
            description="Admin, or the owner itself. Newest first, with every attempt.")
async def list_deliveries(
    owner_id: str, request: Request,
    principal: Annotated[Principal, Depends(require("owner"))],
    status: Annotated[Status | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryPage:
    if principal.role == "owner" and principal.subject_id != owner_id:
        raise Problem(403, "Forbidden", "An escalation owner reads its own deliveries.")
    return await _log(request, "owner", owner_id, status, limit)


@router.get("/partners/{partner_id}/deliveries",
            response_model=DeliveryPage | PartnerDeliveryPage,
            responses=PROBLEM_RESPONSES, summary="A partner's notification log",
            description="Admin, or the partner itself (another partner's log does not "
            "exist for it: 404). Newest first, with every attempt. Admin gets `DeliveryPage`; "
            "the partner gets `PartnerDeliveryPage`, the partner view of its log: the payloads "
            "it was sent (redacted), each attempt's outcome, HTTP status and duration, never "
            "the causing event's id nor error texts.")
async def list_partner_deliveries(
    partner_id: str, request: Request,
    principal: Annotated[Principal, Depends(require("partner"))],
    status: Annotated[Status | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    if principal.role == "partner" and principal.subject_id != partner_id:
        raise Problem(404, "Not found", f"No partner {partner_id}.")
    rows = await _rows(request, "partner", partner_id, status, limit)
    page: BaseModel
    if principal.role == "partner":
        viewer = partner_view.Viewer("partner", principal.subject_id)
        mentioned = {i for r in rows for i in partner_view.delivery_mentions(r["payload"])}
        async with request.app.state.runtime.engine.connect() as conn:
            holders = await holders_of(conn, mentioned)
        scope = partner_view.Scope.of(viewer, holders, mentioned)
        page = PartnerDeliveryPage(items=[PartnerDeliveryView.model_validate(
            partner_view.delivery(r, scope)) for r in rows])
    else:
        page = DeliveryPage(items=[DeliveryView.model_validate(r) for r in rows])
    # Answered as is: each branch's model is the shape (the union would let one shape
    # validate as the other).
    return JSONResponse(page.model_dump(mode="json"))


async def _log(request: Request, kind: str, recipient: str, status: Status | None,
               limit: int) -> DeliveryPage:
    return DeliveryPage(items=[DeliveryView.model_validate(r)
                               for r in await _rows(request, kind, recipient, status, limit)])


async def _rows(request: Request, kind: str, recipient: str, status: Status | None,
                limit: int) -> list[dict[str, Any]]:
    """The log's rows, newest first, each with its `attempt_log`."""
    o = notification_outbox.c
    query = (select(notification_outbox)
             .where(o.recipient_kind == kind, o.recipient_id == recipient)
             .order_by(o.created_at.desc(), o.id).limit(limit))
    if status is not None:
        query = query.where(o.status == status)
    async with request.app.state.runtime.engine.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(query)).mappings()]
        ids = [r["id"] for r in rows]
        attempts: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        if ids:
            a = notification_attempts.c
            for r in (await conn.execute(select(notification_attempts).where(
                    a.delivery_id.in_(ids)).order_by(a.delivery_id, a.attempt))).mappings():
                attempts[r["delivery_id"]].append(dict(r))
    return [{**r, "attempt_log": attempts[r["id"]]} for r in rows]


@router.post("/deliveries/{delivery_id}/redeliver", status_code=202,
             responses=PROBLEM_RESPONSES, summary="Queue a delivery again (admin)")
async def redeliver_delivery(
    delivery_id: str, request: Request,
    _: Annotated[Principal, Depends(require())],
) -> dict[str, str]:
    runtime = request.app.state.runtime
    async with runtime.engine.begin() as conn:
        if not await redeliver(conn, delivery_id):
            raise Problem(404, "Not found", f"No delivery {delivery_id}.")
    sender = getattr(runtime, "notification_sender", None)
    if sender is not None:
        sender.wake.set()
    return {"id": delivery_id, "status": "pending"}
