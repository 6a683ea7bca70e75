"""The OpenAPI document, made to tell the truth about the API (one place, for every app).

FastAPI generates the paths and schemas from the routes; `finish` then applies the rules
that hold for *every* operation, so an endpoint added later follows them without effort:

- stable, readable operation ids (`operation_id`: the table below, else the route's
  function name in camelCase), pinned by `tests/unit/openapi_operation_ids.txt`;
- every error response is the RFC 9457 problem (`Problem`, `ValidationProblem` for 422 with
  `errors[]`) under `application/problem+json`; FastAPI's `HTTPValidationError` is gone;
- response headers documented where the code sets them (`X-Request-ID` everywhere,
  `Retry-After` on 429/503, `Location`, `X-Log-Position`, `Preference-Applied`,
  `Idempotent-Replayed` on commands, `WWW-Authenticate` on 401);
- an example on every schema (written, or composed from its fields' examples; a unit
  test validates each against its schema);
- a `webhooks` section for the notifications we send (Standard Webhooks).

`install_docs` serves Swagger UI from files vendored in `static/swagger-ui` (no CDN: `/docs`
works offline).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from shared.api.problems import PROBLEM_JSON, TYPE_BASE

# --- operation ids ------------------------------------------------------------------------

OPERATION_IDS: Final[dict[str, str]] = {
    "POST /v1/registrations": "submitRegistration",
    "GET /v1/registrations": "listRegistrations",
    "GET /v1/registrations/{registration_id}": "getRegistration",
    "GET /v1/registrations/{registration_id}/timeline": "getRegistrationTimeline",
    "POST /v1/registrations/{registration_id}/withdraw": "withdrawRegistration",
    "POST /v1/registrations/{registration_id}/extend": "extendRegistration",
    "POST /v1/registrations/{registration_id}/close": "closeRegistration",
    "POST /v1/registrations/{registration_id}/disputes": "fileDispute",
    "POST /v1/claims": "fileClaim",
    "POST /v1/claims/{claim_id}/release": "releaseClaim",
    "GET /v1/disputes": "listDisputes",
    "GET /v1/disputes/{dispute_id}": "getDispute",
    "POST /v1/disputes/{dispute_id}/acknowledge": "acknowledgeDispute",
    "POST /v1/disputes/{dispute_id}/resolve": "resolveDispute",
    "POST /v1/events": "ingestEvents",
    "GET /v1/ownership": "getOwnership",
    "GET /v1/pipeline": "getPipeline",
    "GET /v1/metrics/program": "getProgramMetrics",
    "POST /v1/api-keys": "createApiKey",
    "GET /v1/api-keys": "listApiKeys",
    "GET /v1/partners": "listPartners",
    "GET /v1/owners": "listOwners",
    "DELETE /v1/api-keys/{key_id}": "revokeApiKey",
    "PUT /v1/partners/{partner_id}": "putPartner",
    "GET /v1/partners/{partner_id}": "getPartner",
    "PUT /v1/owners/{owner_id}": "putOwner",
    "GET /v1/owners/{owner_id}": "getOwner",
    "GET /v1/owners/{owner_id}/deliveries": "listDeliveries",
    "POST /v1/deliveries/{delivery_id}/redeliver": "redeliverDelivery",
    "GET /v1/policy": "getCurrentPolicy",
    "PUT /v1/policy": "publishPolicy",
    "GET /v1/policy/{version}": "getPolicyVersion",
    "GET /v1/policy/versions": "listPolicyVersions",
    "GET /v1/policy/diff": "diffPolicyVersions",
    "GET /v1/partners/{partner_id}/deliveries": "listPartnerDeliveries",
    "GET /healthz": "getHealth",
    "GET /readyz": "getReadiness",
}
CAMEL_CASE: Final = re.compile(r"^[a-z][a-zA-Z0-9]*$")


def camel(name: str) -> str:
    head, *rest = [part for part in re.split(r"[^A-Za-z0-9]+", name) if part]
    return head[:1].lower() + head[1:] + "".join(p[:1].upper() + p[1:] for p in rest)


def operation_id(route: APIRoute) -> str:
    """FastAPI's `generate_unique_id_function`: the table's id for `METHOD path`, else the
    route function's name in camelCase (`list_partners` -> `listPartners`)."""
    method = sorted(route.methods or {"GET"})[0]
    return OPERATION_IDS.get(f"{method} {route.path_format}") or camel(route.name)


