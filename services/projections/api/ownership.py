"""`GET /v1/ownership`: who owns an account (now, or as of a moment), by any identifier."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from services.projections.adapters.ownership_reader import OwnershipReader, Question
from services.projections.api.deps import read_your_writes
from services.projections.domain.ownership import INCUMBENCY, covers
from shared.accounts import registrable_domain
from shared.api import partner_view
from shared.api.partner_view import Viewer
from shared.api.problems import PROBLEM_RESPONSES, Problem
from shared.api.resources import OwnershipView
from shared.inputs import Instant

# No router-wide `read_your_writes`: the route takes its viewer from it (one dependency
# chain per request instead of two; the parameters and the document are the same).
router = APIRouter(prefix="/v1", tags=["queries"])


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
        "protections in full and only the scope and end of everyone else's, only its own "
        "open disputes, and account keys only it registered under or asked with; its name "
        "look-ups match only at or above the policy's `match.name_threshold`."
    ),
)
async def ownership(
    request: Request,
    who: Annotated[Viewer, Depends(read_your_writes)],
    domain: Annotated[str | None, Query(max_length=500)] = None,
    name: Annotated[str | None, Query(max_length=300)] = None,
    country: Annotated[str | None, Query(max_length=60)] = None,
    crm_account_id: Annotated[str | None, Query(max_length=200)] = None,
    account_key: Annotated[str | None, Query(max_length=300)] = None,
    product: Annotated[str | None, Query(max_length=100)] = None,
    as_of: Annotated[Instant | None, Query(description="ISO 8601 with offset")] = None,
    min_score: Annotated[float, Query(
        ge=0.5, le=1.0, description="Fuzzy name threshold (for a partner, never below the "
        "policy's `match.name_threshold`)")] = 0.9,
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
    crm = crm_account_id.strip() if crm_account_id else None
    # The policy (read with the look-up: `Question.by_policy`) spells CRM ids, and floors
    # a partner's `min_score` at its `match.name_threshold`.
    question = Question(
        account_key=account_key, crm_account_id=crm, domain=normalized, name=name,
        country=country, min_score=min_score,
        partner_id=who.subject_id if who.restricted else None,
        rivals_at=partner_view.rivals_moment(moment)
        if who.restricted and as_of is not None else None,
        by_policy=bool(crm or (name and who.restricted)),
        floor_min_score=bool(name and who.restricted))
    answer = await _reader(request).look_up(question, moment)
    if answer.account_key is None:
        return OwnershipView(account_key=None, owners=[], as_of=as_of)
    owners = []
    incumbents = []
    if who.restricted and answer.partner_filed_elsewhere:
        # The partner's registration filed under a competitor's key is its own to see only
        # when it asks with identifiers that registration submitted: asked by the hidden
        # key (`crm:<their id>`), its own protection there would confirm the guess (what
        # its registration and dispute lists do not). It then reads as anyone else's.
        submitted = {account_key, f"dom:{normalized}" if normalized else None,
                     f"crm:{crm}" if crm else None,
                     *partner_view.submitted_keys({"name": name, "country": country})}
        hidden = {holder for holder, keys in answer.partner_filed_elsewhere.items()
                  if not keys & submitted}
        answer.holdings = [{**row, "party_id": None}
                           if row["party_type"] == "partner" and row["holder_id"] in hidden
                           else row for row in answer.holdings]
    for row in answer.holdings:
        if row["kind"] == INCUMBENCY:
            incumbents.append({"party_type": row["party_type"], "party_id": row["party_id"],
                               "since": row["valid_from"], "until": row["protected_until"]})
        elif covers(row, product):
            owners.append(_owner(row))
    view: dict[str, Any] = {
        "account_key": answer.account_key, "owners": owners,
        "open_disputes": answer.open_disputes,
        "open_dispute_count": len(answer.open_disputes), "incumbents": incumbents,
        "as_of": as_of, "match": {"matched_by": answer.matched_by, "score": answer.score},
        "linked_keys": [k for k in answer.keys if k != answer.account_key],
    }
    if who.restricted:
        # Keys name the customer (domain, CRM id, name): a partner gets the ones it asked
        # with or registered under, never those of a customer it only matched.
        asked = {account_key, f"dom:{normalized}" if normalized else None,
                 f"crm:{crm}" if crm else None}
        if answer.matched_by == "name" and answer.score >= 1.0 \
                and answer.account_key.startswith("name:"):
            asked.add(answer.account_key)
        scope = partner_view.Scope(who, own_keys=frozenset(
            k for k in asked | answer.partner_keys if k))
        view = partner_view.ownership(view, scope, answer.partner_disputes)
    return OwnershipView.model_validate(view)


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
