"""Request and response bodies of the command API (the commands themselves), validated at
the edge.

Every constraint is in the models (and so in the OpenAPI document): ISO codes, money
precision, dates, enumerations, lengths, no control characters. A violation becomes one
422 problem listing every bad field.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from services.registration.domain.validation import (
    IDENTIFIER_PATTERN,
    TEXT_PATTERN,
    check_amount,
    check_domain,
    country_code,
    currency_code,
)
from shared.api.auth import Role
from shared.events.reference import PartnerStatus, PartnerTier, PartnerType
from shared.inputs import (
    CanonicalDecimal,
    canonical_product,
    check_text,
    sane_date,
    single_line,
)

Motion = Literal["resell", "referral", "co_sell", "influence"]

Identifier = Annotated[str, Field(min_length=1, max_length=100, pattern=IDENTIFIER_PATTERN)]


def _product(value: str) -> str:
    # One spelling per product (`shared.inputs.canonical_product`): the adjudicator's
    # scopes, awards by product and the read models compare product names exactly.
    canonical = canonical_product(single_line(value))
    if not canonical or len(canonical) > 100:
        raise ValueError("a product name of 1 to 100 characters")
    return canonical


Product = Annotated[str, Field(min_length=1, max_length=100, pattern=TEXT_PATTERN),
                    AfterValidator(_product)]


def _text(max_length: int, min_length: int = 1, **kw: Any) -> Any:
    # Which characters are allowed is `shared.inputs`'s rule, applied by `_Body` to every
    # text field (one line, or several for the MULTILINE_FIELDS).
    return Field(min_length=min_length, max_length=max_length, **kw)


MULTILINE_FIELDS: Final = frozenset({"reason", "note", "partner_note"})
"""Free text that may span lines (line breaks and tabs allowed); every other field is one
line."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        multiline = info.field_name in MULTILINE_FIELDS
        if isinstance(value, str):
            return check_text(value, multiline=multiline)
        if isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    check_text(item, multiline=multiline)
        return value


# --- registrations and claims ------------------------------------------------------------


class AccountIn(_Body):
    """The end customer. Identify it by a domain (or website / e-mail), a CRM account id, or
    a name with a country; give as many as you know."""

    name: str | None = _text(300, default=None, description="Legal or trading name")
    domain: str | None = _text(
        500, default=None, description="A domain, website URL or e-mail address")
    website: str | None = _text(500, default=None, description="The customer's website URL")
    email: str | None = _text(320, default=None, description="A contact's e-mail address")
    country: str | None = Field(
        None, min_length=2, max_length=60, pattern=TEXT_PATTERN,
        description="ISO 3166-1 alpha-2 (alpha-3 and English names are accepted)")
    crm_account_id: str | None = _text(200, default=None, description="The CRM's account id")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return country_code(value) if value is not None else None

    @field_validator("domain", "website", "email")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return check_domain(value) if value is not None else None


