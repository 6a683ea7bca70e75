"""`GET /v1/ownership`: who owns an account (now, or as of a moment), by any identifier."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from services.projections.adapters.ownership_reader import OwnershipReader, Question
from services.projections.api.deps import read_your_writes, viewer
from services.projections.domain import redaction
from services.projections.domain.ownership import INCUMBENCY, covers
from services.projections.domain.redaction import Viewer
from shared.accounts import registrable_domain
from shared.api.problems import PROBLEM_RESPONSES, Problem
from shared.api.resources import AccountMatchView, IncumbentView, OwnershipView, OwnerView
from shared.inputs import Instant

router = APIRouter(prefix="/v1", tags=["queries"], dependencies=[Depends(read_your_writes)])


def _invalid(field: str, message: str, detail: str = "The request has invalid fields.") -> Problem:
    return Problem(422, "Validation failed", detail, errors=[{"field": field,
                                                              "message": message}])


@router.get(
    "/ownership", response_model=OwnershipView,
    responses={**PROBLEM_RESPONSES, 503: {"description": "`min_position` not reached"}},
    summary="Who owns an account",
    description=(
        "Name the account by one of `account_key`, `crm_account_id`, `domain` (a domain, URL "
        "or e-mail address) or `name` + `country` (normalized; the exact normalized name "
        "first, else the best fuzzy match scoring at least `min_score`). `product` keeps "
        "the owners whose scope covers it; `as_of` answers for a past moment. Accounts "
        "found to be one customer (linked keys) answer together. A partner sees its own "
        "protections in full and only the scope and end of everyone else's."
    ),
)
async def ownership(
    request: Request,
    who: Annotated[Viewer, Depends(viewer)],
    domain: Annotated[str | None, Query(max_length=500)] = None,
    name: Annotated[str | None, Query(max_length=300)] = None,
    country: Annotated[str | None, Query(max_length=60)] = None,
    crm_account_id: Annotated[str | None, Query(max_length=200)] = None,
    account_key: Annotated[str | None, Query(max_length=300)] = None,
    product: Annotated[str | None, Query(max_length=100)] = None,
    as_of: Annotated[Instant | None, Query(description="ISO 8601 with offset")] = None,
    min_score: Annotated[float, Query(ge=0.5, le=1.0,
                                      description="Fuzzy name threshold")] = 0.9,
) -> OwnershipView:
    if not (domain or crm_account_id or account_key or name):
        raise _invalid("domain", "give one of domain, name + country, crm_account_id, "
                                 "account_key", "Name the account.")
    if name and not country and not (domain or crm_account_id or account_key):
        raise _invalid("country", "a name is matched within a country: give country")
    if as_of is not None and as_of.tzinfo is None:
        raise _invalid("as_of", "give a time zone offset (e.g. Z)")
    moment = (as_of or datetime.now(UTC)).astimezone(UTC)
    normalized = None
    if domain:
        normalized = registrable_domain(domain)
        if normalized is None:
            raise _invalid("domain", "not a domain", "The domain is not a registrable domain.")
    question = Question(
        account_key=account_key, crm_account_id=crm_account_id.strip() if crm_account_id
        else None, domain=normalized, name=name, country=country, min_score=min_score,
        partner_id=who.subject_id if who.restricted else None)
    answer = await _reader(request).look_up(question, moment)
    if answer.account_key is None:
        return OwnershipView(account_key=None, owners=[], as_of=as_of)
    owners = []
    incumbents = []
    for row in answer.holdings:
        if row["kind"] == INCUMBENCY:
            incumbents.append(IncumbentView.model_validate(redaction.owner({
                "party_type": row["party_type"], "party_id": row["party_id"],
                "since": row["valid_from"], "until": row["protected_until"]}, who)))
            continue
        if not covers(row, product):
            continue
        owners.append(OwnerView.model_validate(redaction.owner(_owner(row), who)))
    visible = ([d for d in answer.open_disputes if d in answer.partner_disputes]
               if who.restricted else answer.open_disputes)
    return OwnershipView(
        account_key=answer.account_key, owners=owners, open_disputes=visible,
        open_dispute_count=len(answer.open_disputes), incumbents=incumbents, as_of=as_of,
        match=AccountMatchView.model_validate({"matched_by": answer.matched_by,
                                               "score": answer.score}),
        linked_keys=[k for k in answer.keys if k != answer.account_key],
    )


def _reader(request: Request) -> OwnershipReader:
    """One reader per application (it may hold a synchronous SQLite pool)."""
    state = request.app.state
    reader: OwnershipReader | None = getattr(state, "ownership_reader", None)
    engine = state.runtime.engine
    if reader is None or reader.engine is not engine:
        reader = state.ownership_reader = OwnershipReader(engine)
    return reader


def _owner(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "party_type": row["party_type"], "party_id": row["party_id"],
        "registration_id": row["holder_id"], "products": row["products"] or [],
        "motion": row["motion"], "status": row["status"],
        "protected_until": row["protected_until"], "credit_percent": row["credit_percent"],
        "since": row["valid_from"],
    }
