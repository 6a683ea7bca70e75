"""The escalation owner's area: my queue of open disputes, a dispute with the contested
registrations side by side, acknowledge (one or many) and resolve.

Everything goes through `ConsoleApi` with the owner's own key: the API decides which
disputes the owner sees (its own queue; an admin sees every open dispute) and which it may
act on. The queue refreshes itself: htmx asks `queue/rows` every few seconds with a digest
of what it shows and gets `204 No Content` while nothing changed, the new rows otherwise.
Countdowns tick in the browser (`static/ops.js`); the working time left is computed here
with the policy's business calendar (the adjudicator's own arithmetic).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import Depends, Request
from starlette.responses import RedirectResponse, Response

from services.console import ops  # noqa: F401  (registers the template filters)
from services.console.client import ApiProblem, ConsoleApi, form_key, item_key, seg
from services.console.pages import Area, render
from services.console.session import Session, read_form
from shared.business_time import business_time_between, to_us
from shared.policy import BusinessCalendar

AREA = Area("owner", "Dispute queue", frozenset({"owner"}))
router = AREA.router()

POLL_SECONDS = 3
QUEUE_LIMIT = 100
ACK_CONCURRENCY = 16
"""Acknowledgements of one bulk form sent at once."""

BUCKETS: tuple[tuple[str, str, timedelta, timedelta | None], ...] = (
    ("fresh", "under 1 day", timedelta(0), timedelta(days=1)),
    ("days", "1-3 days", timedelta(days=1), timedelta(days=3)),
    ("week", "3-7 days", timedelta(days=3), timedelta(days=7)),
    ("old", "over 7 days", timedelta(days=7), None),
)
"""Aging buckets by how long a dispute has been open."""

OUTCOMES = ("award", "award_products", "split", "co_sell", "reject_all", "distinct")
MESSAGES = {
    "acknowledged": "Acknowledged {n} dispute(s).",
    "resolved": "Resolution recorded.",
    "acknowledged_one": "Acknowledged.",
}


# --- pure helpers (unit tested) ----------------------------------------------------------

def parse_moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def bucket_of(opened_at: Any, now: datetime) -> str | None:
    opened = parse_moment(opened_at)
    if opened is None:
        return None
    age = now - opened
    for key, _, low, high in BUCKETS:
        if age >= low and (high is None or age < high):
            return key
    return BUCKETS[0][0]


def span_text(us: int) -> str:
    """`2d 3h`, `5h 07m`, `12m`: a span for people."""
    minutes = max(0, us) // 60_000_000
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins:02d}m"
    return f"{mins}m"


@dataclass(frozen=True, slots=True)
class Due:
    at: datetime | None
    overdue: bool
    left: str          # wall-clock time left (or overdue by)
    working_left: str | None   # business time left, when the policy has a calendar


def due_of(due_at: Any, now: datetime, calendar: BusinessCalendar | None) -> Due:
    due = parse_moment(due_at)
    if due is None:
        return Due(None, False, "no deadline", None)
    remaining = to_us(due) - to_us(now)
    if remaining <= 0:
        return Due(due, True, f"overdue by {span_text(-remaining)}", None)
    working = (span_text(business_time_between(to_us(now), to_us(due), calendar))
               if calendar is not None else None)
    return Due(due, False, f"{span_text(remaining)} left", working)


def queue_digest(items: list[dict[str, Any]]) -> str:
    """What the queue shows, hashed: the poll answers 204 while it is unchanged."""
    facts = [(d.get("id"), d.get("level"), d.get("owner_id"), d.get("status"),
              d.get("due_at"), d.get("acknowledged_at")) for d in items]
    return hashlib.sha256(orjson.dumps(facts, default=str)).hexdigest()[:16]


def resolution_body(form: dict[str, Any], registration_ids: list[str]) -> dict[str, Any]:
    """The `POST /v1/disputes/{id}/resolve` body the form asks for. The API validates it
    (its problem details come back next to the fields); only the shape is built here."""
    choice = str(form.get("outcome") or "")
    body: dict[str, Any] = {"note": str(form.get("note") or "")}
    partner_note = str(form.get("partner_note") or "").strip()
    if partner_note:
        body["partner_note"] = partner_note
    if choice == "award":
        body.update(outcome="award", registration_id=str(form.get("winner") or "") or None)
    elif choice == "award_products":
        awards = {key.removeprefix("award__"): str(value) for key, value in form.items()
                  if key.startswith("award__") and value}
        body.update(outcome="award", awards=awards or None)
    elif choice == "split":
        splits = []
        for rid in registration_ids:
            raw = str(form.get(f"percent__{rid}") or "").strip()
            if not raw:
                continue
            try:
                percent = str(Decimal(raw))
            except InvalidOperation:
                percent = raw
            splits.append({"registration_id": rid, "percent": percent})
        body.update(outcome="split", splits=splits)
    else:
        body["outcome"] = choice
    return {k: v for k, v in body.items() if v is not None}


# --- the queue -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class QueueFilters:
    level: str = ""
    ack: str = ""          # "", "yes", "no"
    bucket: str = ""
    overdue: bool = False
    sort: str = "due"      # "due" or "opened"

    @classmethod
    def of(cls, params: Any) -> QueueFilters:
        level = str(params.get("level") or "")
        ack = str(params.get("ack") or "")
        bucket = str(params.get("bucket") or "")
        sort = str(params.get("sort") or "due")
        return cls(level if level.isdigit() else "", ack if ack in ("yes", "no") else "",
                   bucket if bucket in {b[0] for b in BUCKETS} else "",
                   params.get("overdue") in ("1", "on", "true"),
                   sort if sort in ("due", "opened") else "due")

    def query(self) -> str:
        return urlencode({k: v for k, v in (("level", self.level), ("ack", self.ack),
                                            ("bucket", self.bucket),
                                            ("overdue", "1" if self.overdue else ""),
                                            ("sort", "" if self.sort == "due" else self.sort))
                              if v})


async def _calendar(api: ConsoleApi) -> BusinessCalendar | None:
    policy = await api.get("/v1/policy")
    raw = ((policy or {}).get("escalation") or {}).get("calendar")
    return BusinessCalendar.model_validate(raw) if raw else None


async def _queue(api: ConsoleApi, filters: QueueFilters, now: datetime,
                 cursor: str | None = None) -> dict[str, Any]:
    page = await api.get(
        "/v1/disputes", status="open", sort="due" if filters.sort == "due" else "id",
        level=filters.level or None,
        acknowledged={"yes": "true", "no": "false"}.get(filters.ack),
        due_before=now.isoformat() if filters.overdue else None, limit=QUEUE_LIMIT,
        cursor=cursor)
    items: list[dict[str, Any]] = page["items"]
    calendar = await _calendar(api)
    counts = {key: 0 for key, *_ in BUCKETS}
    rows = []
    for item in items:
        bucket = bucket_of(item.get("opened_at"), now)
        if bucket:
            counts[bucket] += 1
        if filters.bucket and bucket != filters.bucket:
            continue
        rows.append({"dispute": item, "bucket": bucket,
                     "due": due_of(item.get("due_at"), now, calendar)})
    return {"rows": rows, "counts": counts, "digest": queue_digest(items),
            "more": page.get("next_cursor") is not None, "total": len(items),
            "cursor": cursor or "", "next_cursor": page.get("next_cursor") or ""}


def _context(filters: QueueFilters, queue: dict[str, Any]) -> dict[str, Any]:
    here = urlencode({"cursor": queue["cursor"]}) if queue["cursor"] else ""
    params = "&".join(p for p in (filters.query(), here) if p)
    return {"filters": filters, "buckets": BUCKETS, "poll_seconds": POLL_SECONDS,
            "bulk_key": form_key(),
            "bucket_labels": {key: text for key, text, *_ in BUCKETS},
            "first_url": f"/console/owner/?{filters.query()}",
            "next_url": "/console/owner/?" + "&".join(
                p for p in (filters.query(), urlencode({"cursor": queue["next_cursor"]})) if p),
            "poll_url": f"/console/owner/queue/rows?{params}{'&' if params else ''}"
                        f"digest={queue['digest']}", **queue}


@router.get("/")
async def queue_page(request: Request,
                     session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    filters = QueueFilters.of(request.query_params)
    queue = await _queue(ConsoleApi.of(request, session), filters, datetime.now(UTC),
                         request.query_params.get("cursor") or None)
    message = MESSAGES.get(request.query_params.get("done", ""), "")
    count = request.query_params.get("n", "")
    return render(request, "owner/queue.html", session, area=AREA,
                  message=message.format(n=count if count.isdigit() else ""),
                  failures=ack_failures(request.query_params.getlist("failed")),
                  **_context(filters, queue))


@router.get("/queue/rows")
async def queue_rows(request: Request,
                     session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    """The polled part of the queue: 204 while nothing changed."""
    filters = QueueFilters.of(request.query_params)
    queue = await _queue(ConsoleApi.of(request, session), filters, datetime.now(UTC),
                         request.query_params.get("cursor") or None)
    if request.query_params.get("digest") == queue["digest"]:
        return Response(status_code=204)
    return render(request, "owner/_queue.html", session, area=AREA,
                  **_context(filters, queue))


@router.post("/acknowledge")
async def acknowledge_many(request: Request,
                           session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    form = await read_form(request)
    api = ConsoleApi.of(request, session)
    key = form_key(form)
    picked = list(dict.fromkeys(form.getlist("dispute")))[:QUEUE_LIMIT]
    limit = asyncio.Semaphore(ACK_CONCURRENCY)

    async def acknowledge_one(dispute_id: str) -> int:
        """0 when acknowledged, else the API's refusal status."""
        async with limit:
            try:
                # One key per dispute of this form: sent twice, each answers as the first.
                await api.post(f"/v1/disputes/{seg(dispute_id)}/acknowledge", wait=5,
                               idempotency_key=item_key(key, dispute_id))
            except ApiProblem as problem:
                return problem.status
            return 0

    # Side by side: one after the other, each waiting up to 5 s for adjudication, 50
    # disputes could hold the page for minutes when adjudication lags.
    answers = await asyncio.gather(*(acknowledge_one(d) for d in picked))
    done = sum(1 for status in answers if status == 0)
    failed = [f"{d}:{status}" for d, status in zip(picked, answers, strict=True) if status]
    query = urlencode([("done", "acknowledged"), ("n", str(done))]
                      + [("failed", f) for f in failed])
    back = form.get("back") or ""
    return RedirectResponse(f"/console/owner/?{query}{'&' + back if _safe_query(back) else ''}",
                            status_code=303)


