"""`GET /v1/registrations/{id}`, the registration list, and timelines."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from services.projections.adapters import queries
from services.projections.api.deps import (
    decode_cursor,
    encode_cursor,
    read_your_writes,
    viewer,
)
from services.projections.api.schemas import RegistrationPage, TimelineEntry, TimelineView
from services.projections.domain.timeline import from_us, order_key
from shared.api import partner_view
from shared.api.partner_view import Viewer
from shared.api.problems import PROBLEM_RESPONSES, Problem
from shared.api.resources import RegistrationView
from shared.events.registration import RegistrationStatus
from shared.positions import position_key
from shared.readmodel.queries import get_registration, holders_of

router = APIRouter(prefix="/v1", tags=["queries"], dependencies=[Depends(read_your_writes)])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES, 503: {"description": "`min_position` not reached in time"}}


def registration_view(row: dict[str, Any], who: Viewer,
                      dispute_id: str | None = None) -> RegistrationView:
    data = dict(row)
    if dispute_id is not None:
        data["dispute_id"] = dispute_id
    return RegistrationView.model_validate(partner_view.registration(data, who))


def _not_found(kind: str, ident: str) -> Problem:
    return Problem(404, "Not found", f"No {kind} {ident}.")


@router.get("/registrations/{registration_id}", response_model=RegistrationView,
            responses=_RESPONSES, summary="A registration")
async def read_registration(
    registration_id: str, request: Request, who: Annotated[Viewer, Depends(viewer)],
) -> RegistrationView:
    async with request.app.state.runtime.engine.connect() as conn:
        row = await get_registration(conn, registration_id)
        # A partner must not learn that another partner's registration exists: 404.
        if row is None or (who.restricted and row["partner_id"] != who.subject_id):
            raise _not_found("registration", registration_id)
        current = await queries.current_disputes(conn, [registration_id])
    return registration_view(row, who, current.get(registration_id))


@router.get("/registrations", response_model=RegistrationPage, responses=_RESPONSES,
            summary="Registrations, newest first (cursor pagination)",
            description="Filters combine. `product` and `account` are matched on at most "
            "5000 rows per page: a page may then hold fewer than `limit` items and still "
            "have a `next_cursor`.")
async def list_registrations(
    request: Request,
    who: Annotated[Viewer, Depends(viewer)],
    partner_id: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[list[RegistrationStatus] | None, Query(
        description="One or more statuses (repeat the parameter)")] = None,
    account_key: Annotated[str | None, Query(max_length=300)] = None,
    product: Annotated[str | None, Query(
        max_length=100, description="A product of the opportunity (exact, any case)")] = None,
    account: Annotated[str | None, Query(
        min_length=2, max_length=300,
        description="Part of the account's name, domain or CRM id (any case)")] = None,
    submitted_from: Annotated[AwareDatetime | None, Query(
        description="Submitted at or after this instant")] = None,
    submitted_to: Annotated[AwareDatetime | None, Query(
        description="Submitted before this instant")] = None,
    cursor: Annotated[str | None, Query(max_length=400,
                                        description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RegistrationPage:
    if who.restricted:
        if partner_id is not None and partner_id != who.subject_id:
            raise Problem(403, "Forbidden", "A partner lists only its own registrations.")
        partner_id = who.subject_id
    # A partner's `account_key` filter matches the key its view shows, never the key a
    # registration is filed under (README "What a partner sees"): one rule for both
    # listings, `partner_view.KeyFilter`.
    by_key = partner_view.KeyFilter(who, account_key)

    def keep(row: dict[str, Any]) -> bool:
        return by_key.shows(registration_view(row, who))

    async with request.app.state.runtime.engine.connect() as conn:
        page, last = await queries.registration_search(
            conn, partner_id=partner_id, statuses=status or [], account_key=by_key.stored,
            before=decode_cursor(cursor), limit=limit, submitted_from=submitted_from,
            submitted_to=submitted_to, product=product, account=account,
            keep=keep if by_key.scans else None)
        current = await queries.current_disputes(conn, [r["id"] for r in page])
    return RegistrationPage(
        items=[registration_view(r, who, current.get(r["id"])) for r in page],
        next_cursor=encode_cursor(last) if last is not None else None)


@router.get("/registrations/{registration_id}/timeline", response_model=TimelineView,
            responses=_RESPONSES, summary="Every event and decision about a registration, "
                                         "oldest first")
async def read_timeline(
    registration_id: str, request: Request, who: Annotated[Viewer, Depends(viewer)],
) -> TimelineView:
    async with request.app.state.runtime.engine.connect() as conn:
        row = await get_registration(conn, registration_id)
        if row is None:
            claim = None if who.restricted else await queries.get_claim(conn, registration_id)
            if claim is None:
                raise _not_found("registration", registration_id)
        elif who.restricted and row["partner_id"] != who.subject_id:
            raise _not_found("registration", registration_id)
        entries = [{"at": from_us(e["at_us"]), "type": e["type"], "event_id": e["event_id"],
                    "subject_id": e["subject_id"], "data": orjson.loads(e["data"])}
                   for e in sorted(await queries.timeline(conn, registration_id),
                                   key=order_key)]
        scope = partner_view.Scope(who)
        if who.restricted:
            mentioned = partner_view.mentioned_ids([e["data"] for e in entries])
            mentioned.add(registration_id)
            scope = partner_view.Scope.of(who, await holders_of(conn, mentioned), mentioned)
    return TimelineView(id=registration_id, entries=[
        TimelineEntry.model_validate(e) for e in partner_view.timeline(
            entries, scope, ids_key=position_key(request.app.state.runtime.settings))])
