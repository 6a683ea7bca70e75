"""The partner area (partner and rep roles): my registrations, a registration's decision
and timeline, register a deal, extend, withdraw, contest.

Everything shown is what /v1 answers to the user's own key (the partner view): the console
adds no data about competitors and hides nothing the API would show. A registration of
another partner is the API's 404, so it is the console's 404 too.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import ImmutableMultiDict
from starlette.responses import Response

from services.console.client import ApiProblem, ConsoleApi, form_key
from services.console.pages import Area, render
from services.console.session import Session, read_form

AREA = Area("partner", "Registrations", frozenset({"partner", "rep"}))
router = AREA.router()

STATUSES = ("submitted", "approved", "in_review", "rejected", "expired", "withdrawn", "won",
            "lost")
MOTIONS = ("resell", "referral", "co_sell", "influence")
REGISTRANTS = frozenset({"partner", "admin"})
"""Roles the API lets register, extend, withdraw and contest (a rep claims instead)."""
CLAIMANTS = frozenset({"rep", "admin"})
"""Roles the API lets file and release direct claims."""
CLAIM_KINDS = ("named_account", "opportunity")
CLAIM_FIELDS = ("rep_id", "kind", "account.name", "account.domain", "account.country",
                "account.crm_account_id", "products")
WAIT_SECONDS = 10

FORM_FIELDS = (
    "partner_id", "account.name", "account.domain", "account.country",
    "account.crm_account_id", "opportunity.title", "opportunity.products",
    "opportunity.amount.value", "opportunity.amount.currency", "opportunity.expected_close",
    "motion", "external_ref",
)
"""The register form's inputs, named by the API field they fill (so a problem's
`errors[].field` names the input it belongs next to)."""
FIELDSETS = ("account", "opportunity.amount", "opportunity")

DONE = {
    "registered": "Registered.",
    "extended": "Protection extended.",
    "withdrawn": "Registration withdrawn.",
    "contested": "Decision contested: a dispute is open and an escalation owner will decide.",
    "claimed": "Claim filed.",
    "released": "Claim released: the account is free for partners.",
}


def _text(form: ImmutableMultiDict[str, str], name: str) -> str | None:
    value = (form.get(name) or "").strip()
    return value or None


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def registration_body(form: ImmutableMultiDict[str, str], role: str) -> dict[str, Any]:
    """The POST /v1/registrations body the form describes (blank inputs left out, so the
    API names what is missing)."""
    account = _compact({k: _text(form, f"account.{k}")
                        for k in ("name", "domain", "country", "crm_account_id")})
    products = [p.strip() for p in (form.get("opportunity.products") or "").split(",")
                if p.strip()]
    amount = _compact({"value": _text(form, "opportunity.amount.value"),
                       "currency": _text(form, "opportunity.amount.currency")})
    opportunity = _compact({"title": _text(form, "opportunity.title"), "products": products,
                            "amount": amount or None,
                            "expected_close": _text(form, "opportunity.expected_close")})
    return _compact({
        "partner_id": _text(form, "partner_id") if role != "partner" else None,
        "account": account, "opportunity": opportunity, "motion": _text(form, "motion"),
        "external_ref": _text(form, "external_ref"),
    })


def place_errors(problem: ApiProblem) -> tuple[dict[str, str], list[str]]:
    """(errors next to an input or fieldset, errors for the top of the form)."""
    placed: dict[str, str] = {}
    general: list[str] = []
    for error in problem.errors:
        name, message = error["field"], error["message"].removeprefix("Value error, ")
        target = next((f for f in (*FORM_FIELDS, *CLAIM_FIELDS, *FIELDSETS, "reason")
                       if name == f or name.startswith(f + ".")), None)
        if target is None:
            general.append(f"{name}: {message}" if name not in ("", "body") else message)
        else:
            placed.setdefault(target, message)
    if not problem.errors:
        general.append(problem.detail or problem.title)
    return placed, general


@router.get("/")
async def registrations(request: Request, session: Annotated[Session, Depends(AREA.guard)],
                        status: str | None = None, cursor: str | None = None) -> Response:
    api = ConsoleApi.of(request, session)
    chosen = status if status in STATUSES else None
    page = await api.get("/v1/registrations", status=chosen, cursor=cursor, limit=25)
    return render(request, "partner/list.html", session, page=page, statuses=STATUSES,
                  status=chosen, can_register=session.role in REGISTRANTS,
                  can_claim=session.role in CLAIMANTS)


def _form_page(request: Request, session: Session, template: str, values: dict[str, str],
               *, problem: ApiProblem | None = None, key: str | None = None,
               **context: Any) -> Response:
    """A command form: the API's problem placed next to its fields, every value kept, and
    the same Idempotency-Key again when the form is sent back after a refusal."""
    errors, general = place_errors(problem) if problem else ({}, [])
    return render(request, template, session,
                  status_code=problem.status if problem else 200, values=values,
                  errors=errors, general=general, idempotency_key=key or form_key(),
                  **context)


def _register_page(request: Request, session: Session, values: dict[str, str], *,
                   problem: ApiProblem | None = None, key: str | None = None) -> Response:
    return _form_page(request, session, "partner/register.html", values, problem=problem,
                      key=key, motions=MOTIONS)


def _not_for(request: Request, session: Session, what: str) -> Response:
    """A command form the user's role may not send (the API would refuse it after all the
    typing): the 403 page saying so, not the form."""
    return render(request, "error.html", session, status_code=403, title="Not for your role",
                  detail=f"{what} The {session.role.replace('_', ' ')} role cannot.")


@router.get("/register")
async def register_form(request: Request,
                        session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    if session.role not in REGISTRANTS:
        return _not_for(request, session, "Partners register deals; a direct rep claims an "
                        "account instead (Claim an account).")
    return _register_page(request, session, {"motion": "resell"})


@router.post("/register")
async def register(request: Request,
                   session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    form = await read_form(request)
    values = {name: form.get(name) or "" for name in FORM_FIELDS}
    key = form_key(form)
    try:
        created = await ConsoleApi.of(request, session).post(
            "/v1/registrations", registration_body(form, session.role), wait=WAIT_SECONDS,
            idempotency_key=key)
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        return _register_page(request, session, values, problem=problem, key=key)
    return RedirectResponse(f"/console/partner/registrations/{created['id']}?done=registered",
                            status_code=303)


def _facts(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """A timeline entry's scalar fields worth showing (ids and the explanation aside)."""
    skip = {"explanation", "event_id", "registration_id", "partner_id", "policy_version"}
    return [(k, v) for k, v in data.items()
            if k not in skip and isinstance(v, str | int | float | bool) and v != ""][:8]


