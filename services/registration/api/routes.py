"""Command endpoints: every accepted command is an event durable in the log before a 2xx.

Routes only translate HTTP (auth, `Prefer`, `Idempotency-Key`, path ids) and call the
handlers in `services/registration/handlers.py`, the same ones CloudEvents ingestion uses.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from services.registration.api.deps import (
    IDEMPOTENCY_KEY_MAX,
    IdempotencyKey,
    PreferHeader,
    get_commands,
    idempotent,
    lifespan,
    prefer_wait,
    requested_wait,
)
from services.registration.domain import access
from services.registration.domain.validation import IDENTIFIER_PATTERN
from services.registration.handlers import Commands
from services.registration.models import (
    ClaimRequest,
    ClaimView,
    CloseRequest,
    DisputeCommandView,
    DisputeRequest,
    OpportunityClosedRequest,
    RegistrationRequest,
    ResolutionRequest,
)
from shared.api.auth import Principal, admitted, require
from shared.api.problems import problem_responses
from shared.api.resources import RegistrationView

router = APIRouter(prefix="/v1", tags=["commands"], lifespan=lifespan)

EntityId = Annotated[str, Path(pattern=IDENTIFIER_PATTERN, max_length=100,
                               examples=["reg_01jd2v6x3k8m0q9r7s5t4w2y1z"])]
CommandsDep = Annotated[Commands, Depends(get_commands)]
Wait = Annotated[float, Depends(prefer_wait)]

_REGISTRATION_EXAMPLE: dict[str, Any] = {
    "id": "reg_01jd2v6x3k8m0q9r7s5t4w2y1z", "partner_id": "p-1", "account_key": "dom:acme.com",
    "account": {"name": "Acme Corp", "domain": "acme.com", "country": "US",
                "crm_account_id": None},
    "opportunity": {"title": "Analytics rollout", "products": ["analytics"],
                    "amount": {"value": "120000.00", "currency": "USD"},
                    "expected_close": "2027-03-31"},
    "motion": "resell", "external_ref": "PRM-123", "status": "approved",
    "submitted_at": "2026-11-23T09:00:00Z", "decided_at": "2026-11-23T09:00:00.120000Z",
    "protected_until": "2027-02-21T09:00:00Z", "extensions": 0, "dispute_id": None,
    "credit_percent": None,
    "decision": {"rule": "no_conflict", "policy_version": 1,
                 "explanation": "No other party holds this account.", "conflicts": []},
}
_DISPUTE_EXAMPLE: dict[str, Any] = {
    "id": "dsp_5f0c1e9a7b2d4c6e8a0b1c2d3e", "status": "open", "level": 1, "owner_id": "cm-1",
    "due_at": "2026-11-25T09:00:00Z", "acknowledged_at": None,
    "registration_ids": ["reg_01jd2v6x3k8m0q9r7s5t4w2y1z"], "resolution": None,
}


def _example(model: type, example: dict[str, Any], description: str) -> dict[str, Any]:
    return {"model": model, "description": description,
            "content": {"application/json": {"example": example}}}


REGISTRATION_ANSWERS: dict[int | str, dict[str, Any]] = {
    201: _example(RegistrationView, _REGISTRATION_EXAMPLE,
                  "Durable and decided within the `Prefer: wait`"),
    202: _example(RegistrationView, {**_REGISTRATION_EXAMPLE, "status": "submitted",
                                     "decided_at": None, "protected_until": None,
                                     "decision": None},
                  "Durable; not decided within the wait (or no wait asked)"),
    **problem_responses(400, 401, 403, 409, 413, 415, 422, 503),
}


async def submit_registration(
    body: RegistrationRequest, request: Request,
    principal: Annotated[Principal, Depends(require(*access.REGISTRANTS))],
    idempotency_key: IdempotencyKey = None, prefer: PreferHeader = None,
) -> Response:
    # The busiest route takes the process's `Commands` and the `Prefer` header itself,
    # as `get_commands` and `prefer_wait` do for the others: FastAPI solves every
    # dependency anew per request (session 27: each cost ~20 us of CPU here; same
    # OpenAPI document, same answers).
    commands: Commands = request.app.state.commands
    wait = requested_wait(prefer, request.app.state.runtime.settings.max_wait_seconds)
    return await idempotent(request, principal, commands, idempotency_key,
                            lambda: commands.submit_registration(principal, body, wait))


_REGISTRANTS = admitted(*access.REGISTRANTS)
"""Whom `require(*access.REGISTRANTS)` admits (admin always)."""


async def _registration_fast(request: Request) -> Response | None:
    """`submit_registration` for a request FastAPI would hand it as it is: an admitted
    principal, a body of exactly `application/json` that parses and validates, an
    `Idempotency-Key` within its length. The same call with the same arguments, without
    FastAPI's dependency solving and body handling (~0.2 ms of CPU per request, session
    28). None: anything else, which FastAPI's own handler then answers (its 403, 422 and
    400 answers stay its own; the body read here is cached on the request)."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal) or principal.role not in _REGISTRANTS:
        return None
    headers = request.headers
    if headers.get("content-type") != "application/json":
        return None
    key = headers.get("idempotency-key")
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
        return None
    raw = await request.body()
    try:
        # `json.loads` (FastAPI's) gives the same value for everything orjson accepts;
        # what orjson refuses (NaN, huge integers, other encodings) goes to FastAPI.
        data = orjson.loads(raw)
        body = RegistrationRequest.model_validate(data, from_attributes=True)
    except (orjson.JSONDecodeError, ValidationError):
        return None
    return await submit_registration(body, request, principal, key, headers.get("prefer"))