_FAILED = re.compile(r"(dsp_[A-Za-z0-9]{1,64}):(\d{3})")
ACK_REFUSALS = {404: "no such dispute in your queue", 409: "acknowledged or closed already",
                403: "not yours to acknowledge", 503: "the service was unavailable; retry"}


def ack_failures(values: list[str]) -> list[str]:
    """The bulk acknowledge's refusals, carried in the URL as `dispute id:status` only and
    told in our own words: a link cannot make the queue show someone else's text."""
    out = []
    for value in values[:20]:
        match = _FAILED.fullmatch(value)
        if match:
            status = int(match.group(2))
            out.append(f"{match.group(1)}: {ACK_REFUSALS.get(status, f'refused ({status})')}")
    return out


def _safe_query(query: str) -> bool:
    return bool(query) and all(c.isalnum() or c in "=&_-" for c in query)


# --- one dispute ------------------------------------------------------------------------------

async def _party(api: ConsoleApi, member_id: str) -> dict[str, Any]:
    """A registration of the dispute with its partner, or a direct claim (not a
    registration: its timeline only)."""
    try:
        registration = await api.get(f"/v1/registrations/{seg(member_id)}")
    except ApiProblem as problem:
        if problem.status != 404:
            raise
        registration = None
    partner = None
    if registration and registration.get("partner_id"):
        try:
            partner = await api.get(f"/v1/partners/{seg(registration['partner_id'])}")
        except ApiProblem:
            partner = None
    try:
        timeline = (await api.get(f"/v1/registrations/{seg(member_id)}/timeline"))["entries"]
    except ApiProblem:
        timeline = []
    return {"id": member_id, "registration": registration, "partner": partner,
            "timeline": timeline}


