"""Command bodies: ISO codes, money precision, dates, enums, lengths, control characters."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.registration.domain.validation import check_amount, country_code, currency_code
from services.registration.models import (
    ClaimRequest,
    OwnerRequest,
    PartnerRequest,
    RegistrationRequest,
    ResolutionRequest,
)


def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "partner_id": "p-1",
        "account": {"name": "Acme Corp", "domain": "acme.com", "country": "US"},
        "opportunity": {"title": "Rollout", "products": ["analytics"],
                        "amount": {"value": "120000.00", "currency": "USD"},
                        "expected_close": "2027-03-31"},
        "motion": "resell",
    }
    data.update(overrides)
    return data


def fields_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        RegistrationRequest.model_validate(data)
    return [".".join(str(p) for p in e["loc"]) for e in caught.value.errors()]


def test_a_complete_registration_is_valid_and_normalises_codes() -> None:
    parsed = RegistrationRequest.model_validate(body(
        account={"name": "Acme", "domain": "acme.com", "country": "deu"},
        opportunity={"title": "x", "amount": {"value": "10", "currency": "eur"}}))
    assert parsed.account.country == "DE"
    assert parsed.opportunity.amount is not None
    assert parsed.opportunity.amount.currency == "EUR"


@pytest.mark.parametrize(("currency", "value", "ok"), [
    ("USD", "1.99", True), ("USD", "1.999", False), ("JPY", "100", True),
    ("JPY", "100.5", False), ("KWD", "1.125", True), ("KWD", "1.1255", False),
    ("CLF", "1.1234", True), ("USD", "100.000", True),
])
def test_amounts_respect_the_currency_minor_units(currency: str, value: str, ok: bool) -> None:
    if ok:
        assert check_amount(Decimal(value), currency) == Decimal(value)
    else:
        with pytest.raises(ValueError, match="decimal place"):
            check_amount(Decimal(value), currency)


@pytest.mark.parametrize("code", ["ABC", "XAU", "XXX", "XTS", "US", "DOLLAR"])
def test_unknown_or_non_money_currencies_are_refused(code: str) -> None:
    with pytest.raises(ValueError):
        currency_code(code)


def test_countries_accept_codes_and_names() -> None:
    assert country_code("us") == "US"
    assert country_code("DEU") == "DE"
    assert country_code("France") == "FR"
    with pytest.raises(ValueError, match="ISO 3166"):
        country_code("Atlantis")


@pytest.mark.parametrize(("change", "field"), [
    ({"motion": "bribery"}, "motion"),
    ({"account": {"name": "Acme", "country": "Narnia"}}, "account.country"),
    ({"account": {"domain": "not a domain"}}, "account.domain"),
    ({"opportunity": {"title": "x", "amount": {"value": "-1", "currency": "USD"}}},
     "opportunity.amount.value"),
    ({"opportunity": {"title": "x", "amount": {"value": "1.001", "currency": "USD"}}},
     "opportunity.amount.value"),
    ({"opportunity": {"title": "x", "amount": {"value": "1", "currency": "ZZZ"}}},
     "opportunity.amount.currency"),
    ({"opportunity": {"title": "x", "expected_close": "31/03/2027"}},
     "opportunity.expected_close"),
    ({"opportunity": {"title": "x", "expected_close": 1700000000}},
     "opportunity.expected_close"),
    ({"opportunity": {"title": "x", "expected_close": "2027-02-30"}},
     "opportunity.expected_close"),
    ({"opportunity": {"title": ""}}, "opportunity.title"),
    ({"opportunity": {"title": "a" * 301}}, "opportunity.title"),
    ({"opportunity": {"title": "bad\x00title"}}, "opportunity.title"),
    ({"partner_id": "has space"}, "partner_id"),
    ({"surprise": 1}, "surprise"),
])
def test_each_bad_field_is_named(change: dict[str, Any], field: str) -> None:
    assert field in fields_of(body(**change))


def test_every_bad_field_is_reported_at_once() -> None:
    found = fields_of(body(motion="x", opportunity={"title": "", "amount": {
        "value": "0", "currency": "USD"}}))
    assert {"motion", "opportunity.title", "opportunity.amount.value"} <= set(found)


def test_claims_need_a_known_kind() -> None:
    with pytest.raises(ValidationError):
        ClaimRequest.model_validate({"kind": "hunch", "account": {"domain": "acme.com"}})


@pytest.mark.parametrize(("data", "ok"), [
    ({"outcome": "award", "registration_id": "reg_1"}, True),
    ({"outcome": "award"}, False),
    ({"outcome": "reject_all"}, True),
    ({"outcome": "reject_all", "registration_id": "reg_1"}, False),
    ({"outcome": "split", "splits": [{"registration_id": "a", "percent": "60"},
                                     {"registration_id": "b", "percent": "40"}]}, True),
    ({"outcome": "split", "splits": [{"registration_id": "a", "percent": "60"},
                                     {"registration_id": "b", "percent": "30"}]}, False),
    ({"outcome": "split", "splits": [{"registration_id": "a", "percent": "100"}]}, False),
    ({"outcome": "split", "splits": [{"registration_id": "a", "percent": "50"},
                                     {"registration_id": "a", "percent": "50"}]}, False),
    ({"outcome": "co_sell", "splits": [{"registration_id": "a", "percent": "50"},
                                       {"registration_id": "b", "percent": "50"}]}, False),
    # An award by product (issue 12): either it or registration_id, only for an award.
    ({"outcome": "award", "awards": {"analytics": "reg_1", "crm": "reg_2"}}, True),
    ({"outcome": "award", "awards": {}}, False),
    ({"outcome": "award", "registration_id": "reg_1", "awards": {"analytics": "reg_1"}},
     False),
    ({"outcome": "co_sell", "awards": {"analytics": "reg_1"}}, False),
    ({"outcome": "award", "awards": {"analytics": "not an id!"}}, False),
])
def test_resolutions_must_be_coherent(data: dict[str, Any], ok: bool) -> None:
    if ok:
        ResolutionRequest.model_validate(data)
    else:
        with pytest.raises(ValidationError):
            ResolutionRequest.model_validate(data)


def test_owner_secrets_follow_standard_webhooks() -> None:
    OwnerRequest.model_validate({"name": "cm", "webhook_secret":
                                 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    with pytest.raises(ValidationError):
        OwnerRequest.model_validate({"name": "cm", "webhook_secret": "hunter2"})
    with pytest.raises(ValidationError):
        OwnerRequest.model_validate({"name": "cm", "webhook_url": "ftp://x"})


def test_partner_webhook_fields_are_validated_like_owners() -> None:
    base = {"name": "P", "type": "reseller", "tier": "gold"}
    ok = PartnerRequest.model_validate({**base, "webhook_url": "https://h.example/x",
                                        "rotate_secret": True})
    assert ok.rotate_secret and not ok.retire_previous_secret
    for bad in ({"webhook_url": "ftp://x"}, {"webhook_url": "http://a b"},
                {"webhook_secret": "hunter2"}, {"rotate_secret": "maybe"}):
        with pytest.raises(ValidationError):
            PartnerRequest.model_validate({**base, **bad})
    with pytest.raises(ValidationError):
        OwnerRequest.model_validate({"name": "cm", "retire_previous_secret": "later"})
