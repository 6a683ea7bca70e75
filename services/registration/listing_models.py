"""Response bodies of the directory lists (`api/listings.py`): partners, escalation owners,
API keys, policy versions and the diff between two policy versions. None carries a secret:
a webhook signing secret is read one at a time (`GET /v1/partners/{id}`, `GET
/v1/owners/{id}`, admin), an API key's token is shown once when minted and its hash never.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.registration.models import PartnerView
from shared.api.auth import Role

_NEXT = "Pass as `cursor` for the next page; null on the last page"


class PartnerPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"id": "p-1", "name": "Acme Reseller", "type": "reseller", "tier": "gold",
                   "region": "EMEA", "status": "active", "webhook_url": None,
                   "webhook_secret": None, "webhook_secrets": [],
                   "updated_at": "2026-11-23T09:00:00Z"}],
        "next_cursor": None}]})

    items: list[PartnerView]
    next_cursor: str | None = Field(None, description=_NEXT)


class OwnerSummary(BaseModel):
    id: str
    name: str
    email: str | None
    webhook_url: str | None
    updated_at: datetime


class OwnerPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"id": "cm-1", "name": "EMEA channel manager",
                   "email": "cm-emea@vendor.example",
                   "webhook_url": "https://hooks.vendor.example/dealreg",
                   "updated_at": "2026-11-23T09:00:00Z"}],
        "next_cursor": None}]})

    items: list[OwnerSummary]
    next_cursor: str | None = Field(None, description=_NEXT)


class ApiKeyView(BaseModel):
    id: str
    role: Role
    subject_id: str | None
    name: str | None
    created_at: datetime
    revoked_at: datetime | None = Field(None, description="Null while the key is active")


class ApiKeyPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"id": "key_01jd2vc3m4n5p6q7r8s9t0v1w2", "role": "partner",
                   "subject_id": "p-1", "name": "Acme PRM portal",
                   "created_at": "2026-11-23T09:00:00Z", "revoked_at": None}],
        "next_cursor": None}]})

    items: list[ApiKeyView]
    next_cursor: str | None = Field(None, description=_NEXT)


class PolicyVersionView(BaseModel):
    version: int
    published_at: datetime
    published_by: str | None = Field(
        None, description="Who published it (admins and channel managers only)")
    current: bool = Field(description="The version in force")


class PolicyVersionPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"version": 2, "published_at": "2026-11-24T09:00:00Z",
                   "published_by": "admin", "current": True},
                  {"version": 1, "published_at": "2026-11-23T09:00:00Z",
                   "published_by": "system", "current": False}],
        "next_cursor": None}]})

    items: list[PolicyVersionView]
    next_cursor: str | None = Field(None, description=_NEXT)


class PolicyChange(BaseModel):
    path: str = Field(description="Dotted field path, e.g. `escalation.levels`")
    change: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


class PolicyDiff(BaseModel):
    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [{
        "from": 1, "to": 2,
        "changes": [{"path": "tie_window", "change": "changed", "before": "PT24H",
                     "after": "PT0S"}]}]})

    from_version: int = Field(alias="from")
    to_version: int = Field(alias="to")
    changes: list[PolicyChange]
