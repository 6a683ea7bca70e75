"""The channel manager's area (channel_manager; admin sees all): search registrations,
look up who owns an account (now or as of a date), a registration's full timeline with
the explanation of every decision, the partner and owner directories (admins edit them,
webhook settings and delivery logs with redelivery), and the policy: the version in force,
every version and the difference between two.

Every read and change is a /v1 call with the user's own key (`ConsoleApi`): a channel
manager reads across partners and issues no commands (`services/registration/domain/
access.py`), so the edit forms, webhook settings and delivery logs are shown to admins
only; an API refusal would say the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from starlette.responses import RedirectResponse, Response

from services.console.client import ApiProblem, ConsoleApi, seg
from services.console.ops import day_start, viewer_zone
from services.console.pages import Area, render
from services.console.session import Session, read_form

AREA = Area("manager", "Channel", frozenset({"channel_manager"}))
router = AREA.router()

STATUSES = ("submitted", "approved", "in_review", "rejected", "expired", "withdrawn", "won",
            "lost")
PARTNER_TYPES = ("reseller", "si", "msp", "referral", "isv")
TIERS = ("platinum", "gold", "silver", "registered")
PARTNER_STATUSES = ("onboarding", "active", "suspended", "exited")
TABS = (("search", "Registrations", "/console/manager/"),
        ("ownership", "Ownership", "/console/manager/ownership"),
        ("partners", "Partners", "/console/manager/partners"),
        ("owners", "Owners", "/console/manager/owners"),
        ("policy", "Policy", "/console/manager/policy"))
MESSAGES = {"saved": "Saved.", "created": "Created.", "redelivered": "Queued for redelivery."}


def _page(request: Request, template: str, session: Session, tab: str,
          **context: Any) -> Response:
    message = MESSAGES.get(request.query_params.get("done", ""), "")
    return render(request, template, session, area=AREA, tabs=TABS, tab=tab,
                  admin=session.role == "admin", message=message, **context)


PATTERN_HINTS = {
    "webhook_url": "must be an http:// or https:// URL, e.g. https://hooks.example.com/dealreg",
    "email": "must be an e-mail address, e.g. lee@example.com",
}
"""What a field's pattern asks for, in words: the API's message quotes the regular
expression ("String should match pattern '^[Hh][Tt][Tt][Pp][Ss]?://...'")."""


def _field_errors(problem: ApiProblem | None) -> dict[str, str]:
    if problem is None:
        return {}
    errors = problem.field_errors()
    for name, hint in PATTERN_HINTS.items():
        if errors.get(name, "").startswith("String should match pattern"):
            errors[name] = hint
    return errors


def _value(form: Any, name: str) -> str:
    return str(form.get(name) or "").strip()


# --- registrations ---------------------------------------------------------------------------

SEARCH_FIELDS = ("partner_id", "status", "account", "product", "submitted_from",
                 "submitted_to", "tz")
"""The search form's fields; `tz` is the viewer's timezone (filled in by console.js), the
submission dates are days in it."""


@router.get("/")
async def search(request: Request,
                 session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    api = ConsoleApi.of(request, session)
    q = {name: request.query_params.get(name, "").strip() for name in SEARCH_FIELDS}
    partners = (await api.get("/v1/partners", limit=500))["items"]
    problem: ApiProblem | None = None
    page: dict[str, Any] = {"items": [], "next_cursor": None}
    zone = viewer_zone(q["tz"])
    try:
        page = await api.get(
            "/v1/registrations", partner_id=q["partner_id"] or None,
            status=q["status"] if q["status"] in STATUSES else None,
            account=q["account"] or None, product=q["product"] or None,
            submitted_from=day_start(q["submitted_from"], zone=zone),
            submitted_to=day_start(q["submitted_to"], end=True, zone=zone),
            cursor=request.query_params.get("cursor") or None, limit=25)
    except ApiProblem as exc:
        if exc.status in (401, 403):
            raise
        problem = exc
    names = {p["id"]: p["name"] for p in partners}
    return _page(request, "manager/search.html", session, "search", q=q, page=page,
                 partners=partners, names=names, statuses=STATUSES, problem=problem,
                 errors=_field_errors(problem),
                 query=urlencode({k: v for k, v in q.items() if v}))


@router.get("/registrations/{registration_id}")
async def registration(registration_id: str, request: Request,
                       session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    api = ConsoleApi.of(request, session)
    found = await api.get(f"/v1/registrations/{seg(registration_id)}")
    timeline = (await api.get(f"/v1/registrations/{seg(registration_id)}/timeline"))["entries"]
    partner = None
    if found.get("partner_id"):
        try:
            partner = await api.get(f"/v1/partners/{seg(found['partner_id'])}")
        except ApiProblem:
            partner = None
    dispute = None
    if found.get("dispute_id"):
        try:
            dispute = await api.get(f"/v1/disputes/{seg(found['dispute_id'])}")
        except ApiProblem:
            dispute = None
    return _page(request, "manager/registration.html", session, "search", r=found,
                 partner=partner, timeline=timeline, dispute=dispute)


# --- ownership ---------------------------------------------------------------------------------

LOOKUPS = ("domain", "name", "crm_account_id")


@router.get("/ownership")
async def ownership(request: Request,
                    session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    api = ConsoleApi.of(request, session)
    params = request.query_params
    by = params.get("by", "domain")
    by = by if by in LOOKUPS else "domain"
    q = {name: params.get(name, "").strip() for name in
         ("domain", "name", "country", "crm_account_id", "product", "as_of")}
    asked = bool(q[by])
    answer: dict[str, Any] | None = None
    problem: ApiProblem | None = None
    names: dict[str, str] = {}
    if asked:
        query: dict[str, Any] = {by: q[by], "product": q["product"] or None,
                                 "as_of": day_start(q["as_of"]) if q["as_of"] else None}
        if by == "name":
            query["country"] = q["country"] or None
        try:
            answer = await api.get("/v1/ownership", **query)
        except ApiProblem as exc:
            if exc.status in (401, 403):
                raise
            problem = exc
        if answer:
            names = {p["id"]: p["name"] for p in
                     (await api.get("/v1/partners", limit=500))["items"]}
    return _page(request, "manager/ownership.html", session, "ownership", by=by, q=q,
                 answer=answer, asked=asked, problem=problem, names=names,
                 errors=_field_errors(problem))


# --- partners ------------------------------------------------------------------------------

@router.get("/partners")
async def partners(request: Request,
                   session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    api = ConsoleApi.of(request, session)
    status = request.query_params.get("status", "")
    tier = request.query_params.get("tier", "")
    page = await api.get("/v1/partners", status=status if status in PARTNER_STATUSES else None,
                         tier=tier if tier in TIERS else None,
                         cursor=request.query_params.get("cursor") or None, limit=50)
    return _page(request, "manager/partners.html", session, "partners", page=page,
                 status=status, tier=tier, types=PARTNER_TYPES, tiers=TIERS,
                 partner_statuses=PARTNER_STATUSES, form={}, errors={}, problem=None)


def _partner_body(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {name: _value(form, name) or None
                            for name in ("name", "type", "tier", "region", "status",
                                         "webhook_url")}
    if form.get("rotate_secret"):
        body["rotate_secret"] = True
    return {k: v for k, v in body.items() if v is not None}


@router.post("/partners")
async def create_partner(request: Request,
                         session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    form = await read_form(request)
    partner_id = _value(form, "id")
    api = ConsoleApi.of(request, session)
    try:
        if not partner_id:
            raise ApiProblem(422, "Validation failed", "The partner needs an id.",
                             [{"field": "id", "message": "required"}])
        await api.call("PUT", f"/v1/partners/{seg(partner_id)}", json=_partner_body(form))
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        page = await api.get("/v1/partners", limit=50)
        return _page(request, "manager/partners.html", session, "partners", page=page,
                     status="", tier="", types=PARTNER_TYPES, tiers=TIERS,
                     partner_statuses=PARTNER_STATUSES, form=dict(form.items()),
                     problem=problem, errors=_field_errors(problem),
                     status_code=problem.status)
    return RedirectResponse(f"/console/manager/partners/{seg(partner_id)}?done=created",
                            status_code=303)


async def _partner_page(request: Request, session: Session, partner_id: str, *,
                        problem: ApiProblem | None = None, form: dict[str, Any] | None = None,
                        status_code: int = 200) -> Response:
    api = ConsoleApi.of(request, session)
    partner = await api.get(f"/v1/partners/{seg(partner_id)}")
    deliveries = None
    if session.role == "admin":
        deliveries = (await api.get(f"/v1/partners/{seg(partner_id)}/deliveries",
                                    limit=50))["items"]
    registrations = (await api.get("/v1/registrations", partner_id=partner_id, limit=10))
    return _page(request, "manager/partner.html", session, "partners", partner=partner,
                 deliveries=deliveries, registrations=registrations["items"],
                 types=PARTNER_TYPES, tiers=TIERS, partner_statuses=PARTNER_STATUSES,
                 form=form or partner, problem=problem,
                 errors=_field_errors(problem), status_code=status_code)


async def _save(request: Request, session: Session, directory: str, entry_id: str,
                body: Callable[[Any], dict[str, Any]],
                page: Callable[..., Awaitable[Response]]) -> Response:
    """A directory entry (partner or owner) saved through `PUT /v1/<directory>/{id}`; a
    refusal shows the page again with the typed values and the API's field errors."""
    form = await read_form(request)
    try:
        await ConsoleApi.of(request, session).call(
            "PUT", f"/v1/{directory}/{seg(entry_id)}", json=body(form))
    except ApiProblem as problem:
        if problem.status in (401, 404):
            raise
        return await page(request, session, entry_id, problem=problem,
                          form=dict(form.items()), status_code=problem.status)
    return RedirectResponse(f"/console/manager/{directory}/{seg(entry_id)}"
                            "?done=saved", status_code=303)