async def _dispute_page(request: Request, session: Session, dispute_id: str, *,
                        problem: ApiProblem | None = None, form: dict[str, Any] | None = None,
                        status_code: int = 200, kept: dict[str, str] | None = None
                        ) -> Response:
    api = ConsoleApi.of(request, session)
    dispute = await api.get(f"/v1/disputes/{seg(dispute_id)}")
    now = datetime.now(UTC)
    parties = [await _party(api, rid) for rid in dispute.get("registration_ids") or []]
    products: list[str] = []
    for party in parties:
        for product in ((party["registration"] or {}).get("opportunity") or {}).get(
                "products") or []:
            if product not in products:
                products.append(product)
    timeline = sorted(
        ({**entry, "member": party["id"]} for party in parties for entry in party["timeline"]),
        key=lambda e: (str(e.get("at")), str(e.get("event_id"))))
    seen: set[str] = set()
    merged = []
    for entry in timeline:   # an event about two members is shown once
        if entry.get("event_id") in seen:
            continue
        seen.add(str(entry.get("event_id")))
        merged.append(entry)
    message = MESSAGES.get(request.query_params.get("done", ""), "")
    return render(request, "owner/dispute.html", session, area=AREA, dispute=dispute,
                  parties=parties, products=products, timeline=merged,
                  due=due_of(dispute.get("due_at"), now, await _calendar(api)),
                  bucket=bucket_of(dispute.get("opened_at"), now), outcomes=OUTCOMES,
                  problem=problem, errors=_resolution_errors(problem, form or {}),
                  form=form or {}, message=message, status_code=status_code,
                  keys={"acknowledge": form_key(), "resolve": form_key(), **(kept or {})})


