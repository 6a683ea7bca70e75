"""Query endpoints over the read models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from shared.accounts import registrable_domain
from shared.api.auth import Principal, require
from shared.api.problems import PROBLEM_RESPONSES, Problem
from shared.api.resources import OwnershipView, OwnerView, RegistrationView
from shared.readmodel.queries import (
    account_key_for_crm_id,
    account_key_for_domain,
    get_registration,
)
from shared.readmodel.schema import registrations

router = APIRouter(prefix="/v1", tags=["queries"])

READERS = ("integration", "partner", "rep", "owner", "channel_manager")


@router.get("/registrations/{registration_id}", response_model=RegistrationView,
            responses=PROBLEM_RESPONSES, summary="A registration")
async def read_registration(
    registration_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(*READERS))],
) -> RegistrationView:
    async with request.app.state.runtime.engine.connect() as conn:
        row = await get_registration(conn, registration_id)
    # A partner must not learn that another partner's registration exists: 404, not 403.
    if row is None or (principal.role == "partner" and row["partner_id"] != principal.subject_id):
        raise Problem(404, "Not found", f"No registration {registration_id}.")
    return RegistrationView.from_row(row)


@router.get("/ownership", response_model=OwnershipView, responses=PROBLEM_RESPONSES,
            summary="Who owns an account")
async def ownership(
    request: Request,
    principal: Annotated[Principal, Depends(require(*READERS))],
    domain: Annotated[str | None, Query(max_length=500)] = None,
    crm_account_id: Annotated[str | None, Query(max_length=200)] = None,
    account_key: Annotated[str | None, Query(max_length=300)] = None,
    product: Annotated[str | None, Query(max_length=100)] = None,
) -> OwnershipView:
    if not (domain or crm_account_id or account_key):
        raise Problem(422, "Validation failed", "Name the account.",
                      errors=[{"field": "domain", "message":
                               "give one of domain, crm_account_id, account_key"}])
    engine = request.app.state.runtime.engine
    async with engine.connect() as conn:
        key = account_key
        if key is None and crm_account_id:
            key = await account_key_for_crm_id(conn, crm_account_id)
        if key is None and domain:
            normalized = registrable_domain(domain)
            if normalized is None:
                raise Problem(422, "Validation failed", "The domain is not a registrable domain.",
                              errors=[{"field": "domain", "message": "not a domain"}])
            key = await account_key_for_domain(conn, normalized)
        if key is None:
            return OwnershipView(account_key=None, owners=[])
        rows = (await conn.execute(
            select(registrations).where(
                registrations.c.account_key == key, registrations.c.status == "approved"
            ).order_by(registrations.c.submitted_at)
        )).mappings().all()
    now = datetime.now(UTC)
    owners = []
    for row in rows:
        products = list((row["opportunity"] or {}).get("products", []))
        if product and products and product not in products:
            continue
        if row["protected_until"] is not None and _aware(row["protected_until"]) < now:
            continue
        own = principal.role != "partner" or row["partner_id"] == principal.subject_id
        owners.append(OwnerView(
            party_type="partner",
            party_id=row["partner_id"] if own else None,
            registration_id=row["id"] if own else None,
            products=products,
            motion=row["motion"],
            status=row["status"],
            protected_until=row["protected_until"],
            credit_percent=row["credit_percent"],
        ))
    return OwnershipView(account_key=key, owners=owners)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