@router.get("/partners/{partner_id}")
async def partner(partner_id: str, request: Request,
                  session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    return await _partner_page(request, session, partner_id)


@router.post("/partners/{partner_id}")
async def edit_partner(partner_id: str, request: Request,
                       session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    return await _save(request, session, "partners", partner_id, _partner_body,
                       _partner_page)


# --- escalation owners ---------------------------------------------------------------------

@router.get("/owners")
async def owners(request: Request,
                 session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    api = ConsoleApi.of(request, session)
    page = await api.get("/v1/owners", cursor=request.query_params.get("cursor") or None,
                         limit=50)
    return _page(request, "manager/owners.html", session, "owners", page=page, form={},
                 errors={}, problem=None)


def _owner_body(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {name: _value(form, name) or None
                            for name in ("name", "email", "webhook_url")}
    if form.get("rotate_secret"):
        body["rotate_secret"] = True
    return {k: v for k, v in body.items() if v is not None}


@router.post("/owners")
async def create_owner(request: Request,
                       session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    form = await read_form(request)
    owner_id = _value(form, "id")
    api = ConsoleApi.of(request, session)
    try:
        if not owner_id:
            raise ApiProblem(422, "Validation failed", "The owner needs an id.",
                             [{"field": "id", "message": "required"}])
        await api.call("PUT", f"/v1/owners/{seg(owner_id)}", json=_owner_body(form))
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        page = await api.get("/v1/owners", limit=50)
        return _page(request, "manager/owners.html", session, "owners", page=page,
                     form=dict(form.items()), problem=problem,
                     errors=_field_errors(problem), status_code=problem.status)
    return RedirectResponse(f"/console/manager/owners/{seg(owner_id)}?done=created",
                            status_code=303)


async def _owner_page(request: Request, session: Session, owner_id: str, *,
                      problem: ApiProblem | None = None, form: dict[str, Any] | None = None,
                      status_code: int = 200) -> Response:
    api = ConsoleApi.of(request, session)
    if session.role == "admin":
        owner = await api.get(f"/v1/owners/{seg(owner_id)}")
        deliveries = (await api.get(f"/v1/owners/{seg(owner_id)}/deliveries", limit=50))["items"]
    else:
        listed = (await api.get("/v1/owners", limit=500))["items"]
        owner = next((o for o in listed if o["id"] == owner_id), None)
        if owner is None:
            raise ApiProblem(404, "Not found", f"No owner {owner_id}.")
        deliveries = None
    queue = await api.get("/v1/disputes", owner_id=owner_id, status="open", sort="due",
                          limit=20)
    return _page(request, "manager/owner.html", session, "owners", owner=owner,
                 deliveries=deliveries, queue=queue["items"], form=form or owner,
                 problem=problem, errors=_field_errors(problem),
                 status_code=status_code)


@router.get("/owners/{owner_id}")
async def owner(owner_id: str, request: Request,
                session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    return await _owner_page(request, session, owner_id)


@router.post("/owners/{owner_id}")
async def edit_owner(owner_id: str, request: Request,
                     session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    return await _save(request, session, "owners", owner_id, _owner_body, _owner_page)


@router.post("/deliveries/{delivery_id}/redeliver")
async def redeliver(delivery_id: str, request: Request,
                    session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    form = await read_form(request)
    await ConsoleApi.of(request, session).post(f"/v1/deliveries/{seg(delivery_id)}/redeliver")
    back = _value(form, "back")
    if not (back.startswith("/console/manager/") and "//" not in back):
        back = "/console/manager/owners"
    return RedirectResponse(f"{back}?done=redelivered", status_code=303)


# --- policy -------------------------------------------------------------------------------

@router.get("/policy")
async def policy(request: Request,
                 session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    api = ConsoleApi.of(request, session)
    current = await api.get("/v1/policy")
    versions = (await api.get("/v1/policy/versions", limit=100))["items"]
    params = request.query_params
    wanted = {k: params.get(k, "") for k in ("from", "to")}
    diff = None
    problem: ApiProblem | None = None
    if len(versions) > 1 or any(wanted.values()):
        try:
            diff = await api.get("/v1/policy/diff",
                                 **{k: v for k, v in wanted.items() if v.isdigit()})
        except ApiProblem as exc:
            if exc.status in (401, 403):
                raise
            problem = exc
    return _page(request, "manager/policy.html", session, "policy", current=current,
                 versions=versions, diff=diff, problem=problem)
