"""Command endpoints: every accepted command is an event durable in the log before a 2xx."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Header, Request, Response

from services.registration.adapters.directory import resolve_account_key
from services.registration.api.schemas import RegistrationRequest
from services.registration.domain.intake import (
    InvalidAccount,
    identity_of,
    registration_submitted,
)
from shared.api.auth import Principal, require
from shared.api.problems import PROBLEM_RESPONSES, Problem
from shared.api.resources import RegistrationView
from shared.eventlog import OutgoingRecord
from shared.events import PartnerSnapshot, encode, new_envelope
from shared.ids import new_id

router = APIRouter(prefix="/v1", tags=["commands"])

_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)

DEFAULT_POLICY_VERSION = 1  # v1 = the built-in defaults until a policy is published


def requested_wait(prefer: str | None, ceiling: float) -> float:
    """Seconds asked for by `Prefer: wait=N` (RFC 7240), capped by the configured ceiling."""
    if not prefer:
        return 0.0
    match = _WAIT.search(prefer)
    return min(float(match.group(1)), ceiling) if match else 0.0


@router.post(
    "/registrations",
    status_code=201,
    response_model=RegistrationView,
    responses={
        202: {"model": RegistrationView,
              "description": "Accepted and durable; not decided within the wait"},
        **PROBLEM_RESPONSES,
    },
    summary="Register a deal",
)
async def submit_registration(
    body: RegistrationRequest,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require("partner", "integration"))],
    prefer: Annotated[str | None, Header()] = None,
) -> RegistrationView:
    runtime = request.app.state.runtime
    partner_id = body.partner_id
    if principal.role == "partner":
        if partner_id is not None and partner_id != principal.subject_id:
            raise Problem(403, "Forbidden", "A partner registers deals only for itself.")
        partner_id = principal.subject_id
    if not partner_id:
        raise Problem(422, "Validation failed", "The request has invalid fields.",
                      errors=[{"field": "partner_id", "message": "Field required"}])
    try:
        identity = identity_of(body.account.name, body.account.domain, body.account.country,
                               body.account.crm_account_id)
    except InvalidAccount as exc:
        raise Problem(422, "Validation failed", "The request has invalid fields.",
                      errors=[{"field": "account", "message": str(exc)}]) from exc
    account_key = await resolve_account_key(runtime.engine, identity)
    now = datetime.now(UTC)
    registration_id = new_id("reg")
    event = registration_submitted(
        registration_id=registration_id,
        partner=PartnerSnapshot(partner_id=partner_id),
        account_key=account_key,
        raw_account_name=body.account.name,
        identity=identity,
        title=body.opportunity.title,
        products=body.opportunity.products,
        amount=(str(body.opportunity.amount.value), body.opportunity.amount.currency)
        if body.opportunity.amount else None,
        expected_close=body.opportunity.expected_close,
        motion=body.motion,
        external_ref=body.external_ref,
        submitted_at=now,
        policy_version=DEFAULT_POLICY_VERSION,
    )
    envelope = new_envelope(event, id=new_id("evt"), source=f"{runtime.settings.source}/api",
                            subject=account_key, time=now)
    structlog.contextvars.bind_contextvars(event_id=envelope.id, account_key=account_key)
    [appended] = await runtime.eventlog.append(
        [OutgoingRecord(runtime.topics.intake, account_key, encode(envelope))]
    )
    response.headers["Location"] = f"/v1/registrations/{registration_id}"
    response.headers["X-Log-Position"] = (
        f"{appended.topic}/{appended.partition}/{appended.offset}"
    )
    wait = requested_wait(prefer, runtime.settings.max_wait_seconds)
    if wait > 0:
        response.headers["Preference-Applied"] = f"wait={prefer_value(wait)}"
        row = await runtime.waiter.wait_decided(registration_id, wait)
        if row is not None:
            return RegistrationView.from_row(row)
    response.status_code = 202
    return RegistrationView(
        id=registration_id, partner_id=partner_id, account_key=account_key,
        account=event.account.model_dump(mode="json"),
        opportunity=event.opportunity.model_dump(mode="json"), motion=event.motion,
        external_ref=event.external_ref, status="submitted", submitted_at=now,
        decided_at=None, protected_until=None,
    )


def prefer_value(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else str(seconds)
