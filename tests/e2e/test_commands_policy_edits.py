"""`PUT /v1/policy` refuses operator mistakes and merges partial bodies onto the current
version, through HTTP; a refused edit appends nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.settings import Settings
from tests.integration.registration.harness import Harness, log_size, serve


@pytest.fixture
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("edits"),
                        admin_token="test-admin-token")
    async with serve(settings) as running:
        yield running


async def _refused(harness: Harness, body: dict[str, object]) -> dict[str, str]:
    topic = harness.runtime.topics.reference
    before = await log_size(harness, topic)
    version = (await harness.client.get("/v1/policy")).json()["version"]
    answer = await harness.client.put("/v1/policy", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert await log_size(harness, topic) == before  # nothing appended
    assert (await harness.client.get("/v1/policy")).json()["version"] == version
    return {e["field"]: e["message"] for e in answer.json()["errors"]}


async def test_an_escalation_owner_that_does_not_exist_is_refused(harness: Harness) -> None:
    assert (await harness.client.put("/v1/owners/cm-2", json={"name": "Two"})
            ).status_code == 201
    errors = await _refused(harness, {"escalation": {"levels": [
        {"owner_id": "cm-2", "sla": "P2D"}, {"owner_id": "cm-typo", "sla": "P3D"}]}})
    assert list(errors) == ["escalation.levels.1.owner_id"]
    assert "cm-typo" in errors["escalation.levels.1.owner_id"]
    assert (await harness.client.put("/v1/owners/cm-typo", json={"name": "Now real"})
            ).status_code == 201
    published = await harness.client.put("/v1/policy", json={"escalation": {"levels": [
        {"owner_id": "cm-2", "sla": "P2D"}, {"owner_id": "cm-typo", "sla": "P3D"}]}})
    assert published.status_code == 201, published.text


async def test_empty_exclusive_motions_or_precedence_are_refused(harness: Harness) -> None:
    errors = await _refused(harness, {"exclusive_motions": [], "precedence": []})
    assert set(errors) == {"exclusive_motions", "precedence"}
    assert "no registration is ever protected" in errors["exclusive_motions"]


async def test_a_partial_body_changes_only_what_it_names(harness: Harness) -> None:
    client = harness.client
    first = await client.put("/v1/policy", json={"tie_window": "PT1H",
                                                 "extension": {"max_extensions": 3},
                                                 "exclusive_motions": ["resell"]})
    assert first.status_code == 201, first.text
    second = await client.put("/v1/policy", json={"protection_period": "P60D",
                                                  "extension": {"period": "P10D"}})
    assert second.status_code == 201, second.text
    doc = second.json()
    assert doc["protection_period"] == "P60D"
    assert doc["tie_window"] == "PT1H"  # kept, not reset to the default
    assert doc["exclusive_motions"] == ["resell"]
    assert doc["extension"] == {**doc["extension"], "period": "P10D", "max_extensions": 3}
    # An unchanged merge publishes nothing.
    same = await client.put("/v1/policy", json={"tie_window": "PT1H"})
    assert same.status_code == 200 and same.json()["version"] == doc["version"]
    # Back to the defaults: send them.
    default = (await client.get("/v1/policy/1")).json()
    del default["version"]
    back = await client.put("/v1/policy", json=default)
    assert back.status_code == 201
    assert {k: v for k, v in back.json().items() if k != "version"} == default


async def test_concurrent_partial_edits_never_lose_one_another(harness: Harness) -> None:
    client = harness.client
    for n in range(5):
        a, b = await asyncio.gather(
            client.put("/v1/policy", json={"tie_window": f"PT{n + 2}H"}),
            client.put("/v1/policy", json={"protection_period": f"P{n + 40}D"}))
        assert {a.status_code, b.status_code} <= {201, 409}, (a.text, b.text)
        doc = (await client.get("/v1/policy")).json()
        if a.status_code == 201:
            assert doc["tie_window"] == f"PT{n + 2}H"
        if b.status_code == 201:
            assert doc["protection_period"] == f"P{n + 40}D"