async def _registration_page(request: Request, session: Session, registration_id: str, *,
                             problem: ApiProblem | None = None, reason: str = "",
                             kept: dict[str, str] | None = None) -> Response:
    api = ConsoleApi.of(request, session)
    ident = quote(registration_id, safe="")
    registration = await api.get(f"/v1/registrations/{ident}")
    timeline = await api.get(f"/v1/registrations/{ident}/timeline")
    errors, general = place_errors(problem) if problem else ({}, [])
    done = DONE.get(request.query_params.get("done") or "")
    # One key per action form, drawn as the page is shown; a form sent back after a
    # refusal keeps its key (nothing was applied under it: a retry is the same command).
    keys = {verb: form_key() for verb in ("extend", "withdraw", "contest")}
    keys.update(kept or {})
    return render(request, "partner/registration.html", session,
                  status_code=problem.status if problem else 200, r=registration,
                  entries=timeline["entries"], facts=_facts, done=done, errors=errors,
                  general=general, reason=reason, can_act=session.role in REGISTRANTS,
                  keys=keys)


@router.get("/registrations/{registration_id}")
async def registration(registration_id: str, request: Request,
                       session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    return await _registration_page(request, session, registration_id)


async def _act(request: Request, session: Session, registration_id: str, verb: str,
               done: str, body: Any = None, reason: str = "") -> Response:
    """POST the action under its form's Idempotency-Key: a double submit or a retried
    POST gets the first one's answer instead of applying the command twice."""
    key = form_key(await read_form(request))
    try:
        await ConsoleApi.of(request, session).post(
            f"/v1/registrations/{quote(registration_id, safe='')}/{verb}", body,
            wait=WAIT_SECONDS, idempotency_key=key)
    except ApiProblem as problem:
        if problem.status in (401, 404):
            raise
        form = {"disputes": "contest"}.get(verb, verb)
        return await _registration_page(request, session, registration_id, problem=problem,
                                        reason=reason, kept={form: key})
    return RedirectResponse(
        f"/console/partner/registrations/{quote(registration_id, safe='')}?done={done}",
        status_code=303)


@router.post("/registrations/{registration_id}/extend")
async def extend(registration_id: str, request: Request,
                 session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    return await _act(request, session, registration_id, "extend", "extended")


@router.post("/registrations/{registration_id}/withdraw")
async def withdraw(registration_id: str, request: Request,
                   session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    return await _act(request, session, registration_id, "withdraw", "withdrawn")


@router.post("/registrations/{registration_id}/contest")
async def contest(registration_id: str, request: Request,
                  session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    reason = (await read_form(request)).get("reason") or ""
    return await _act(request, session, registration_id, "disputes", "contested",
                      body={"reason": reason.strip()}, reason=reason)


# --- direct claims (reps) ----------------------------------------------------------------


def claim_body(form: ImmutableMultiDict[str, str], role: str) -> dict[str, Any]:
    """The POST /v1/claims body the form describes."""
    account = _compact({k: _text(form, f"account.{k}")
                        for k in ("name", "domain", "country", "crm_account_id")})
    products = [p.strip() for p in (form.get("products") or "").split(",") if p.strip()]
    return _compact({"rep_id": _text(form, "rep_id") if role != "rep" else None,
                     "kind": _text(form, "kind"), "account": account, "products": products})


def _claim_form(request: Request, session: Session, values: dict[str, str], *,
                problem: ApiProblem | None = None, key: str | None = None) -> Response:
    return _form_page(request, session, "partner/claim_form.html", values, problem=problem,
                      key=key, kinds=CLAIM_KINDS)


@router.get("/claim")
async def claim_form(request: Request,
                     session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    if session.role not in CLAIMANTS:
        return _not_for(request, session, "Direct reps claim accounts; a partner registers "
                        "a deal instead (Register a deal).")
    return _claim_form(request, session, {"kind": "named_account"})


@router.post("/claim")
async def file_claim(request: Request,
                     session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    form = await read_form(request)
    values = {name: form.get(name) or "" for name in CLAIM_FIELDS}
    key = form_key(form)
    try:
        created = await ConsoleApi.of(request, session).post(
            "/v1/claims", claim_body(form, session.role), wait=WAIT_SECONDS,
            idempotency_key=key)
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        return _claim_form(request, session, values, problem=problem, key=key)
    return RedirectResponse(f"/console/partner/claims/{quote(created['id'], safe='')}"
                            "?done=claimed", status_code=303)


def claim_state(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A claim as its timeline tells it (the API has no claim read): the account and kind
    it was filed with, its latest status, and the decision's explanation."""
    state: dict[str, Any] = {}
    for entry in entries:
        data = entry.get("data") or {}
        for key in ("kind", "rep_id", "account", "account_key", "filed_at", "status",
                    "rule", "explanation", "protected_until", "products"):
            if data.get(key) not in (None, "", []):
                state[key] = data[key]
        if entry.get("type", "").startswith("dealreg.claim.released"):
            state["status"] = "withdrawn"
    return state


async def _claim_page(request: Request, session: Session, claim_id: str, *,
                      problem: ApiProblem | None = None, key: str | None = None) -> Response:
    timeline = await ConsoleApi.of(request, session).get(
        f"/v1/registrations/{quote(claim_id, safe='')}/timeline")
    _, general = place_errors(problem) if problem else ({}, [])
    return render(request, "partner/claim.html", session,
                  status_code=problem.status if problem else 200, claim_id=claim_id,
                  c=claim_state(timeline["entries"]), entries=timeline["entries"],
                  facts=_facts, done=DONE.get(request.query_params.get("done") or ""),
                  general=general, can_act=session.role in CLAIMANTS,
                  release_key=key or form_key())


@router.get("/claims/{claim_id}")
async def claim(claim_id: str, request: Request,
                session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    return await _claim_page(request, session, claim_id)


@router.post("/claims/{claim_id}/release")
async def release(claim_id: str, request: Request,
                  session: Annotated[Session, Depends(AREA.guard)]) -> Response:
    key = form_key(await read_form(request))
    try:
        await ConsoleApi.of(request, session).post(
            f"/v1/claims/{quote(claim_id, safe='')}/release", wait=WAIT_SECONDS,
            idempotency_key=key)
    except ApiProblem as problem:
        if problem.status in (401, 404):
            raise
        return await _claim_page(request, session, claim_id, problem=problem, key=key)
    return RedirectResponse(f"/console/partner/claims/{quote(claim_id, safe='')}"
                            "?done=released", status_code=303)