class _RegistrationRoute(APIRoute):
    """`POST /v1/registrations`: `_registration_fast` first, FastAPI's handler when it
    declines. The route, its parameters and its OpenAPI operation are FastAPI's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()

        async def handler(request: Request) -> Response:
            answer = await _registration_fast(request)
            return answer if answer is not None else await full(request)

        return handler


router.add_api_route(
    "/registrations", submit_registration, methods=["POST"], status_code=201,
    response_model=RegistrationView, responses=REGISTRATION_ANSWERS,
    summary="Register a deal",
    description="A partner registers for itself; an integration or admin names the "
    "`partner_id`. The account key is resolved (exact CRM id / domain, fuzzy name "
    "within the country), the policy version and partner snapshot are stamped, and "
    "the event is appended before the answer.", route_class_override=_RegistrationRoute)


LIFECYCLE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: _example(RegistrationView, _REGISTRATION_EXAMPLE,
                  "Durable and applied within the `Prefer: wait`"),
    202: _example(RegistrationView, _REGISTRATION_EXAMPLE,
                  "Durable; the registration as the read model shows it now"),
    **problem_responses(400, 401, 404, 409, 413, 415, 422, 503),
}


@router.post("/registrations/{registration_id}/withdraw", status_code=202,
             response_model=RegistrationView, responses=LIFECYCLE_ANSWERS,
             summary="Withdraw a registration",
             description="The owning partner, an integration or an admin ends the "
             "registration's protection. Another partner's registration is 404.")
async def withdraw(
    registration_id: EntityId, request: Request, commands: CommandsDep, wait: Wait,
    principal: Annotated[Principal, Depends(require(*access.REGISTRANTS))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await idempotent(request, principal, commands, idempotency_key,
                            lambda: commands.withdraw(principal, registration_id, wait))


@router.post("/registrations/{registration_id}/extend", status_code=202,
             response_model=RegistrationView, responses=LIFECYCLE_ANSWERS,
             summary="Extend a registration's protection",
             description="One more `extension.period`, up to the policy's "
             "`max_extensions`, and only within `extension.window` before the protection "
             "ends (409 otherwise); only an approved registration can be extended.")
async def extend(
    registration_id: EntityId, request: Request, commands: CommandsDep, wait: Wait,
    principal: Annotated[Principal, Depends(require(*access.REGISTRANTS))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await idempotent(request, principal, commands, idempotency_key,
                            lambda: commands.extend(principal, registration_id, wait))


@router.post("/registrations/{registration_id}/close", status_code=202,
             response_model=RegistrationView, responses=LIFECYCLE_ANSWERS,
             summary="Close the opportunity (won or lost)",
             description="What a CRM reports with `crm.opportunity.closed.v1`, as a "
             "command: protection ends, and a win makes the party the account's incumbent. "
             "Integration and admin only: a close is a CRM fact (the owning partner "
             "withdraws instead).")
async def close(
    registration_id: EntityId, body: CloseRequest, request: Request, commands: CommandsDep,
    wait: Wait, principal: Annotated[Principal, Depends(require(*access.CLOSERS))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    command = OpportunityClosedRequest(registration_id=registration_id, outcome=body.outcome,
                                       amount=body.amount)
    return await idempotent(request, principal, commands, idempotency_key,
                            lambda: commands.close(principal, command, wait))


@router.post("/claims", status_code=201, response_model=ClaimView, responses={
    201: _example(ClaimView, {
        "id": "clm_01jd2vb0c1d2e3f4g5h6j7k8m9", "kind": "named_account", "rep_id": "rep-7",
        "account_key": "dom:globex.de",
        "account": {"name": "Globex GmbH", "domain": "globex.de", "country": "DE",
                    "crm_account_id": None},
        "products": [], "status": "submitted", "filed_at": "2026-11-23T09:00:00Z",
        "decided_at": None, "protected_until": None, "decision": None},
        "Durable; decided fields filled when decided within the `Prefer: wait`"),
    **problem_responses(400, 401, 403, 409, 413, 415, 422, 503)},
    summary="File a direct claim",
    description="A rep claims a named account (all products) or an opportunity (its "
    "products) for itself; an integration or admin names the `rep_id`.")
async def file_claim(
    body: ClaimRequest, request: Request, commands: CommandsDep, wait: Wait,
    principal: Annotated[Principal, Depends(require(*access.CLAIMANTS))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await idempotent(request, principal, commands, idempotency_key,
                            lambda: commands.file_claim(principal, body, wait))


_RELEASED_CLAIM: dict[str, Any] = {
    "id": "clm_01jd2vb0c1d2e3f4g5h6j7k8m9", "kind": "named_account", "rep_id": "rep-7",
    "account_key": "dom:globex.de",
    "account": {"name": "Globex GmbH", "domain": "globex.de", "country": "DE",
                "crm_account_id": None},
    "products": [], "status": "withdrawn", "filed_at": "2026-11-23T09:00:00Z",
    "decided_at": "2026-11-23T09:00:00.080000Z", "protected_until": None,
    "decision": {"rule": "no_conflict", "policy_version": 1,
                 "explanation": "No other party holds this account.", "conflicts": []}}


@router.post("/claims/{claim_id}/release", status_code=202, response_model=ClaimView,
             responses={
                 200: _example(ClaimView, _RELEASED_CLAIM, "Released within the `Prefer: wait`"),
                 202: _example(ClaimView, _RELEASED_CLAIM,
                               "Durable; the claim as the read model shows it now"),
                 **problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503)},
             summary="Release a direct claim",
             description="The claim's rep, an integration or an admin gives a named-account "
             "or opportunity claim up: its protection ends (status `withdrawn`, reason "
             "`released`) and the account is free for partners. Another rep's claim is 404. "
             "CRMs send `dealreg.claim.released.v1` to `POST /v1/events` instead.")
async def release_claim(
    claim_id: EntityId, request: Request, commands: CommandsDep, wait: Wait,
    principal: Annotated[Principal, Depends(require(*access.CLAIMANTS))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await idempotent(request, principal, commands, idempotency_key,
                            lambda: commands.release_claim(principal, claim_id, wait))


DISPUTE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: _example(DisputeCommandView, _DISPUTE_EXAMPLE, "Applied within the `Prefer: wait`"),
    202: _example(DisputeCommandView, _DISPUTE_EXAMPLE,
                  "Durable; the dispute as the read model shows it now"),
    **problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
}


@router.post("/registrations/{registration_id}/disputes", status_code=201,
             response_model=DisputeCommandView, responses={
                 201: _example(DisputeCommandView, _DISPUTE_EXAMPLE,
                               "Opened (or joined) within the `Prefer: wait`"),
                 202: _example(DisputeCommandView, {
                     "id": "dsp_5f0c1e9a7b2d4c6e8a0b1c2d3e", "status": "pending",
                     "registration_ids": ["reg_01jd2v6x3k8m0q9r7s5t4w2y1z"]},
                     "Durable, not adjudicated yet (no wait asked, or it ran out)"),
                 **problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503)},
             summary="Contest a rejection",
             description="The owning partner (or an integration / admin for it) contests a "
             "registration rejected by a precedence rule; a dispute opens at level 1. With "
             "`Prefer: wait` the answer is adjudication's: 201 with the dispute, or the "
             "refusal as a problem (409, with the reason, e.g. `not_disputable` for a "
             "`duplicate` rejection); otherwise 202 `pending`. Dispute ids are opaque.")
async def file_dispute(
    registration_id: EntityId, body: DisputeRequest, request: Request,
    commands: CommandsDep, wait: Wait,
    principal: Annotated[Principal, Depends(require(*access.REGISTRANTS))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await idempotent(request, principal, commands, idempotency_key,
                            lambda: commands.file_dispute(principal, registration_id, body,
                                                          wait))


DisputeId = Annotated[str, Path(pattern=IDENTIFIER_PATTERN, max_length=100,
                                examples=["dsp_5f0c1e9a7b2d4c6e8a0b1c2d3e"])]


@router.post("/disputes/{dispute_id}/acknowledge", status_code=202,
             response_model=DisputeCommandView, responses=DISPUTE_ANSWERS,
             summary="Acknowledge a dispute",
             description="The owner the dispute is assigned to (or an admin) takes it in "
             "hand; reminders stop for this level.")
async def acknowledge(
    dispute_id: DisputeId, request: Request, commands: CommandsDep, wait: Wait,
    principal: Annotated[Principal, Depends(require(*access.DISPUTE_ACTORS))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await idempotent(request, principal, commands, idempotency_key,
                            lambda: commands.acknowledge(principal, dispute_id, wait))


@router.post("/disputes/{dispute_id}/resolve", status_code=202,
             response_model=DisputeCommandView, responses=DISPUTE_ANSWERS,
             summary="Resolve a dispute",
             description="The assigned owner (or an admin) settles it: `award` one "
             "registration (or `awards` by product), `split` the credit, `co_sell`, "
             "`reject_all`, or `distinct` (different customers after all). Members that "
             "overlap no winner keep their approval.")
async def resolve(
    dispute_id: DisputeId, body: ResolutionRequest, request: Request, commands: CommandsDep,
    wait: Wait, principal: Annotated[Principal, Depends(require(*access.DISPUTE_ACTORS))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await idempotent(request, principal, commands, idempotency_key,
                            lambda: commands.resolve(principal, dispute_id, body, wait))
