"""CloudEvents 1.0 ingestion, structured, batch and binary JSON: parsing and envelope checks.

Binary content mode (the HTTP binding) carries the attributes in `ce-*` headers and the
`data` as the body; `from_binary` turns it into the structured form, so both modes are
checked and applied by the same code.

Each event is checked on its own, so one bad event in a batch is rejected alone. What an
accepted event *means* is the command handler's business: the type decides which one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import unquote

from shared.inputs import check_text

REGISTRATION_SUBMITTED: Final = "dealreg.registration.submitted.v1"
CLAIM_FILED: Final = "dealreg.claim.filed.v1"
CLAIM_RELEASED: Final = "dealreg.claim.released.v1"
OPPORTUNITY_CLOSED: Final = "crm.opportunity.closed.v1"
SUPPORTED_TYPES: Final = (REGISTRATION_SUBMITTED, CLAIM_FILED, CLAIM_RELEASED,
                          OPPORTUNITY_CLOSED)

STRUCTURED: Final = "application/cloudevents+json"
BATCH: Final = "application/cloudevents-batch+json"
BINARY_PREFIX: Final = "ce-"
REQUIRED_ATTRIBUTES: Final = ("specversion", "id", "source", "type")


class NotCloudEvents(ValueError):
    """The body as a whole is not a CloudEvent (structured) or an array of them (batch)."""


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    index: int
    id: str | None
    source: str | None
    type: str | None
    data: Any = None
    time: datetime | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    """Envelope problems: the event is rejected without being de-duplicated or applied."""
    traceparent: str | None = None
    """The distributed-tracing extension (`traceparent`, `tracestate` attributes, or the
    `ce-traceparent` / `ce-tracestate` headers in binary mode): the trace the event is
    appended under, instead of the request's."""
    tracestate: str | None = None

    @property
    def valid(self) -> bool:
        return not self.errors


def _text(raw: dict[str, Any], name: str, limit: int,
          errors: list[dict[str, str]]) -> str | None:
    value = raw.get(name)
    if value is None:
        errors.append({"field": name, "message": "required CloudEvents attribute"})
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        errors.append({"field": name, "message": f"a non-empty string of at most {limit}"})
        return None
    try:
        return check_text(value)
    except ValueError as exc:
        errors.append({"field": name, "message": str(exc)})
        return None


def parse_event(index: int, raw: Any) -> IncomingEvent:
    if not isinstance(raw, dict):
        return IncomingEvent(index, None, None, None,
                             errors=[{"field": "event", "message": "an event is a JSON object"}])
    errors: list[dict[str, str]] = []
    if raw.get("specversion") != "1.0":
        errors.append({"field": "specversion", "message": 'must be "1.0"'})
    id_ = _text(raw, "id", 200, errors)
    source = _text(raw, "source", 500, errors)
    type_ = _text(raw, "type", 200, errors)
    content_type = raw.get("datacontenttype")
    if content_type is not None and (
        not isinstance(content_type, str)
        or content_type.split(";")[0].strip().lower() != "application/json"
    ):
        errors.append({"field": "datacontenttype", "message": "only application/json data"})
    if "data_base64" in raw:
        errors.append({"field": "data_base64", "message": "binary data is not accepted"})
    when: datetime | None = None
    if raw.get("time") is not None:
        try:
            when = datetime.fromisoformat(str(raw["time"]).replace("Z", "+00:00"))
            if when.tzinfo is None:
                raise ValueError
        except ValueError:
            errors.append({"field": "time", "message": "an RFC 3339 timestamp with offset"})
    data = raw.get("data")
    if not isinstance(data, dict):
        errors.append({"field": "data", "message": "a JSON object is required"})
    if type_ is not None and type_ not in SUPPORTED_TYPES:
        errors.append({"field": "type",
                       "message": f"unknown type; supported: {', '.join(SUPPORTED_TYPES)}"})
    trace = [value if isinstance(value := raw.get(name), str) else None
             for name in ("traceparent", "tracestate")]
    return IncomingEvent(index, id_, source, type_, data, when, errors, *trace)


def parse(payload: Any, *, batch: bool, limit: int) -> list[IncomingEvent]:
    """The events of a structured (one object) or batch (array) body."""
    if batch:
        if not isinstance(payload, list):
            raise NotCloudEvents("a batch is a JSON array of CloudEvents")
        if len(payload) > limit:
            raise NotCloudEvents(f"a batch holds at most {limit} events")
        return [parse_event(i, raw) for i, raw in enumerate(payload)]
    if not isinstance(payload, dict):
        raise NotCloudEvents("a structured CloudEvent is a JSON object")
    return [parse_event(0, payload)]


def is_binary(header_names: Iterable[str]) -> bool:
    """A request in binary content mode names at least one `ce-` attribute header."""
    return any(name.lower().startswith(BINARY_PREFIX) for name in header_names)


def from_binary(headers: Iterable[tuple[str, str]], content_type: str,
                data: Any) -> dict[str, Any]:
    """The structured form of a binary-mode event: every `ce-<name>` header becomes the
    attribute `<name>` (values are percent-decoded, as the HTTP binding encodes them), the
    request's media type is `datacontenttype` and the body is `data`."""
    event: dict[str, Any] = {}
    for name, value in headers:
        lower = name.lower()
        if not lower.startswith(BINARY_PREFIX) or len(lower) == len(BINARY_PREFIX):
            continue
        attribute = lower[len(BINARY_PREFIX):]
        if attribute in ("data", "data_base64", "datacontenttype"):
            raise NotCloudEvents(f"{name} is not an attribute header: the body is the data "
                                 "and Content-Type its media type")
        if attribute in event:
            raise NotCloudEvents(f"{name} is given more than once")
        event[attribute] = unquote(value)
    event["datacontenttype"] = content_type
    event["data"] = data
    return event


def binary_field(field: str) -> str:
    """Where a binary-mode request carried an attribute: for error messages."""
    if field in ("data", "event"):
        return "body"
    if field == "datacontenttype":
        return "Content-Type"
    return BINARY_PREFIX + field
