"""Reference data and credentials: API keys, partners, escalation owners, policy versions.

Partners, owners and policy versions are appended to the reference topic before they are
stored or served (see `adapters/reference.py`); API keys live only in the store (hashed).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import ValidationError

from services.registration.adapters.reference import VersionConflict, active_secrets
from services.registration.api.deps import IdempotencyKey, get_commands, idempotent
from services.registration.domain import access, policy_edits
from services.registration.domain.validation import IDENTIFIER_PATTERN
from services.registration.handlers import Commands, Outcome, field_errors
from services.registration.models import (
    ApiKeyCreated,
    ApiKeyRequest,
    EscalationOwnerView,
    OwnerRequest,
    PartnerRequest,
    PartnerView,
)
from shared.api.auth import SUBJECT_ROLES, Authenticator, Principal, require
from shared.api.problems import Problem, problem_responses
from shared.policy import Policy
from shared.settings import Settings
from shared.webhooks.url_policy import Unresolvable, UnsafeUrl, UrlPolicy, resolve_webhook

router = APIRouter(prefix="/v1", tags=["reference data"])

CommandsDep = Annotated[Commands, Depends(get_commands)]
Admin = Annotated[Principal, Depends(require())]
RefId = Annotated[str, Path(pattern=IDENTIFIER_PATTERN, max_length=100, examples=["p-1"])]

_SECRETS = [{"id": "sec_3f1c0a9b2d4e6f70", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
             "status": "current", "expires_at": None}]
_PARTNER = {"id": "p-1", "name": "Acme Reseller", "type": "reseller", "tier": "gold",
            "region": "EMEA", "status": "active",
            "webhook_url": "https://hooks.acme.example/dealreg",
            "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "webhook_secrets": _SECRETS, "updated_at": "2026-11-23T09:00:00Z"}
_OWNER = {"id": "cm-1", "name": "EMEA channel manager", "email": "cm-emea@vendor.example",
          "webhook_url": "https://hooks.vendor.example/dealreg",
          "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
          "webhook_secrets": _SECRETS, "updated_at": "2026-11-23T09:00:00Z"}


async def check_webhook_url(url: str | None, settings: Settings) -> None:
    """The webhook URL policy at the door (the sender applies the same one at send time):
    422 naming the reason. A name that does not resolve yet is accepted; the sender checks
    it again when it sends."""
    if url is None:
        return
    try:
        await resolve_webhook(url, UrlPolicy.from_settings(settings))
    except Unresolvable:
        pass
    except UnsafeUrl as exc:
        raise Problem(422, "Validation failed", "The webhook URL is not allowed.",
                      errors=[{"field": "webhook_url", "message": exc.reason}]) from exc


def _partner_view(row: dict[str, Any], *, url: bool, secrets: bool) -> PartnerView:
    """A partner as one caller may see it: secrets only on PUT and to admins, the webhook
    URL also to integrations and the partner itself."""
    return PartnerView.model_validate({
        **row, "webhook_url": row.get("webhook_url") if url else None,
        "webhook_secret": row.get("webhook_secret") if secrets else None,
        "webhook_secrets": active_secrets(row) if secrets else []})


def _owner_view(row: dict[str, Any]) -> EscalationOwnerView:
    return EscalationOwnerView.model_validate({**row, "webhook_secrets": active_secrets(row)})
_POLICY = Policy.default().model_dump(mode="json")


def _ok(model: type, example: dict[str, Any], description: str) -> dict[str, Any]:
    return {"model": model, "description": description,
            "content": {"application/json": {"example": example}}}


@router.post("/api-keys", status_code=201, response_model=ApiKeyCreated, responses={
    201: _ok(ApiKeyCreated, {"id": "key_01jd2vc3m4n5p6q7r8s9t0v1w2",
                             "token": "drk.key_01jd2vc3m4n5p6q7r8s9t0v1w2.3q2-7wVd0b5Yy1v4n"
                                      "V9cX6rK8mP2sT0uW4eA7iO1lHjG",
                             "role": "partner", "subject_id": "p-1",
                             "name": "Acme PRM portal", "created_at": "2026-11-23T09:00:00Z"},
             "The key; its token is shown this once"),
    **problem_responses(400, 401, 403, 409, 413, 415, 422)},
    summary="Mint an API key", tags=["auth"],
    description="Admin only. Partner, rep and owner keys are bound to `subject_id`. The "
    "token (`drk.<id>.<secret>`, 256 random bits) is returned once; only its SHA-256 is "
    "stored.")
async def create_api_key(body: ApiKeyRequest, request: Request, principal: Admin,
                         commands: CommandsDep, idempotency_key: IdempotencyKey = None
                         ) -> Response:
    if body.role in SUBJECT_ROLES and not body.subject_id:
        raise Problem(422, "Validation failed", "The request has invalid fields.", errors=[
            {"field": "subject_id", "message": f"a {body.role} key acts as one subject_id"}])
    authenticator: Authenticator = request.app.state.authenticator

    async def mint() -> Outcome:
        key = await authenticator.mint(body.role, body.subject_id, body.name)
        return Outcome(201, ApiKeyCreated(id=key.id, token=key.token, role=key.role,
                                          subject_id=key.subject_id, name=key.name,
                                          created_at=key.created_at),
                       {"Location": f"/v1/api-keys/{key.id}"})

    def without_token(outcome: Outcome) -> Outcome:
        # A replay names the key it minted but never stores or shows the token again.
        assert isinstance(outcome.body, ApiKeyCreated)
        return Outcome(outcome.status_code, outcome.body.model_copy(update={
            "token": "(shown once, to the first request)"}), outcome.headers)

    return await idempotent(request, principal, commands, idempotency_key, mint,
                            remember=without_token)


@router.delete("/api-keys/{key_id}", status_code=204, tags=["auth"],
               responses=problem_responses(401, 403, 404), summary="Revoke an API key",
               description="Admin only. Other processes stop accepting it within "
               "`DEALREG_API_KEY_CACHE_SECONDS`.")
async def revoke_api_key(key_id: RefId, request: Request, principal: Admin) -> Response:
    authenticator: Authenticator = request.app.state.authenticator
    if not await authenticator.revoke(key_id):
        raise Problem(404, "Not found", f"No active API key {key_id}.")
    return Response(status_code=204)


@router.put("/partners/{partner_id}", status_code=200, response_model=PartnerView, responses={
    200: _ok(PartnerView, _PARTNER, "Replaced (or unchanged)"),
    201: _ok(PartnerView, _PARTNER, "Created"),
    **problem_responses(400, 401, 403, 413, 415, 422, 503)},
    summary="Create or replace a partner",
    description="Admin or integration. A change of status or tier reaches every "
    "adjudicator in order with the registrations it decides; an exited partner's "
    "protections end. A `webhook_url` subscribes the partner to `dispute.resolved` about "
    "its own registrations (redacted); its Standard Webhooks secret is generated when the "
    "URL is first set and returned here. `rotate_secret` / `retire_previous_secret` work as "
    "for owners.")
async def put_partner(
    partner_id: RefId, body: PartnerRequest, commands: CommandsDep,
    principal: Annotated[Principal, Depends(require(*access.PARTNER_EDITORS))],
) -> Response:
    await check_webhook_url(body.webhook_url, commands.settings)
    row, created, _ = await commands.reference.put_partner(
        partner_id, body.model_dump(), by=principal.actor_id,
        grace_seconds=commands.settings.webhook_secret_grace_seconds)
    view = _partner_view(row, url=True, secrets=True)
    return Response(view.model_dump_json(), status_code=201 if created else 200,
                    media_type="application/json")


@router.get("/partners/{partner_id}", response_model=PartnerView,
            responses={200: _ok(PartnerView, _PARTNER, "The partner"),
                       **problem_responses(401, 403, 404)},
            summary="A partner", description="Admin, integration, channel managers, "
            "escalation owners (the parties of their disputes: tier and type), and a "
            "partner for itself.")
async def get_partner(
    partner_id: RefId, commands: CommandsDep,
    principal: Annotated[Principal, Depends(require("integration", "channel_manager",
                                                    "owner", "partner"))],
) -> PartnerView:
    row = await commands.reference.partner(partner_id)
    if row is None or (principal.role == "partner" and principal.subject_id != partner_id):
        raise Problem(404, "Not found", f"No partner {partner_id}.")
    return _partner_view(row, url=principal.role in ("admin", "integration", "partner"),
                         secrets=principal.role == "admin")


@router.put("/owners/{owner_id}", status_code=200, response_model=EscalationOwnerView,
            responses={200: _ok(EscalationOwnerView, _OWNER, "Replaced (or unchanged)"),
                       201: _ok(EscalationOwnerView, _OWNER, "Created"),
                       **problem_responses(400, 401, 403, 413, 415, 422, 503)},
            summary="Create or replace an escalation owner",
            description="Admin only. The Standard Webhooks signing secret (`whsec_...`) is "
            "generated when not given, kept when an existing owner is replaced without one, "
            "and returned. `rotate_secret: true` makes a new secret current and keeps the "
            "old one signing for `DEALREG_WEBHOOK_SECRET_GRACE_SECONDS` (24 h) or until "
            "`retire_previous_secret: true`; `webhook_secrets` lists the active ones.")
async def put_owner(owner_id: RefId, body: OwnerRequest, principal: Admin,
                    commands: CommandsDep) -> Response:
    await check_webhook_url(body.webhook_url, commands.settings)
    row, created = await commands.reference.put_owner(
        owner_id, body.model_dump(), by=principal.actor_id,
        grace_seconds=commands.settings.webhook_secret_grace_seconds)
    view = _owner_view(row)
    return Response(view.model_dump_json(), status_code=201 if created else 200,
                    media_type="application/json")


@router.get("/owners/{owner_id}", response_model=EscalationOwnerView,
            responses={200: _ok(EscalationOwnerView, _OWNER, "The owner"),
                       **problem_responses(401, 403, 404)},
            summary="An escalation owner", description="Admin only (it shows the secret).")
async def get_owner(owner_id: RefId, principal: Admin,
                    commands: CommandsDep) -> EscalationOwnerView:
    row = await commands.reference.owner(owner_id)
    if row is None:
        raise Problem(404, "Not found", f"No owner {owner_id}.")
    return _owner_view(row)


@router.put("/policy", status_code=201, response_model=Policy, responses={
    200: _ok(Policy, _POLICY, "Identical to the current version: nothing published"),
    201: _ok(Policy, _POLICY, "Published as the next version"),
    **problem_responses(400, 401, 403, 409, 413, 415, 422, 503)},
    summary="Publish a policy version",
    description="Admin only. The body is merged onto the current version: fields it omits "
    "keep their current values (objects merge field by field, lists and scalars are "
    "replaced); send the defaults (`GET /v1/policy/1`) to return to them. 422 for an empty "
    "`exclusive_motions` or `precedence` and for escalation owners that do not exist "
    "(`PUT /v1/owners/{id}` first); nothing is published then. The server "
    "assigns `version` (the current one plus one); a `version` in the body is an "
    "optimistic check (409 if it is not the next one). Versions are immutable. The document "
    "is durable on the reference topic before it is served or stamped.")
async def put_policy(body: Policy, principal: Admin, commands: CommandsDep) -> Response:
    expected = body.version if "version" in body.model_fields_set else None
    current = await commands.reference.latest_policy()
    try:
        document = Policy.model_validate(policy_edits.merged_document(current, body))
    except ValidationError as exc:
        raise Problem(422, "Validation failed", "The merged policy is invalid.",
                      errors=field_errors(exc)) from exc
    errors = policy_edits.edit_errors(document)
    for field, owner_id in policy_edits.named_owners(current, body):
        if await commands.reference.owner(owner_id) is None:
            errors.append({"field": field, "message": f"no escalation owner {owner_id!r}; "
                           f"PUT /v1/owners/{owner_id} first"})
    if errors:
        raise Problem(422, "Validation failed", "The policy was not published: "
                      + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                      errors=errors)
    if expected is None and document.model_dump(exclude={"version"}) != \
            current.model_dump(exclude={"version"}):
        # Merged onto `current`: if another edit was published meanwhile, 409, not a lost
        # update.
        expected = current.version + 1
    try:
        published = await commands.reference.publish(document,
                                                      published_by=principal.actor_id,
                                                      expected_version=expected)
    except VersionConflict as exc:
        raise Problem(409, "Conflict", f"The next policy version is {exc.expected}.") from exc
    return Response(published.policy.model_dump_json(),
                    status_code=201 if published.created else 200,
                    media_type="application/json",
                    headers={"Location": f"/v1/policy/{published.policy.version}"})


READERS = access.READERS


@router.get("/policy", response_model=Policy,
            responses={200: _ok(Policy, _POLICY, "The policy in force"),
                       **problem_responses(401, 403)},
            summary="The current policy", description="Every role.")
async def current_policy(
    commands: CommandsDep, principal: Annotated[Principal, Depends(require(*READERS))],
) -> Policy:
    return await commands.reference.current_policy()


@router.get("/policy/{version}", response_model=Policy,
            responses={200: _ok(Policy, _POLICY, "That version"),
                       **problem_responses(401, 403, 404, 422)},
            summary="A policy version", description="Every role. Versions never change.")
async def policy_version(
    version: Annotated[int, Path(ge=1, le=2_147_483_647)], commands: CommandsDep,
    principal: Annotated[Principal, Depends(require(*READERS))],
) -> Policy:
    found = await commands.reference.policy(version)
    if found is None:
        raise Problem(404, "Not found", f"No policy version {version}.")
    return found[0]
