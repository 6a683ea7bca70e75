"""CloudEvents ingestion: structured and batch, per-event results, de-duplication."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.settings import Settings
from tests.integration.registration.harness import Harness, eventually, registration, serve

STRUCTURED = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


def cloudevent(id_: str, type_: str, data: dict[str, Any], source: str = "urn:prm:test"
               ) -> dict[str, Any]:
    return {"specversion": "1.0", "id": id_, "source": source, "type": type_,
            "time": "2026-11-23T09:00:00Z", "datacontenttype": "application/json",
            "data": data}


@pytest.fixture(scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("events"),
                        admin_token="test-admin-token")
    async with serve(settings) as running:
        running.client.headers.update(await running.as_("integration"))
        yield running


async def post(harness: Harness, body: Any, headers: dict[str, str]) -> dict[str, Any]:
    import orjson

    response = await harness.client.post("/v1/events", content=orjson.dumps(body),
                                         headers=headers)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_a_structured_registration_event_is_applied_once(harness: Harness) -> None:
    event = cloudevent("e-1", "dealreg.registration.submitted.v1",
                       registration("p-1", "ce-one.com"))
    first = await post(harness, event, STRUCTURED)
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (1, 0, 0)
    [result] = first["results"]
    assert result["status"] == "accepted" and result["http_status"] == 202
    registration_id = result["resource"]["id"]
    again = await post(harness, event, STRUCTURED)
    [repeat] = again["results"]
    assert repeat["status"] == "duplicate"
    assert repeat["resource"]["id"] == registration_id
    read = await eventually(lambda: _decided(harness, registration_id))
    assert read["partner_id"] == "p-1" and read["account_key"] == "dom:ce-one.com"


async def _decided(harness: Harness, registration_id: str) -> dict[str, Any] | None:
    response = await harness.client.get(f"/v1/registrations/{registration_id}")
    body: dict[str, Any] = response.json()
    return body if response.status_code == 200 and body["status"] != "submitted" else None


async def test_a_batch_is_judged_event_by_event(harness: Harness) -> None:
    batch = [
        cloudevent("b-1", "dealreg.registration.submitted.v1",
                   registration("p-2", "batch-one.com")),
        cloudevent("b-2", "com.example.unknown.v1", {}),
        cloudevent("b-3", "dealreg.claim.filed.v1", {
            "kind": "named_account", "rep_id": "r-1", "account": {"domain": "batch-two.com"}}),
        cloudevent("b-4", "dealreg.registration.submitted.v1",
                   registration("p-2", "batch-three.com", motion="bribery")),
        cloudevent("b-1", "dealreg.registration.submitted.v1",
                   registration("p-2", "batch-one.com")),
        {"specversion": "1.0", "id": "b-6"},
        cloudevent("b-1", "dealreg.registration.submitted.v1",
                   registration("p-2", "batch-one.com"), source="urn:other-prm"),
    ]
    report = await post(harness, batch, BATCH)
    statuses = [(r["id"], r["status"], r["http_status"]) for r in report["results"]]
    assert statuses == [
        ("b-1", "accepted", 202), ("b-2", "rejected", 422), ("b-3", "accepted", 201),
        ("b-4", "rejected", 422), ("b-1", "duplicate", 202), ("b-6", "rejected", 400),
        ("b-1", "accepted", 202),
    ]
    assert (report["accepted"], report["duplicates"], report["rejected"]) == (3, 1, 3)
    assert report["results"][3]["problem"]["errors"][0]["field"] == "data.motion"
    assert report["results"][1]["problem"]["errors"][0]["field"] == "type"


async def test_a_rejected_event_stays_rejected_when_redelivered(harness: Harness) -> None:
    bad = cloudevent("r-1", "dealreg.claim.filed.v1", {"kind": "named_account",
                                                      "account": {"domain": "r.com"}})
    first = (await post(harness, bad, STRUCTURED))["results"][0]
    assert first["status"] == "rejected" and first["http_status"] == 422
    again = (await post(harness, bad, STRUCTURED))["results"][0]
    assert again["status"] == "duplicate" and again["problem"]["status"] == 422


async def test_a_crm_close_finds_the_registration_by_external_ref(harness: Harness) -> None:
    submitted = await harness.client.post(
        "/v1/registrations", json=registration("p-3", "closing.com", external_ref="CRM-77"),
        headers={"Prefer": "wait=10"})
    assert submitted.status_code == 201
    registration_id = submitted.json()["id"]
    closed = await post(harness, cloudevent("c-1", "crm.opportunity.closed.v1", {
        "external_ref": "CRM-77", "outcome": "won",
        "amount": {"value": "99000.00", "currency": "USD"}}), STRUCTURED)
    assert closed["results"][0]["status"] == "accepted", closed
    assert closed["results"][0]["resource"]["id"] == registration_id
    unknown = await post(harness, cloudevent("c-2", "crm.opportunity.closed.v1", {
        "external_ref": "CRM-nope", "outcome": "lost"}), STRUCTURED)
    assert unknown["results"][0]["http_status"] == 404

    async def won() -> dict[str, Any] | None:
        row = (await harness.client.get(f"/v1/registrations/{registration_id}")).json()
        return row if row["status"] == "won" else None

    await eventually(won)


async def test_only_integrations_and_admins_ingest(harness: Harness) -> None:
    response = await harness.client.post(
        "/v1/events", json=cloudevent("x", "dealreg.claim.filed.v1", {}),
        headers={**STRUCTURED, **(await harness.as_("partner", "p-1"))})
    assert response.status_code == 403


async def test_bodies_that_are_not_cloudevents_are_refused_whole(harness: Harness) -> None:
    assert (await harness.client.post("/v1/events", content=b"{oops",
                                      headers=STRUCTURED)).status_code == 400
    assert (await harness.client.post("/v1/events", content=b"[1]",
                                      headers=STRUCTURED)).status_code == 422
    assert (await harness.client.post("/v1/events", content=b"{}",
                                      headers=BATCH)).status_code == 422
