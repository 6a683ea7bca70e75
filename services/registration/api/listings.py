"""The directories as lists (issue 15, admin tooling; the console's directory pages):
`GET /v1/partners`, `GET /v1/owners`, `GET /v1/api-keys`, `GET /v1/policy/versions` and
`GET /v1/policy/diff`.

Lists page with the convention of every list (`?cursor&limit` -> `{items, next_cursor}`,
keyset on the primary key) and carry no secret. Who may list:

| list                      | admin | integration | channel_manager | others |
|---------------------------|-------|-------------|-----------------|--------|
| partners                  | yes   | yes         | yes             | 403    |
| owners                    | yes   | -           | yes             | 403    |
| api-keys                  | yes   | -           | -               | 403    |
| policy versions and diffs | every role (the policy is read by every role)      |

A partner's webhook URL is shown to admins and integrations (as `GET /v1/partners/{id}`),
never to channel managers. This router is included before `reference.py`'s so that
`/v1/policy/versions` and `/v1/policy/diff` are not taken for `/v1/policy/{version}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from services.registration.adapters import listings
from services.registration.api.deps import get_commands
from services.registration.domain import access
from services.registration.handlers import Commands
from services.registration.listing_models import (
    ApiKeyPage,
    ApiKeyView,
    OwnerPage,
    OwnerSummary,
    PartnerPage,
    PolicyChange,
    PolicyDiff,
    PolicyVersionPage,
    PolicyVersionView,
)
from services.registration.models import PartnerView
from shared.api.auth import Principal, Role, require
from shared.api.cursors import decode_cursor, encode_cursor
from shared.api.problems import Problem, problem_responses
from shared.events.reference import PartnerStatus, PartnerTier, PartnerType
from shared.policy_diff import policy_diff

router = APIRouter(prefix="/v1", tags=["reference data"])

CommandsDep = Annotated[Commands, Depends(get_commands)]
Cursor = Annotated[str | None, Query(max_length=400,
                                     description="`next_cursor` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=500)]
_ERRORS = problem_responses(401, 403, 422)


def _next(rows: list[dict[str, Any]], limit: int, key: str) -> str | None:
    return encode_cursor(str(rows[limit - 1][key])) if len(rows) > limit else None


@router.get("/partners", response_model=PartnerPage, responses=_ERRORS,
            summary="Partners (cursor pagination)",
            description="Admin, integration and channel managers; ordered by id. Filters "
            "repeat: `?status=active&status=onboarding`. No signing secret (read one "
            "partner as admin for it); the webhook URL for admins and integrations.")
async def list_partners(
    commands: CommandsDep,
    principal: Annotated[Principal, Depends(require("integration", "channel_manager"))],
    status: Annotated[list[PartnerStatus] | None, Query()] = None,
    tier: Annotated[list[PartnerTier] | None, Query()] = None,
    type: Annotated[list[PartnerType] | None, Query()] = None,
    cursor: Cursor = None, limit: Limit = 50,
) -> PartnerPage:
    url = principal.role in ("admin", "integration")
    async with commands.reference.engine.connect() as conn:
        rows = await listings.partner_page(conn, statuses=status or [], tiers=tier or [],
                                           types=type or [], after=decode_cursor(cursor),
                                           limit=limit)
    return PartnerPage(items=[PartnerView.model_validate({
        **r, "webhook_url": r["webhook_url"] if url else None, "webhook_secret": None,
        "webhook_secrets": []}) for r in rows[:limit]], next_cursor=_next(rows, limit, "id"))


@router.get("/owners", response_model=OwnerPage, responses=_ERRORS,
            summary="Escalation owners (cursor pagination)",
            description="Admin and channel managers; ordered by id. No signing secret "
            "(`GET /v1/owners/{id}`, admin, shows it).")
async def list_owners(
    commands: CommandsDep,
    principal: Annotated[Principal, Depends(require("channel_manager"))],
    cursor: Cursor = None, limit: Limit = 50,
) -> OwnerPage:
    async with commands.reference.engine.connect() as conn:
        rows = await listings.owner_page(conn, after=decode_cursor(cursor), limit=limit)
    return OwnerPage(items=[OwnerSummary.model_validate(r) for r in rows[:limit]],
                     next_cursor=_next(rows, limit, "id"))


@router.get("/api-keys", response_model=ApiKeyPage, responses=_ERRORS, tags=["auth"],
            summary="API keys (cursor pagination)",
            description="Admin only; ordered by id. Never the token nor its hash. Revoked "
            "keys only with `include_revoked=true`.")
async def list_api_keys(
    commands: CommandsDep,
    principal: Annotated[Principal, Depends(require())],
    role: Annotated[list[Role] | None, Query()] = None,
    subject_id: Annotated[str | None, Query(max_length=200)] = None,
    include_revoked: bool = False,
    cursor: Cursor = None, limit: Limit = 50,
) -> ApiKeyPage:
    async with commands.reference.engine.connect() as conn:
        rows = await listings.api_key_page(conn, roles=role or [], subject_id=subject_id,
                                           include_revoked=include_revoked,
                                           after=decode_cursor(cursor), limit=limit)
    return ApiKeyPage(items=[ApiKeyView.model_validate(r) for r in rows[:limit]],
                      next_cursor=_next(rows, limit, "id"))


def _version_cursor(cursor: str | None) -> int | None:
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    if not raw.isdigit():
        raise Problem(422, "Validation failed", "The cursor is not one we issued.",
                      errors=[{"field": "cursor", "message": "not a policy-version cursor"}])
    return int(raw)


@router.get("/policy/versions", response_model=PolicyVersionPage, responses=_ERRORS,
            summary="Policy versions, newest first (cursor pagination)",
            description="Every role. `published_by` for admins and channel managers only.")
async def list_policy_versions(
    commands: CommandsDep,
    principal: Annotated[Principal, Depends(require(*access.READERS))],
    cursor: Cursor = None, limit: Limit = 50,
) -> PolicyVersionPage:
    current = (await commands.reference.current_policy()).version
    who = principal.role in ("admin", "channel_manager")
    async with commands.reference.engine.connect() as conn:
        rows = await listings.policy_version_page(conn, before=_version_cursor(cursor),
                                                  limit=limit)
    return PolicyVersionPage(items=[PolicyVersionView(
        version=r["version"], published_at=r["published_at"],
        published_by=r["published_by"] if who else None, current=r["version"] == current)
        for r in rows[:limit]], next_cursor=_next(rows, limit, "version"))


Version = Annotated[int | None, Query(ge=1, le=2_147_483_647)]


@router.get("/policy/diff", response_model=PolicyDiff,
            responses=problem_responses(401, 403, 404, 422),
            summary="What changed between two policy versions",
            description="Every role. `to` defaults to the version in force, `from` to the "
            "one before `to`. Objects are compared field by field, lists and scalars as one "
            "value (as `PUT /v1/policy` merges); `version` itself is not a change.")
async def diff_policy_versions(
    commands: CommandsDep,
    principal: Annotated[Principal, Depends(require(*access.READERS))],
    from_version: Annotated[Version, Query(alias="from")] = None,
    to_version: Annotated[Version, Query(alias="to")] = None,
) -> PolicyDiff:
    to = to_version or (await commands.reference.current_policy()).version
    start = from_version if from_version is not None else max(1, to - 1)
    documents: dict[int, dict[str, Any]] = {}
    for version, field in ((start, "from"), (to, "to")):
        found = await commands.reference.policy(version)
        if found is None:
            raise Problem(404, "Not found", f"No policy version {version}.",
                          errors=[{"field": field, "message": f"no version {version}"}])
        documents[version] = found[0].model_dump(mode="json")
    return PolicyDiff.model_validate({"from": start, "to": to, "changes": [
        PolicyChange.model_validate(c) for c in policy_diff(documents[start], documents[to])]})