# --- problems -----------------------------------------------------------------------------

_PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; every error answer has this shape.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri",
                 "description": f"Identifies the problem type ({TYPE_BASE}...)"},
        "title": {"type": "string", "description": "Short, the same for every occurrence"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"anyOf": [{"type": "string"}, {"type": "null"}],
                   "description": "This occurrence, for a person"},
        "instance": {"type": "string", "description": "The occurrence (when given)"},
        "errors": {"anyOf": [{"type": "array",
                              "items": {"$ref": "#/components/schemas/FieldError"}},
                             {"type": "null"}]},
    },
    "examples": [{"type": f"{TYPE_BASE}not-found", "title": "Not found", "status": 404,
                  "detail": "No registration reg_01jd2v6x3k8m0q9r7s5t4w2y1z."}],
}
_VALIDATION_SCHEMA: Final[dict[str, Any]] = {
    "title": "ValidationProblem",
    "description": "A 422: the problem plus one entry per invalid field.",
    "allOf": [{"$ref": "#/components/schemas/Problem"},
              {"type": "object", "required": ["errors"], "properties": {
                  "errors": {"type": "array", "minItems": 1,
                             "items": {"$ref": "#/components/schemas/FieldError"}}}}],
    "examples": [{"type": f"{TYPE_BASE}validation-failed", "title": "Validation failed",
                  "status": 422, "detail": "The request has invalid fields.",
                  "errors": [{"field": "account.country",
                              "message": "not an ISO 3166 country code"}]}],
}
_FIELD_ERROR_SCHEMA: Final[dict[str, Any]] = {
    "title": "FieldError", "type": "object", "required": ["field", "message"],
    "properties": {"field": {"type": "string", "description": "Dotted path or parameter"},
                   "message": {"type": "string"}},
    "examples": [{"field": "account.country", "message": "not an ISO 3166 country code"}],
}
_TITLES: Final[dict[int, str]] = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 406: "Not acceptable", 409: "Conflict",
    413: "Payload too large", 415: "Unsupported media type", 422: "Validation failed",
    429: "Too many requests", 500: "Internal error", 502: "Bad gateway",
    503: "Service unavailable", 504: "Gateway timeout",
}


def _problem_example(status: int) -> dict[str, Any]:
    title = _TITLES.get(status, "Error")
    example: dict[str, Any] = {"type": TYPE_BASE + title.lower().replace(" ", "-"),
                               "title": title, "status": status}
    if status == 422:
        example.update(detail="The request has invalid fields.", errors=[
            {"field": "account.country", "message": "not an ISO 3166 country code"}])
    return example


# --- headers ------------------------------------------------------------------------------

HEADERS: Final[dict[str, dict[str, Any]]] = {
    "X-Request-ID": {
        "description": "The request's id (yours when you sent `X-Request-ID`, else ours); "
                       "every log line of the request carries it.",
        "schema": {"type": "string", "maxLength": 100}, "example": "req_01jd2v6x3k8m0q9r"},
    "Retry-After": {
        "description": "Whole seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0}, "example": 1},
    "WWW-Authenticate": {
        "description": "`Bearer`: send `Authorization: Bearer <token>`.",
        "schema": {"type": "string"}, "example": "Bearer"},
    "Location": {
        "description": "The resource the command created or acted on.",
        "schema": {"type": "string"}, "example": "/v1/registrations/reg_01jd2v6x3k8m0q9r"},
    "X-Log-Position": {
        "description": "Where the command's event is durable in the log "
                       "(`topic/partition/offset`; a sealed `lp1.` token for partners). Pass "
                       "it as `min_position` or `X-Wait-For-Position` to read your write.",
        "schema": {"type": "string"}, "example": "dealreg.intake/3/1047"},
    "Preference-Applied": {
        "description": "RFC 7240: the `wait=N` that was honoured.",
        "schema": {"type": "string"}, "example": "wait=5"},
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer of an earlier request with "
                       "the same `Idempotency-Key` (nothing was applied again).",
        "schema": {"type": "string", "enum": ["true"]}, "example": "true"},
}


