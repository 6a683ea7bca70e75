"""CloudEvents binary content mode (`ce-*` headers, data as the body) on `POST /v1/events`:
the same event as structured mode, and a clear 4xx for a bad one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from shared.settings import Settings
from tests.e2e.test_commands_events import STRUCTURED, _decided, cloudevent
from tests.integration.registration.harness import Harness, eventually, registration, serve

SUBMITTED = "dealreg.registration.submitted.v1"


def binary(id_: str, type_: str = SUBMITTED, source: str = "urn:prm:test",
           **extra: str) -> dict[str, str]:
    return {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": id_,
            "ce-source": source, "ce-type": type_, "ce-time": "2026-11-23T09:00:00Z",
            **extra}


@pytest.fixture(scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("binary"),
                        admin_token="test-admin-token")
    async with serve(settings) as running:
        running.client.headers.update(await running.as_("integration"))
        yield running


async def ingest(harness: Harness, data: Any, headers: dict[str, str]) -> Any:
    return await harness.client.post("/v1/events", content=orjson.dumps(data),
                                     headers=headers)


async def test_a_binary_registration_event_is_applied_like_a_structured_one(
        harness: Harness) -> None:
    body = registration("p-1", "binary-one.com")
    answer = await ingest(harness, body, binary("bin-1"))
    assert answer.status_code == 202, answer.text
    report = answer.json()
    assert (report["accepted"], report["duplicates"], report["rejected"]) == (1, 0, 0)
    [result] = report["results"]
    assert (result["id"], result["source"], result["type"]) == ("bin-1", "urn:prm:test",
                                                                SUBMITTED)
    registration_id = result["resource"]["id"]
    read = await eventually(lambda: _decided(harness, registration_id))
    assert read["partner_id"] == "p-1" and read["account_key"] == "dom:binary-one.com"
    # The same source + id in structured mode is the same event: a duplicate, same resource.
    structured = await ingest(harness, cloudevent("bin-1", SUBMITTED, body), STRUCTURED)
    [repeat] = structured.json()["results"]
    assert repeat["status"] == "duplicate" and repeat["resource"]["id"] == registration_id
    # And the other way round.
    first = await ingest(harness, cloudevent("str-1", SUBMITTED,
                                             registration("p-2", "binary-two.com")),
                         STRUCTURED)
    again = await ingest(harness, registration("p-2", "binary-two.com"), binary("str-1"))
    assert again.json()["results"][0]["status"] == "duplicate"
    assert again.json()["results"][0]["resource"]["id"] == \
        first.json()["results"][0]["resource"]["id"]


async def test_binary_attribute_values_are_percent_decoded(harness: Harness) -> None:
    answer = await ingest(harness, registration("p-3", "binary-three.com"),
                          binary("bin%2D3", source="urn:prm:a%20portal"))
    [result] = answer.json()["results"]
    assert (result["status"], result["id"], result["source"]) == (
        "accepted", "bin-3", "urn:prm:a portal")


async def test_invalid_data_in_binary_mode_is_reported_as_in_structured_mode(
        harness: Harness) -> None:
    bad = registration("p-4", "binary-four.com", motion="bribery")
    answer = await ingest(harness, bad, binary("bin-4"))
    structured = await ingest(harness, cloudevent("str-4", SUBMITTED, bad), STRUCTURED)
    assert answer.status_code == structured.status_code == 202
    [one], [two] = answer.json()["results"], structured.json()["results"]
    assert one["status"] == two["status"] == "rejected"
    assert one["http_status"] == two["http_status"] == 422
    assert one["problem"]["errors"] == two["problem"]["errors"]


@pytest.mark.parametrize(("headers", "field"), [
    ({"ce-id": None}, "ce-id"),
    ({"ce-source": None}, "ce-source"),
    ({"ce-type": None}, "ce-type"),
    ({"ce-specversion": "0.3"}, "ce-specversion"),
    ({"ce-type": "com.example.unknown.v1"}, "ce-type"),
    ({"ce-time": "yesterday"}, "ce-time"),
    ({"ce-id": "a%E2%80%AEb"}, "ce-id"),  # a bidi override, percent-encoded
    ({"content-type": "application/merge-patch+json"}, "Content-Type"),
])
async def test_a_bad_binary_event_is_a_422_naming_the_header(
        harness: Harness, headers: dict[str, str | None], field: str) -> None:
    sent = binary("bin-bad")
    for name, value in headers.items():
        if value is None:
            del sent[name]
        else:
            sent[name] = value
    answer = await ingest(harness, registration("p-5", "binary-five.com"), sent)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert field in problem["detail"]


async def test_binary_bodies_that_are_not_one_json_object_are_refused(
        harness: Harness) -> None:
    malformed = await harness.client.post("/v1/events", content=b"{oops",
                                          headers=binary("bin-6"))
    assert malformed.status_code == 400
    for body in (b"[1, 2]", b"", b"\"text\""):
        answer = await harness.client.post("/v1/events", content=body,
                                           headers=binary("bin-7"))
        assert answer.status_code == 422, (body, answer.text)
        assert [e["field"] for e in answer.json()["errors"]] == ["body"]
    twice = await harness.client.post(
        "/v1/events", content=orjson.dumps(registration("p-6", "binary-six.com")),
        headers=[*binary("bin-8").items(), ("ce-id", "bin-9")])
    assert twice.status_code == 422 and "more than once" in twice.json()["detail"]
    xml = await harness.client.post("/v1/events", content=b"<event/>",
                                    headers={**binary("bin-10"), "content-type": "text/xml"})
    assert xml.status_code == 415


async def test_json_without_ce_headers_is_still_415_and_says_how(harness: Harness) -> None:
    answer = await ingest(harness, registration("p-7", "binary-seven.com"),
                          {"content-type": "application/json"})
    assert answer.status_code == 415
    assert "ce-" in answer.json()["detail"]
