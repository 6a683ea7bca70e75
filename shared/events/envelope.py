"""The CloudEvents 1.0 envelope every event in the log travels in.

`subject` is the canonical account key: it is also the record key on the log, which is what
gives every account its total order (invariant 1).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json"


class Envelope(BaseModel):
    """A CloudEvents 1.0 structured-mode event whose `data` is a JSON object."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200, pattern=r"^[a-z0-9_.]+\.v[0-9]+$")
    time: datetime
    subject: str = Field(min_length=1, max_length=500)
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    # CloudEvents distributed-tracing extension (W3C Trace Context). Optional with a default
    # (events-forever): events written before it, or without a trace, simply have none.
    traceparent: str | None = Field(None, max_length=200)
    tracestate: str | None = Field(None, max_length=600)

    @property
    def base_type(self) -> str:
        """The type without its version suffix, e.g. `dealreg.registration.submitted`."""
        return self.type.rsplit(".", 1)[0]

    @property
    def version(self) -> int:
        return int(self.type.rsplit(".v", 1)[1])