def _ref_header(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/headers/{name}"}


def _header_names(method: str, path: str, status: str, operation: dict[str, Any]
                  ) -> list[str]:
    """Which headers an answer can carry, from what the code does for such operations."""
    params = {p.get("name", "").lower() for p in operation.get("parameters", [])
              if p.get("in") == "header"}
    names = ["X-Request-ID"]
    code = int(status) if status.isdigit() else 0
    if code in (429, 503):
        names.append("Retry-After")
    if code == 401:
        names.append("WWW-Authenticate")
    if code == 409 and "idempotency-key" in params:
        names.append("Retry-After")  # the same key still in flight
    if 200 <= code < 300:
        if "prefer" in params:  # every command with `Prefer: wait` (handlers.Outcome)
            names += ["Location", "X-Log-Position", "Preference-Applied"]
        elif (method, path) in (("post", "/v1/api-keys"), ("put", "/v1/policy")):
            names.append("Location")
        if "idempotency-key" in params:
            names.append("Idempotent-Replayed")
    return names


# --- examples -----------------------------------------------------------------------------

_DATE_TIME = "2027-01-06T09:00:00Z"
_STRINGS = ("120000.00", "p-1", "reg_01jd2v6x3k8m0q9r7s5t4w2y1z", "analytics", "USD", "US",
            "acme.com",
            "https://hooks.example.com/dealreg", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "ops@example.com", "example")


def _fits(value: str, schema: dict[str, Any]) -> bool:
    if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 10**9):
        return False
    pattern = schema.get("pattern")
    return pattern is None or re.search(pattern, value) is not None


