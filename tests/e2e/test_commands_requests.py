"""Bad requests are problems, never 500s, and leave nothing in the log."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.settings import Settings
from tests.integration.registration.harness import Harness, log_size, registration, serve


@pytest.fixture(scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("requests"),
                        admin_token="test-admin-token", max_body_bytes=4096)
    async with serve(settings) as running:
        yield running


async def test_invalid_fields_are_listed_in_one_problem(harness: Harness) -> None:
    before = await log_size(harness, harness.runtime.topics.intake)
    body = registration("p-1", motion="bribery")
    body["account"]["country"] = "Narnia"
    body["opportunity"]["amount"] = {"value": "10.001", "currency": "USD"}
    body["opportunity"]["expected_close"] = "next spring"
    response = await harness.client.post("/v1/registrations", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["title"] == "Validation failed"
    assert {e["field"] for e in problem["errors"]} == {
        "motion", "account.country", "opportunity.amount.value",
        "opportunity.expected_close"}
    assert await log_size(harness, harness.runtime.topics.intake) == before


@pytest.mark.parametrize(("account", "hint"), [
    ({"name": "Nameless"}, "name with a country"),
    ({"domain": "bob@gmail.com"}, "free-mail"),
])
async def test_an_unidentifiable_account_is_a_field_error(harness: Harness,
                                                          account: dict[str, str],
                                                          hint: str) -> None:
    response = await harness.client.post("/v1/registrations",
                                         json=registration("p-1", account=account))
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "account" and hint in error["message"]


async def test_an_integration_must_name_the_partner(harness: Harness) -> None:
    response = await harness.client.post("/v1/registrations", json=registration(None),
                                         headers=await harness.as_("integration"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "partner_id"


async def test_oversized_bodies_are_413_declared_or_streamed(harness: Harness) -> None:
    big = registration("p-1", external_ref="x" * 5000)
    declared = await harness.client.post("/v1/registrations", json=big)
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000
    streamed = await harness.client.post("/v1/registrations", content=chunks(),
                                         headers={"content-type": "application/json"})
    assert streamed.status_code == 413


async def test_other_media_types_are_415(harness: Harness) -> None:
    response = await harness.client.post("/v1/registrations", content=b"partner_id=p-1",
                                         headers={"content-type":
                                                  "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    events = await harness.client.post("/v1/events", json={"specversion": "1.0"})
    assert events.status_code == 415


@pytest.mark.parametrize("raw", [b"{not json", b'{"partner_id": "p-1",', b"\xff\xfe"])
async def test_malformed_json_is_400(harness: Harness, raw: bytes) -> None:
    response = await harness.client.post("/v1/registrations", content=raw,
                                         headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["title"] == "Malformed JSON"


async def test_a_body_that_is_not_an_object_is_422(harness: Harness) -> None:
    response = await harness.client.post("/v1/registrations", json=[1, 2])
    assert response.status_code == 422


async def test_bad_ids_in_paths_are_422_not_500(harness: Harness) -> None:
    for path in ("/v1/registrations/%00/withdraw", "/v1/disputes/a%20b/acknowledge",
                 "/v1/registrations/" + "x" * 300 + "/extend"):
        response = await harness.client.post(path)
        assert response.status_code == 422, path


async def test_unknown_targets_are_404(harness: Harness) -> None:
    assert (await harness.client.post("/v1/registrations/reg_nope/withdraw")).status_code \
        == 404
    assert (await harness.client.post("/v1/disputes/dsp_nope/resolve",
                                      json={"outcome": "reject_all"})).status_code == 404
    assert (await harness.client.get("/v1/policy/999")).status_code == 404


async def test_a_partner_for_another_partner_is_403(harness: Harness) -> None:
    response = await harness.client.post("/v1/registrations", json=registration("p-2"),
                                         headers=await harness.as_("partner", "p-1"))
    assert response.status_code == 403