class AmountIn(_Body):
    currency: str = Field(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$",
                          description="ISO 4217 code", examples=["USD"])
    value: CanonicalDecimal = Field(
        gt=0, max_digits=18, decimal_places=4, allow_inf_nan=False,
        description="Positive, with no more decimals than the currency has (JPY 0, USD 2, "
        "KWD 3)", examples=["120000.00"])

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return currency_code(value)

    @field_validator("value")
    @classmethod
    def _precision(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        currency = info.data.get("currency")
        return check_amount(value, currency) if currency else value


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(value: Any) -> Any:
    # Only the ISO 8601 calendar date: no timestamps, no numbers read as epochs.
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        return date.fromisoformat(value)
    raise ValueError("an ISO 8601 date, YYYY-MM-DD")


CloseDate = Annotated[date, BeforeValidator(_iso_date), AfterValidator(sane_date)]


class OpportunityIn(_Body):
    title: str = _text(300)
    products: list[Product] = Field(default_factory=list, max_length=50)
    amount: AmountIn | None = None
    expected_close: CloseDate | None = Field(None, description="ISO 8601 date (YYYY-MM-DD)")


_REGISTRATION_EXAMPLE: dict[str, Any] = {
    "partner_id": "p-1",
    "account": {"name": "Acme Corp", "domain": "acme.com", "country": "US",
                "crm_account_id": None},
    "opportunity": {"title": "Analytics rollout", "products": ["analytics"],
                    "amount": {"value": "120000.00", "currency": "USD"},
                    "expected_close": "2027-03-31"},
    "motion": "resell",
    "external_ref": "PRM-123",
}


class RegistrationRequest(_Body):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True,
                              json_schema_extra={"examples": [_REGISTRATION_EXAMPLE]})

    partner_id: Identifier | None = Field(
        None, description="Required for integrations and admins; a partner's own id")
    account: AccountIn
    opportunity: OpportunityIn
    motion: Motion
    external_ref: str | None = _text(200, default=None, description="The PRM/CRM's reference")


_CLAIM_EXAMPLE: dict[str, Any] = {
    "kind": "named_account", "rep_id": "rep-7",
    "account": {"name": "Globex GmbH", "domain": "globex.de", "country": "DE"},
    "products": [],
}


class ClaimRequest(_Body):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True,
                              json_schema_extra={"examples": [_CLAIM_EXAMPLE]})

    kind: Literal["named_account", "opportunity"]
    rep_id: Identifier | None = Field(None, description="Required for integrations; a rep's "
                                      "own id")
    account: AccountIn
    products: list[Product] = Field(
        default_factory=list, max_length=50,
        description="An opportunity claim's products (empty: all); ignored for named accounts")


class DisputeRequest(_Body):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={
        "examples": [{"reason": "We introduced the customer at the March summit."}]})

    reason: str = _text(2000)


class SplitIn(_Body):
    registration_id: Identifier
    percent: CanonicalDecimal = Field(gt=0, le=100, max_digits=5, decimal_places=2,
                             allow_inf_nan=False)


class ResolutionRequest(_Body):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={
        "examples": [
            {"outcome": "award", "registration_id": "reg_01j0000000000000000000000a",
             "note": "Partner p-1 (Acme Reseller) showed the first introduction.",
             "partner_note": "Awarded on the documented first introduction."},
            {"outcome": "split", "note": "Both contributed.", "splits": [
                {"registration_id": "reg_01j0000000000000000000000a", "percent": "60"},
                {"registration_id": "reg_01j0000000000000000000000b", "percent": "40"}]},
            {"outcome": "award", "note": "Each keeps the product it introduced.", "awards": {
                "analytics": "reg_01j0000000000000000000000a",
                "crm": "reg_01j0000000000000000000000b"}},
        ]})

    outcome: Literal["award", "split", "co_sell", "reject_all", "distinct"]
    registration_id: Identifier | None = Field(None, description="The winner of an `award`")
    awards: dict[Product, Identifier] | None = Field(
        None, max_length=50,
        description="An `award` by product instead of one `registration_id`: product -> the "
        "registration that wins it (policy scope `account_product`). Members that overlap "
        "no winner keep their approval.")
    splits: list[SplitIn] | None = Field(None, max_length=20,
                                         description="`split` only; percents add up to 100")
    note: str = _text(2000, min_length=0, default="",
                      description="Internal: escalation owners, channel roles and admins "
                      "read it; partners never do")
    partner_note: str | None = _text(
        2000, default=None, description="Optional text for the involved partners (the "
        "only resolution text they receive)")

    @field_validator("awards", mode="before")
    @classmethod
    def _one_award_per_product(cls, value: Any) -> Any:
        # Two spellings of one product ("Analytics", "analytics") would silently become one
        # key, the last winner taking it: the owner must say which.
        if isinstance(value, dict):
            seen: dict[str, str] = {}
            for product in value:
                if isinstance(product, str):
                    canonical = canonical_product(product)
                    if canonical in seen:
                        raise ValueError(f"{seen[canonical]!r} and {product!r} are one "
                                         "product; award it once")
                    seen[canonical] = product
        return value

    @model_validator(mode="after")
    def _shape(self) -> ResolutionRequest:
        if self.outcome == "award" and not self.registration_id and not self.awards:
            raise ValueError("an award names the winning registration_id, or awards by "
                             "product")
        if self.registration_id and self.awards:
            raise ValueError("an award names either registration_id or awards, not both")
        if self.outcome != "award" and (self.registration_id or self.awards):
            raise ValueError("registration_id and awards are only for an award")
        if self.outcome == "split":
            if not self.splits or len(self.splits) < 2:
                raise ValueError("a split names at least two registrations")
            ids = [s.registration_id for s in self.splits]
            if len(set(ids)) != len(ids):
                raise ValueError("a registration appears once in a split")
            if sum(s.percent for s in self.splits) != 100:
                raise ValueError("split percents must add up to 100")
        elif self.splits:
            raise ValueError("splits are only for a split")
        return self


