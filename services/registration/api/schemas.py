"""Request bodies of the command API, validated at the edge."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Motion = Literal["resell", "referral", "co_sell", "influence"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AccountIn(_Body):
    name: str | None = Field(None, min_length=1, max_length=300)
    domain: str | None = Field(None, min_length=1, max_length=500,
                               description="A domain, website URL or e-mail address")
    country: str | None = Field(None, min_length=2, max_length=60,
                                description="ISO 3166 alpha-2 (alpha-3 and names accepted)")
    crm_account_id: str | None = Field(None, min_length=1, max_length=200)


class AmountIn(_Body):
    value: Decimal = Field(gt=0, max_digits=18, decimal_places=4)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class OpportunityIn(_Body):
    title: str = Field(min_length=1, max_length=300)
    products: list[str] = Field(default_factory=list, max_length=50)
    amount: AmountIn | None = None
    expected_close: date | None = None


class RegistrationRequest(_Body):
    partner_id: str | None = Field(None, min_length=1, max_length=100,
                                   description="Required for integrations; a partner's own id")
    account: AccountIn
    opportunity: OpportunityIn
    motion: Motion
    external_ref: str | None = Field(None, max_length=200)

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{
                "partner_id": "p-1",
                "account": {"name": "Acme Corp", "domain": "acme.com", "country": "US",
                            "crm_account_id": None},
                "opportunity": {"title": "Analytics rollout", "products": ["analytics"],
                                "amount": {"value": "120000.00", "currency": "USD"},
                                "expected_close": "2027-03-31"},
                "motion": "resell",
                "external_ref": "PRM-123",
            }]
        },
    )
