"""CloudEvents ingestion: `POST /v1/events`, structured, batch and binary JSON mode.

Each event is validated, de-duplicated on `source` + `id` and applied through the same
handler as the equivalent HTTP command, on its own: the answer is 202 with one result per
event, and a bad event does not spoil the batch.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request

from services.registration.api.deps import get_commands
from services.registration.domain import access
from services.registration.domain.cloudevents import (
    BATCH,
    STRUCTURED,
    SUPPORTED_TYPES,
    IncomingEvent,
    NotCloudEvents,
    binary_field,
    from_binary,
    is_binary,
    parse,
    parse_event,
)
from services.registration.handlers import Commands
from services.registration.models import EventsReport
from shared import tracing
from shared.api.auth import Principal, require
from shared.api.problems import Problem, problem_responses

router = APIRouter(prefix="/v1", tags=["events"])

_DATA_EXAMPLE = {
    "partner_id": "p-1",
    "account": {"name": "Acme Corp", "domain": "acme.com", "country": "US"},
    "opportunity": {"title": "Analytics rollout", "products": ["analytics"],
                    "amount": {"value": "120000.00", "currency": "USD"}},
    "motion": "resell", "external_ref": "PRM-123",
}
_EVENT_EXAMPLE = {"specversion": "1.0", "id": "prm-evt-1001", "source": "urn:prm:acme-portal",
                  "type": "dealreg.registration.submitted.v1",
                  "time": "2026-11-23T09:00:00Z", "datacontenttype": "application/json",
                  "data": _DATA_EXAMPLE}
_CLOSED_EXAMPLE = {"specversion": "1.0", "id": "crm-evt-77", "source": "urn:crm:salesforce",
                   "type": "crm.opportunity.closed.v1",
                   "data": {"external_ref": "PRM-123", "outcome": "won"}}

_CLOUDEVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["specversion", "id", "source", "type", "data"],
    "properties": {
        "specversion": {"type": "string", "enum": ["1.0"]},
        "id": {"type": "string", "minLength": 1, "maxLength": 200},
        "source": {"type": "string", "minLength": 1, "maxLength": 500},
        "type": {"type": "string", "enum": [
            "dealreg.registration.submitted.v1", "dealreg.claim.filed.v1",
            "dealreg.claim.released.v1", "crm.opportunity.closed.v1"]},
        "time": {"type": "string", "format": "date-time"},
        "subject": {"type": "string"},
        "datacontenttype": {"type": "string", "enum": ["application/json"]},
        "data": {"type": "object", "description":
                 "registration.submitted: a registration body (POST /v1/registrations); "
                 "claim.filed: a claim body (POST /v1/claims); claim.released: "
                 '{"claim_id"} (POST /v1/claims/{id}/release); opportunity.closed: '
                 '{"registration_id"|"external_ref", "outcome": "won|lost", "amount"?}'},
    },
}

_REPORT_EXAMPLE = {
    "accepted": 1, "duplicates": 1, "rejected": 0,
    "results": [
        {"index": 0, "id": "prm-evt-1001", "source": "urn:prm:acme-portal",
         "type": "dealreg.registration.submitted.v1", "status": "accepted",
         "http_status": 202, "resource": {"id": "reg_01jd2v6x3k8m0q9r7s5t4w2y1z",
                                          "status": "submitted"}, "problem": None},
        {"index": 1, "id": "crm-evt-77", "source": "urn:crm:salesforce",
         "type": "crm.opportunity.closed.v1", "status": "duplicate", "http_status": 202,
         "resource": None, "problem": None},
    ],
}


@router.post(
    "/events", status_code=202, response_model=EventsReport,
    responses={202: {"model": EventsReport, "description": "One result per event",
                     "content": {"application/json": {"example": _REPORT_EXAMPLE}}},
               **problem_responses(400, 401, 403, 413, 415, 422)},
    summary="Ingest CloudEvents",
    description="Integration or admin. CloudEvents 1.0 in structured mode "
    f"(`{STRUCTURED}`, one event) or batch mode (`{BATCH}`, an array). Known types: "
    "`dealreg.registration.submitted.v1`, `dealreg.claim.filed.v1`, "
    "`dealreg.claim.released.v1`, `crm.opportunity.closed.v1`. An event whose `source` + "
    "`id` was seen before is reported as a duplicate (with the first result) and not "
    "applied again; an unknown type or invalid data rejects that event only. "
    "**Binary mode** (the CloudEvents HTTP binding): the attributes in `ce-specversion`, "
    "`ce-id`, `ce-source`, `ce-type` (and optionally `ce-time`, `ce-subject`) headers, the "
    "`data` as an `application/json` body; it is the same event as in structured mode, "
    "but a binary request whose attributes are missing or invalid is a 422 naming the "
    "header (it is one event, so there is no batch to report on).",
    openapi_extra={
        "requestBody": {"required": True, "content": {
            STRUCTURED: {"schema": _CLOUDEVENT_SCHEMA, "example": _EVENT_EXAMPLE},
            BATCH: {"schema": {"type": "array", "items": _CLOUDEVENT_SCHEMA,
                               "maxItems": 1000},
                    "example": [_EVENT_EXAMPLE, _CLOSED_EXAMPLE]},
            "application/json": {"schema": _CLOUDEVENT_SCHEMA["properties"]["data"],
                                 "example": _DATA_EXAMPLE},
        }},
        "parameters": [
            {"name": "ce-specversion", "in": "header", "required": False,
             "description": "Binary mode: `1.0`", "schema": {"type": "string",
                                                              "enum": ["1.0"]},
             "example": "1.0"},
            {"name": "ce-id", "in": "header", "required": False,
             "description": "Binary mode: the event id (with `ce-source`, de-duplicated)",
             "schema": {"type": "string", "maxLength": 200}, "example": "prm-evt-1001"},
            {"name": "ce-source", "in": "header", "required": False,
             "description": "Binary mode: the event source", "example": "urn:prm:acme-portal",
             "schema": {"type": "string", "maxLength": 500}},
            {"name": "ce-type", "in": "header", "required": False,
             "description": "Binary mode: one of the known types",
             "schema": {"type": "string", "enum": list(SUPPORTED_TYPES)},
             "example": "dealreg.registration.submitted.v1"},
            {"name": "ce-time", "in": "header", "required": False,
             "description": "Binary mode: RFC 3339 time of the occurrence",
             "schema": {"type": "string", "format": "date-time"},
             "example": "2026-11-23T09:00:00Z"},
        ],
    },
)
async def ingest(
    request: Request, commands: Annotated[Commands, Depends(get_commands)],
    principal: Annotated[Principal, Depends(require(*access.INGESTERS))],
) -> EventsReport:
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    binary = media not in (STRUCTURED, BATCH) and is_binary(request.headers.keys())
    if media not in (STRUCTURED, BATCH) and not binary:
        raise Problem(415, "Unsupported media type",
                      f"Send CloudEvents as {STRUCTURED} or {BATCH}, or in binary mode "
                      "(`ce-*` headers with an application/json body).")
    body = await request.body()
    try:
        payload = orjson.loads(body) if body or not binary else None
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "Malformed JSON", "The request body is not valid JSON.") from exc
    try:
        if binary:
            events = [binary_event(request, media, payload)]
        else:
            events = parse(payload, batch=media == BATCH,
                           limit=commands.settings.max_batch_events)
    except NotCloudEvents as exc:
        raise Problem(422, "Validation failed", str(exc),
                      errors=[{"field": "body", "message": str(exc)}]) from exc
    results = []
    for event in events:
        # An event's own trace context (distributed-tracing extension) wins over the request's.
        trace = tracing.TraceContext.parse(event.traceparent, event.tracestate)
        with tracing.using(trace or tracing.current()):
            results.append(await commands.ingest(principal, event))
    return EventsReport(
        accepted=sum(r.status == "accepted" for r in results),
        duplicates=sum(r.status == "duplicate" for r in results),
        rejected=sum(r.status == "rejected" for r in results),
        results=results,
    )


def binary_event(request: Request, media: str, payload: object) -> IncomingEvent:
    """The one event of a binary-mode request; its envelope problems are the request's
    (422 naming the `ce-*` header), not a rejected entry in a report."""
    raw = from_binary(request.headers.items(), media, payload)
    event = parse_event(0, raw)
    if not event.valid:
        errors = [{"field": binary_field(e["field"]), "message": e["message"]}
                  for e in event.errors]
        raise Problem(422, "Validation failed", "The binary-mode CloudEvent is invalid: "
                      + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                      errors=errors)
    return event