class ClaimReleasedRequest(_Body):
    """`dealreg.claim.released.v1` data: the CRM (or a person) gives a direct claim up."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={
        "examples": [{"claim_id": "clm_01jd2vb0c1d2e3f4g5h6j7k8m9"}]})

    claim_id: Identifier


class OpportunityClosedRequest(_Body):
    """`crm.opportunity.closed.v1` data, and the body of `POST .../close`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={
        "examples": [{"external_ref": "PRM-123", "outcome": "won",
                      "amount": {"value": "118000.00", "currency": "USD"}}]})

    registration_id: Identifier | None = None
    external_ref: str | None = _text(200, default=None)
    outcome: Literal["won", "lost"]
    amount: AmountIn | None = None


class CloseRequest(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"outcome": "won", "amount": {"value": "118000.00", "currency": "USD"}}]})

    outcome: Literal["won", "lost"]
    amount: AmountIn | None = None


# --- reference data and keys -------------------------------------------------------------


class ApiKeyRequest(_Body):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={
        "examples": [{"role": "partner", "subject_id": "p-1", "name": "Acme PRM portal"}]})

    role: Role
    subject_id: Identifier | None = Field(
        None, description="Required for partner, rep and owner keys: who the key acts as")
    name: str | None = _text(200, default=None, description="What the key is for")


class ApiKeyCreated(BaseModel):
    id: str
    token: str = Field(description="Shown once; only its hash is stored")
    role: Role
    subject_id: str | None
    name: str | None
    created_at: datetime


WEBHOOK_URL_PATTERN: Final = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s\x00-\x1f\x7f]+$"
"""The form only (the scheme in any case); `shared.webhooks.url_policy` decides the rest."""
WEBHOOK_SECRET_PATTERN: Final = r"^whsec_[A-Za-z0-9+/]{32,}={0,2}$"
_ROTATE = ("Generate a new secret (or use `webhook_secret`) and keep the current one active "
           "for signing for `DEALREG_WEBHOOK_SECRET_GRACE_SECONDS` (default 24 h): during "
           "that time deliveries carry two `v1,` signatures. Not idempotent: each such PUT "
           "rotates again")
_RETIRE = "Stop signing with the previous secret now (ends a rotation's grace period)"


class PartnerRequest(_Body):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={
        "examples": [{"name": "Acme Reseller", "type": "reseller", "tier": "gold",
                      "region": "EMEA", "status": "active",
                      "webhook_url": "https://hooks.acme.example/dealreg"}]})

    name: str = _text(300)
    type: PartnerType
    tier: PartnerTier
    region: str | None = _text(100, default=None)
    status: PartnerStatus = "active"
    webhook_url: str | None = Field(
        None, max_length=2000, pattern=WEBHOOK_URL_PATTERN,
        description="Receives `dispute.resolved` about the partner's own registrations")
    webhook_secret: str | None = Field(
        None, max_length=200, pattern=WEBHOOK_SECRET_PATTERN,
        description="Standard Webhooks secret; generated when a webhook URL is first set "
        "(an existing partner keeps its secret)")
    rotate_secret: bool = Field(False, description=_ROTATE)
    retire_previous_secret: bool = Field(False, description=_RETIRE)


