"""One spelling per product name (rival review, session 26): under scope `account_product`
the adjudicator compares product sets exactly, so "Analytics" beside "analytics" was no
overlap and a rival was approved on the holder's customer and product."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.projections.domain.ownership import covers
from services.registration.models import (
    ClaimRequest,
    RegistrationRequest,
    ResolutionRequest,
)
from shared.inputs import canonical_product


def registration(products: list[Any]) -> RegistrationRequest:
    return RegistrationRequest.model_validate({
        "partner_id": "p-1", "account": {"domain": "acme.com"}, "motion": "resell",
        "opportunity": {"title": "Deal", "products": products}})


@pytest.mark.parametrize(("typed", "product"), [
    ("analytics", "analytics"), ("Analytics", "analytics"), ("ANALYTICS", "analytics"),
    ("\uff41\uff4e\uff41\uff4c\uff59\uff54\uff49\uff43\uff53", "analytics"),
    ("Data  Lake", "data lake"), ("DATA\u00a0LAKE", "data lake"), ("Stra\u00dfe", "strasse"),
    ("  crm ", "crm"),
])
def test_a_product_name_is_filed_in_its_one_spelling(typed: str, product: str) -> None:
    assert registration([typed]).opportunity.products == [product]
    claim = ClaimRequest.model_validate({"kind": "opportunity", "rep_id": "r-1",
                                         "account": {"domain": "acme.com"},
                                         "products": [typed]})
    assert claim.products == [product]
    assert canonical_product(product) == product


def test_a_product_that_folds_to_nothing_or_too_long_is_refused() -> None:
    with pytest.raises(ValidationError):
        registration(["\u3000"])
    with pytest.raises(ValidationError):
        registration(["\ufdfa" * 10])  # one character NFKC spells in 18


def test_the_ownership_look_up_reads_a_product_in_any_spelling() -> None:
    row = {"products": ["analytics"]}
    assert covers(row, "Analytics") and covers(row, "ANALYTICS ")
    assert covers({"products": ["Analytics"]}, "analytics")  # filed before the rule
    assert not covers(row, "storage")


def test_an_award_by_product_names_each_product_once_in_any_spelling() -> None:
    awarded = ResolutionRequest.model_validate({"outcome": "award", "awards": {
        "Analytics": "reg_a", "crm": "reg_b"}})
    assert awarded.awards == {"analytics": "reg_a", "crm": "reg_b"}
    with pytest.raises(ValidationError, match="one product"):
        # Before: one key "analytics", silently won by the last registration named.
        ResolutionRequest.model_validate({"outcome": "award", "awards": {
            "Analytics": "reg_a", "analytics": "reg_b"}})