_OUTCOME_FIELD = {"award": "registration_id", "award_products": "awards", "split": "splits"}


def _resolution_errors(problem: ApiProblem | None, form: dict[str, Any]) -> dict[str, str]:
    """The API's field errors by field; a rule about the whole body (split percents that do
    not add up to 100) is shown at the chosen outcome's fields too, not only at the top."""
    if problem is None:
        return {}
    errors = problem.field_errors()
    target = _OUTCOME_FIELD.get(str(form.get("outcome") or ""))
    if target and "body" in errors:
        errors.setdefault(target, errors["body"].removeprefix("Value error, "))
    return errors


@router.get("/disputes/{dispute_id}")
async def dispute_page(dispute_id: str, request: Request,
                       session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    return await _dispute_page(request, session, dispute_id)


@router.post("/disputes/{dispute_id}/acknowledge")
async def acknowledge(dispute_id: str, request: Request,
                      session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    api = ConsoleApi.of(request, session)
    key = form_key(await read_form(request))
    try:
        await api.post(f"/v1/disputes/{seg(dispute_id)}/acknowledge", wait=5,
                       idempotency_key=key)
    except ApiProblem as problem:
        if problem.status in (401, 404):
            raise
        return await _dispute_page(request, session, dispute_id, problem=problem,
                                   status_code=problem.status, kept={"acknowledge": key})
    return RedirectResponse(f"/console/owner/disputes/{seg(dispute_id)}?done=acknowledged_one",
                            status_code=303)


@router.post("/disputes/{dispute_id}/resolve")
async def resolve(dispute_id: str, request: Request,
                  session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    form = dict((await read_form(request)).items())
    api = ConsoleApi.of(request, session)
    dispute = await api.get(f"/v1/disputes/{seg(dispute_id)}")
    body = resolution_body(form, list(dispute.get("registration_ids") or []))
    key = form_key(await read_form(request))
    try:
        await api.post(f"/v1/disputes/{seg(dispute_id)}/resolve", body, wait=10,
                       idempotency_key=key)
    except ApiProblem as problem:
        if problem.status in (401, 404):
            raise
        return await _dispute_page(request, session, dispute_id, problem=problem, form=form,
                                   status_code=problem.status, kept={"resolve": key})
    return RedirectResponse(f"/console/owner/disputes/{seg(dispute_id)}?done=resolved",
                            status_code=303)
