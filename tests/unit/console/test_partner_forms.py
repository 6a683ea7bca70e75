"""The partner forms: what they send to /v1, and where the API's field errors are shown."""

from __future__ import annotations

from starlette.datastructures import ImmutableMultiDict

from services.console.client import ApiProblem
from services.console.partner import claim_body, claim_state, place_errors, registration_body


def _form(**values: str) -> ImmutableMultiDict[str, str]:
    return ImmutableMultiDict([(k.replace("__", "."), v) for k, v in values.items()])


def test_blank_inputs_are_left_out_so_the_api_names_what_is_missing() -> None:
    form = _form(account__name=" Acme ", account__domain="", account__country="US",
                 opportunity__title="", opportunity__products=" a, ,b ",
                 opportunity__amount__value="", opportunity__amount__currency="",
                 motion="resell", external_ref="", partner_id="p-other")
    assert registration_body(form, "partner") == {
        "account": {"name": "Acme", "country": "US"},
        "opportunity": {"products": ["a", "b"]},
        "motion": "resell",
    }


def test_an_admin_names_the_partner_and_a_half_given_amount_is_sent_for_the_api_to_judge(
) -> None:
    form = _form(partner_id="p-1", opportunity__title="T", opportunity__amount__value="10")
    assert registration_body(form, "admin") == {
        "partner_id": "p-1", "account": {},
        "opportunity": {"title": "T", "products": [], "amount": {"value": "10"}},
    }


def test_a_rep_never_names_another_rep_and_an_admin_does() -> None:
    form = _form(rep_id="rep-2", kind="opportunity", products="crm", account__domain="a.com")
    assert claim_body(form, "rep") == {"kind": "opportunity", "account": {"domain": "a.com"},
                                       "products": ["crm"]}
    assert claim_body(form, "admin")["rep_id"] == "rep-2"


def test_each_field_error_goes_next_to_its_input_group_or_the_top() -> None:
    problem = ApiProblem(422, "Validation failed", "The request has invalid fields.", [
        {"field": "account.domain", "message": "Value error, 'x' is not a domain"},
        {"field": "account.domain", "message": "a second message for the same field"},
        {"field": "opportunity.products.3", "message": "bad product"},
        {"field": "opportunity.amount", "message": "Field required"},
        {"field": "account", "message": "identify the account"},
        {"field": "body", "message": "something about the whole body"},
        {"field": "unknown_field", "message": "Extra inputs are not permitted"},
    ])
    placed, general = place_errors(problem)
    assert placed == {"account.domain": "'x' is not a domain",
                      "opportunity.products": "bad product",
                      "opportunity.amount": "Field required",
                      "account": "identify the account"}
    assert general == ["something about the whole body",
                       "unknown_field: Extra inputs are not permitted"]


def test_a_problem_without_field_errors_is_shown_at_the_top() -> None:
    placed, general = place_errors(ApiProblem(409, "Conflict", "Not in the window."))
    assert (placed, general) == ({}, ["Not in the window."])


def test_a_claim_is_what_its_timeline_says_last() -> None:
    entries = [
        {"type": "dealreg.claim.filed.v1", "data": {"kind": "named_account", "rep_id": "r",
                                                    "account": {"name": "A"}}},
        {"type": "dealreg.claim.decided.v1", "data": {"status": "approved", "rule": "r1",
                                                      "explanation": "Approved: ..."}},
        {"type": "dealreg.claim.released.v1", "data": {"reason": "released"}},
    ]
    state = claim_state(entries)
    assert state["status"] == "withdrawn" and state["explanation"] == "Approved: ..."
    assert state["kind"] == "named_account" and state["account"] == {"name": "A"}
    assert claim_state(entries[:2])["status"] == "approved"