def _string(schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    if fmt == "date-time":
        return _DATE_TIME
    if fmt == "date":
        return "2027-01-06"
    if fmt == "duration":
        return "P30D"
    if fmt in ("uri", "url"):
        return "https://hooks.example.com/dealreg"
    if fmt == "email":
        return "ops@example.com"
    for candidate in _STRINGS:
        if _fits(candidate, schema):
            return candidate
    return "x" * max(1, int(schema.get("minLength", 1)))


def example_of(schema: dict[str, Any], components: dict[str, Any],
               seen: frozenset[str] = frozenset()) -> Any:
    """An example that satisfies `schema`: its own, else one composed from its parts."""
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return copy.deepcopy(schema["examples"][0])
    if "example" in schema:
        return copy.deepcopy(schema["example"])
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return None
        return example_of(components.get(name, {}), components, seen | {name})
    if "default" in schema and schema["default"] is not None:
        return copy.deepcopy(schema["default"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example_of(options[0], components, seen)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = example_of(part, components, seen)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {name: example_of(sub, components, seen)
                for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        item = example_of(schema.get("items", {}), components, seen)
        return [item] * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1) or 1)
    if kind == "number":
        return schema.get("minimum", 1.0)
    if kind == "boolean":
        return False
    if kind == "string":
        return _string(schema)
    if kind == "null":
        return None
    return {}


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema


def _admits_null(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    schema = _resolve(schema, components)
    kind = schema.get("type")
    return (kind == "null" or (isinstance(kind, list) and "null" in kind)
            or any(_admits_null(s, components) for s in schema.get("anyOf", ())))


def complete(value: Any, schema: dict[str, Any], components: dict[str, Any],
             depth: int = 0) -> None:
    """Put back the nulls FastAPI drops from examples (it serialises the document without
    `None`), so an example shows a required nullable field as `null` instead of missing."""
    schema = _resolve(schema, components)
    if depth > 20:
        return
    if isinstance(value, dict):
        for part in (*schema.get("allOf", ()), *schema.get("anyOf", ())):
            complete(value, part, components, depth + 1)
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value and name in properties and \
                    _admits_null(properties[name], components):
                value[name] = None
        for name, sub in properties.items():
            if name in value:
                complete(value[name], sub, components, depth + 1)
    elif isinstance(value, list):
        items = schema.get("items")
        for part in schema.get("anyOf", ()):
            complete(value, part, components, depth + 1)
        if isinstance(items, dict):
            for item in value:
                complete(item, items, components, depth + 1)


# --- webhooks -----------------------------------------------------------------------------

_WEBHOOK_HEADERS: Final[list[dict[str, Any]]] = [
    {"name": "webhook-id", "in": "header", "required": True,
     "description": "Stable across retries and replays: de-duplicate on it.",
     "schema": {"type": "string"}, "example": "msg_9b0f1c2d3e4f5a6b7c8d9e0f1a2b3c4d"},
    {"name": "webhook-timestamp", "in": "header", "required": True,
     "description": "Unix seconds when this attempt was signed (reject if far off).",
     "schema": {"type": "string"}, "example": "1799226000"},
    {"name": "webhook-signature", "in": "header", "required": True,
     "description": "Standard Webhooks `v1,<base64 HMAC-SHA256>` over "
                    "`{webhook-id}.{webhook-timestamp}.{body}` with each active secret "
                    "(space-separated while a rotated-out secret is in its grace period).",
     "schema": {"type": "string"}, "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
]
_DISPUTE_EXAMPLE: Final[dict[str, Any]] = {
    "id": "dsp_5f0c1e9a7b2d4c6e8a0b1c2d3e", "level": 1, "owner_id": "cm-1",
    "due_at": "2027-01-08T09:00:00Z", "registration_ids": ["reg_01jd2x", "reg_01jd1y"],
    "reason": "tie", "policy_version": 1,
}
WEBHOOKS: Final[dict[str, tuple[str, str, dict[str, Any]]]] = {
    "disputeOpened": ("dispute.opened", "A dispute landed on the owner (escalation owners).",
                      {"dispute": _DISPUTE_EXAMPLE, "account_key": "dom:acme.com"}),
    "disputeReminder": ("dispute.reminder",
                        "The owner's deadline is near and it has not acknowledged.",
                        {"dispute": _DISPUTE_EXAMPLE, "account_key": "dom:acme.com"}),
    "disputeEscalated": ("dispute.escalated",
                         "To the new owner (`role: new_owner`) and a notice to the previous "
                         "one (`role: previous_owner`).",
                         {"dispute": {**_DISPUTE_EXAMPLE, "level": 2, "owner_id": "dir-1"},
                          "account_key": "dom:acme.com", "role": "new_owner"}),
    "disputeResolved": ("dispute.resolved",
                        "To the owner at resolution (full decision), and to each partner "
                        "with a registration in the dispute that has a webhook "
                        "(`role: partner`, only its own registrations: the partner view).",
                        {"dispute": {"id": "dsp_5f0c1e9a7b2d4c6e8a0b1c2d3e",
                                     "outcome": "award", "resolved_at": _DATE_TIME,
                                     "level": 1, "rule": "award", "policy_version": 1,
                                     "merged_into": None},
                         "account_key": "dom:acme.com",
                         "registrations": [{"id": "reg_01jd2x", "status": "approved",
                                            "credit_percent": None}],
                         "role": "partner"}),
}


def _webhooks() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (kind, description, data) in WEBHOOKS.items():
        out[name] = {"post": {
            "operationId": name + "Webhook",
            "summary": f"`{kind}` notification",
            "description": description + " Sent at least once, by POST to the "
            "`webhook_url` of the owner (`PUT /v1/owners/{id}`) or partner "
            "(`PUT /v1/partners/{id}`), signed per Standard Webhooks with the recipient's "
            "`whsec_` secret; verify the raw body. The `dispute` fields are those of the "
            f"decision event `dealreg.{kind}` in the decisions log (CloudEvents `data`). "
            "Answer 2xx; 410 disables the URL; 429/503 honour `Retry-After`; anything "
            "else is retried on the schedule, then dead-lettered.",
            "tags": ["webhooks"],
            "parameters": copy.deepcopy(_WEBHOOK_HEADERS),
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/WebhookNotification"},
                "example": {"type": kind, "timestamp": "2027-01-06T09:00:00+00:00",
                            "data": data}}}},
            "responses": {"2XX": {"description": "Received (any 2xx)."},
                          "410": {"description": "Gone: stop sending to this URL."}},
        }}
    return out


_WEBHOOK_SCHEMA: Final[dict[str, Any]] = {
    "title": "WebhookNotification", "type": "object",
    "description": "A notification body (Standard Webhooks payload), under 20 kB: long "
                   "free text (`evidence`, `explanation`, `note`, `splits`) is dropped first.",
    "required": ["type", "timestamp", "data"],
    "properties": {
        "type": {"type": "string", "enum": sorted({k for k, _, _ in WEBHOOKS.values()})},
        "timestamp": {"type": "string", "format": "date-time"},
        "data": {"type": "object", "required": ["dispute"], "properties": {
            "dispute": {"type": "object", "required": ["id"],
                        "properties": {"id": {"type": "string"}},
                        "additionalProperties": True},
            "account_key": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "role": {"type": "string",
                     "enum": ["new_owner", "previous_owner", "partner"]},
            "registrations": {"type": "array", "items": {"type": "object"}},
        }},
    },
    "examples": [{"type": "dispute.opened", "timestamp": "2027-01-06T09:00:00+00:00",
                  "data": WEBHOOKS["disputeOpened"][2]}],
}


# --- the document -------------------------------------------------------------------------

def finish(document: dict[str, Any]) -> dict[str, Any]:
    """Apply the rules above to a generated document (in place, and returned)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for gone in ("HTTPValidationError", "ValidationError", "ProblemDetail"):
        schemas.pop(gone, None)
    schemas["Problem"] = copy.deepcopy(_PROBLEM_SCHEMA)
    schemas["ValidationProblem"] = copy.deepcopy(_VALIDATION_SCHEMA)
    schemas["FieldError"] = copy.deepcopy(_FIELD_ERROR_SCHEMA)
    schemas["WebhookNotification"] = copy.deepcopy(_WEBHOOK_SCHEMA)
    components["headers"] = copy.deepcopy(HEADERS)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.setdefault("500", {"description": "Internal error (nothing applied)"})
            for status, response in responses.items():
                code = int(status) if status.isdigit() else 0
                if code >= 400:
                    schema = "ValidationProblem" if code == 422 else "Problem"
                    response["content"] = {PROBLEM_JSON: {
                        "schema": {"$ref": f"#/components/schemas/{schema}"},
                        "example": _problem_example(code)}}
                    response["description"] = response.get("description") or \
                        _TITLES.get(code, "Error")
                    if response["description"] == "Validation Error":
                        response["description"] = _TITLES[422]
                for media in response.get("content", {}).values():
                    if "example" in media and "schema" in media:
                        complete(media["example"], media["schema"], schemas)
                headers = response.setdefault("headers", {})
                for name in _header_names(method, path, status, operation):
                    headers.setdefault(name, _ref_header(name))
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if "example" in media and "schema" in media:
                    complete(media["example"], media["schema"], schemas)
    for name, schema in schemas.items():
        if not schema.get("examples") and "example" not in schema:
            schema["examples"] = [example_of(schema, schemas, frozenset({name}))]
        for example in schema["examples"] if "examples" in schema else [schema["example"]]:
            complete(example, schema, schemas)
    document["webhooks"] = _webhooks()
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the finished document at `/openapi.json` (FastAPI's, then `finish`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        if "webhooks" not in document:  # generated afresh (FastAPI caches it)
            finish(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


# --- docs, served offline -----------------------------------------------------------------

SWAGGER_UI: Final = Path(__file__).parent / "static" / "swagger-ui"
ASSETS: Final = "/docs/assets"


def docs_html(openapi_url: str = "/openapi.json", title: str = "dealreg API") -> str:
    """Swagger UI with every asset from this server (`ASSETS`): nothing from a CDN, no
    validator badge (it would call out)."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{openapi_url}", dom_id: "#swagger-ui", validatorUrl: null,
  deepLinking: true, persistAuthorization: true, displayRequestDuration: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"
}});
</script>
</body>
</html>
"""


def install_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """`/docs` (Swagger UI) and its assets under `/docs/assets`, from the package."""
    app.mount(ASSETS, StaticFiles(directory=SWAGGER_UI), name="swagger-ui-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(docs_html(openapi_url, f"{app.title} API"))