class WebhookSecretView(BaseModel):
    id: str = Field(description="A stable, non-secret name of the secret")
    secret: str
    status: Literal["current", "previous"]
    expires_at: datetime | None = Field(
        description="When a previous secret stops being used (null for the current one)")


class PartnerView(BaseModel):
    id: str
    name: str
    type: PartnerType
    tier: PartnerTier
    region: str | None
    status: PartnerStatus
    webhook_url: str | None = Field(
        None, description="Shown to admins, integrations and the partner itself")
    webhook_secret: str | None = Field(
        None, description="The current signing secret: in the PUT response and to admins")
    webhook_secrets: list[WebhookSecretView] = Field(
        default_factory=list, description="Every active secret (two during a rotation): in "
        "the PUT response and to admins")
    updated_at: datetime


class OwnerRequest(_Body):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={
        "examples": [{"name": "EMEA channel manager", "email": "cm-emea@vendor.example",
                      "webhook_url": "https://hooks.vendor.example/dealreg"}]})

    name: str = _text(300)
    email: str | None = Field(None, max_length=320,
                              pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
    webhook_url: str | None = Field(None, max_length=2000, pattern=WEBHOOK_URL_PATTERN)
    webhook_secret: str | None = Field(
        None, max_length=200, pattern=WEBHOOK_SECRET_PATTERN,
        description="Standard Webhooks secret (`whsec_` + base64 of 24-64 bytes); generated "
        "when absent (an existing owner keeps its secret). Given without `rotate_secret`, "
        "it replaces the current secret at once")
    rotate_secret: bool = Field(False, description=_ROTATE)
    retire_previous_secret: bool = Field(False, description=_RETIRE)


class EscalationOwnerView(BaseModel):
    id: str
    name: str
    email: str | None
    webhook_url: str | None
    webhook_secret: str = Field(description="The current Standard Webhooks signing secret")
    webhook_secrets: list[WebhookSecretView] = Field(
        default_factory=list, description="Every active secret (two during a rotation)")
    updated_at: datetime


class DisputeCommandView(BaseModel):
    """A dispute as the command side knows it right after accepting a command: the id and
    what the read model showed when answering (null where not known yet)."""

    id: str
    status: Literal["pending", "open", "resolved"] = Field(
        description="`pending`: a contest accepted into the log, not yet adjudicated")
    level: int | None = None
    owner_id: str | None = None
    due_at: datetime | None = None
    acknowledged_at: datetime | None = None
    registration_ids: list[str] = Field(default_factory=list)
    resolution: dict[str, Any] | None = None


class ClaimView(BaseModel):
    id: str
    kind: Literal["named_account", "opportunity"] | None = Field(
        description="null only in a release answered before the claim reached the read model")
    rep_id: str
    account_key: str
    account: dict[str, Any] | None
    products: list[str]
    status: str = Field(description="`submitted` until adjudicated; `withdrawn` once released")
    filed_at: datetime | None
    decided_at: datetime | None = None
    protected_until: datetime | None = None
    decision: dict[str, Any] | None = None


class EventResult(BaseModel):
    index: int = Field(description="Position in the request (0 for a structured event)")
    id: str | None
    source: str | None
    type: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    http_status: int = Field(description="What the equivalent HTTP command answered")
    resource: dict[str, Any] | None = Field(
        None, description="The resource the command created or acted on")
    problem: dict[str, Any] | None = Field(None, description="Why it was rejected (RFC 9457)")


class EventsReport(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]
