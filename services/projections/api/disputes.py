"""`GET /v1/disputes` (the queue per escalation owner) and `GET /v1/disputes/{id}`.

Who sees which disputes: an escalation owner those it is (or was) assigned; a partner
those its registrations are party to (competitors' registrations nulled); a rep those its
claims are party to; channel managers, integrations and admins every dispute.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, Field
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
from shared.readmodel.queries import entered_dispute, holders_of, last_refusals

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
                who: Viewer, refused: dict[str, Any] | None = None) -> DisputeView:
    """One dispute as `who` reads it. `refused`: its `last_refusal` (staff roles only: an
    owner's command adjudication refused; never a partner's to read)."""
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
        entered = await entered_dispute(conn, row["id"], scope.own_ids)
        data = partner_view.dispute(data, scope, entered.at, entered.opening,
                                    reason=entered.reason)
    elif refused is not None and _staff(who):
        data["last_refusal"] = refused
    return DisputeView.model_validate(data)


def _staff(who: Viewer) -> bool:
    """Roles that read an owner's refused command (`last_refusal`): every role but
    partners (`partner_view.DISPUTE` leaves it out for them too)."""
    return not who.restricted


def _due_cursor(due: datetime | None, dispute_id: str) -> str:
    """`<due in microseconds since the epoch, or n>:<id>` (the keyset of `sort=due`)."""
    micros = "n" if due is None else str(
        (due - _EPOCH) // timedelta(microseconds=1))
    return encode_cursor(f"{micros}:{dispute_id}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _after_due(cursor: str | None) -> tuple[datetime | None, str] | None:
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    micros, _, dispute_id = raw.partition(":")
    if not dispute_id or not (micros == "n" or micros.isdigit()):
        raise Problem(422, "Validation failed", "The cursor is not one we issued.",
                      errors=[{"field": "cursor",
                               "message": "not a `sort=due` cursor: pass the `next_cursor` "
                                          "of a page with the same `sort`"}])
    due = None if micros == "n" else _EPOCH + timedelta(microseconds=int(micros))
    return due, dispute_id


@router.get("/disputes", response_model=DisputePage, responses=_RESPONSES,
            summary="Disputes (an escalation owner's queue), oldest first or soonest due",
            description="`sort=id` (default): oldest first. `sort=due`: soonest due first "
            "(overdue ones lead), disputes without a due time last. Filters combine: "
            "`level` (repeat), `acknowledged`, `due_before` (e.g. now: the overdue ones). "
            "A cursor continues the `sort` it was issued for. `sort=due` and `due_before` "
            "are not offered to partners (they see some due times rounded).")
async def list_disputes(
    request: Request,
    who: Annotated[Viewer, Depends(viewer)],
    owner_id: Annotated[str | None, Query(max_length=100,
                                          description="The owner currently assigned")] = None,
    status: Annotated[list[Literal["open", "resolved"]] | None, Query()] = None,
    account_key: Annotated[str | None, Query(max_length=300)] = None,
    level: Annotated[list[Annotated[int, Field(ge=1, le=100)]] | None, Query(
        description="Escalation level (repeat the parameter)")] = None,
    acknowledged: Annotated[bool | None, Query(
        description="true: acknowledged ones only; false: not yet acknowledged")] = None,
    due_before: Annotated[AwareDatetime | None, Query(
        description="Only those due before this instant (with an offset)")] = None,
    sort: Annotated[Literal["id", "due"], Query()] = "id",
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DisputePage:
    if who.role == "owner":
        if owner_id is not None and owner_id != who.subject_id:
            raise Problem(403, "Forbidden", "An escalation owner lists its own queue.")
        owner_id = who.subject_id
    if who.restricted and (sort == "due" or due_before is not None):
        # A partner sees some due times rounded (`partner_view.dispute`); ordering by, or
        # filtering on, the exact one would let it find the rival's submission time.
        raise Problem(422, "Validation failed", "Not available to partners.",
                      errors=[{"field": "sort" if sort == "due" else "due_before",
                               "message": "ordering and filtering by the exact due time "
                                          "is for escalation owners and channel roles"}])
    by_due = sort == "due"
    after = None if by_due else decode_cursor(cursor)
    if after is not None and ":" in after:   # a `sort=due` cursor; ids have no colon
        raise Problem(422, "Validation failed", "The cursor is not one we issued.",
                      errors=[{"field": "cursor",
                               "message": "a `sort=due` cursor: pass the `next_cursor` of a "
                                          "page with the same `sort`"}])
    async with request.app.state.runtime.engine.connect() as conn:
        by_key = partner_view.KeyFilter(who, account_key)
        if by_key.scans:
            # A partner filters on the key its view shows, never on the key a dispute is
            # filed under: one rule for both listings (`partner_view.KeyFilter`).
            items, next_id = await _partner_page_by_key(
                conn, who, by_key, owner_id=owner_id, after=after, limit=limit,
                statuses=status or [], levels=level or [], acknowledged=acknowledged)
            return DisputePage(items=items, next_cursor=encode_cursor(next_id)
                               if next_id is not None else None)
        rows = await queries.dispute_page(
            conn, owner_id=owner_id, statuses=status or [], account_key=by_key.stored,
            involving=_party(who), after=after,
            limit=limit, levels=level or [], acknowledged=acknowledged,
            due_before=due_before, by_due=by_due,
            after_due=_after_due(cursor) if by_due else None)
        page = rows[:limit]
        breaches = await queries.breaches_of(conn, [r["id"] for r in page])
        refused = await last_refusals(conn, [r["id"] for r in page]) if _staff(who) else {}
        items = [await _view(conn, r, breaches[r["id"]], who, refused.get(r["id"]))
                 for r in page]
    following = None
    if len(rows) > limit:
        last = page[-1]
        following = (_due_cursor(last["due_at"], last["id"]) if by_due
                     else encode_cursor(last["id"]))
    return DisputePage(items=items, next_cursor=following)


async def _partner_page_by_key(
    conn: AsyncConnection, who: Viewer, by_key: partner_view.KeyFilter, *,
    owner_id: str | None, after: str | None, limit: int,
    statuses: list[Literal["open", "resolved"]], levels: list[int], acknowledged: bool | None,
) -> tuple[list[DisputeView], str | None]:
    """A page of the partner's disputes whose shown `account_key` is the one asked
    (`by_key`), oldest first, and the id the next page starts after (None: no more): the
    scan `registration_search` uses too (`queries.scan_page`)."""
    breaches: dict[str, list[dict[str, Any]]] = {}

    async def fetch(cursor: str | None, chunk: int) -> list[dict[str, Any]]:
        rows = await queries.dispute_page(
            conn, owner_id=owner_id, statuses=statuses, account_key=by_key.stored,
            involving=_party(who), after=cursor, limit=chunk, levels=levels,
            acknowledged=acknowledged)
        breaches.clear()
        breaches.update(await queries.breaches_of(conn, [r["id"] for r in rows[:chunk]]))
        return rows

    async def pick(row: dict[str, Any]) -> DisputeView | None:
        view = await _view(conn, row, breaches[row["id"]], who)
        return view if by_key.shows(view) else None

    return await queries.scan_page(fetch, pick, start=after, limit=limit)


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
        # An owner's command the adjudicator refused changed nothing: say so where the
        # owner looks, here and in the list (a 202 answered it; README "Refused staff
        # commands").
        refused = (await last_refusals(conn, [dispute_id])).get(dispute_id) \
            if _staff(who) else None
        return await _view(conn, row, breaches[dispute_id], who, refused)


async def _may_read(conn: AsyncConnection, row: dict[str, Any], who: Viewer) -> bool:
    if who.role == "owner":
        return who.subject_id in (row["owners"] or [])
    party = _party(who)
    if party is None:
        return True
    if who.restricted:
        # Only through a registration still in it: one that was withdrawn (or closed)
        # while the dispute went on left it (`still_in_dispute`).
        return await queries.involves(conn, row["id"], party)
    members = await queries.members_of(conn, row["id"])
    holders = await holders_of(conn, members)
    return any((kind, who_) == party for kind, who_, _ in holders.values())
