"""Authentication comes first, rate limits per API key, and the operations endpoints'
token (issue 13): through the real app on the embedded backend, over ASGI."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.integration.registration.harness import ADMIN, Harness, registration, serve

NO_AUTH = {"Authorization": ""}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with serve(Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN,
                              ops_token="ops-secret")) as running:
        yield running


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized"


async def test_an_anonymous_read_your_writes_wait_is_refused_at_once(harness: Harness) -> None:
    started = time.perf_counter()
    response = await harness.client.get(
        "/v1/registrations", params={"min_position": "dealreg.intake/0/999999999"},
        headers={**NO_AUTH, "Prefer": "wait=3"})
    elapsed = time.perf_counter() - started
    assert_unauthorized(response)
    assert elapsed < 0.5, f"held an unauthenticated request for {elapsed:.2f} s"


async def test_an_anonymous_request_with_bad_parameters_gets_401_not_422(harness: Harness
                                                                         ) -> None:
    assert_unauthorized(await harness.client.get(
        "/v1/registrations", params={"min_position": "bogus"}, headers=NO_AUTH))
    assert_unauthorized(await harness.client.get(
        "/v1/registrations", params={"limit": "many", "cursor": "AAAA"}, headers=NO_AUTH))
    assert_unauthorized(await harness.client.get("/v1/ownership", headers=NO_AUTH))


async def test_an_unknown_token_gets_401_before_the_body_is_looked_at(harness: Harness) -> None:
    bad = {"Authorization": "Bearer drk.key_nope.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
    for headers in (NO_AUTH, bad, {"Authorization": "Basic dXNlcjpwYXNz"}):
        assert_unauthorized(await harness.client.post(
            "/v1/registrations", content=b"{not json", headers={
                **headers, "content-type": "application/json"}))
        assert_unauthorized(await harness.client.post(
            "/v1/registrations", content=b"x" * 10, headers={
                **headers, "content-type": "text/plain"}))
        assert_unauthorized(await harness.client.post(
            "/v1/registrations", content=b"x" * 2_000_000, headers={
                **headers, "content-type": "application/json"}))


async def test_existence_of_paths_under_v1_does_not_leak_without_a_token(harness: Harness
                                                                        ) -> None:
    assert_unauthorized(await harness.client.get("/v1/no-such-thing", headers=NO_AUTH))
    assert_unauthorized(await harness.client.delete("/v1/registrations", headers=NO_AUTH))
    assert (await harness.client.get("/v1/no-such-thing")).status_code == 404


async def test_every_v1_operation_of_the_openapi_document_authenticates_first(
        harness: Harness) -> None:
    document = (await harness.client.get("/openapi.json")).json()
    checked = 0
    for path, item in document["paths"].items():
        if not path.startswith("/v1"):
            continue
        concrete = path.replace("{", "x-").replace("}", "")
        for method in item:
            response = await harness.client.request(
                method.upper(), concrete, headers={**NO_AUTH, "Prefer": "wait=2"},
                params={"min_position": "bogus", "limit": "-1"}, content=b"{")
            assert_unauthorized(response)
            assert "401" in item[method]["responses"], (method, path)
            assert "429" in item[method]["responses"], (method, path)
            checked += 1
    assert checked >= 20


# --- rate limits --------------------------------------------------------------------------


async def test_an_api_key_over_its_bucket_gets_429_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN,
                        rate_limit_per_second=0.5, rate_limit_burst=3)
    async with serve(settings) as harness:
        partner = await harness.as_("partner", "p-1")
        other = await harness.as_("partner", "p-2")
        answers = [await harness.client.get("/v1/registrations", headers=partner)
                   for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        limited = answers[-1]
        assert limited.headers["content-type"] == "application/problem+json"
        assert int(limited.headers["retry-after"]) in (1, 2)
        assert limited.json()["status"] == 429 and limited.json()["title"] == \
            "Too many requests"
        # Commands are limited by the same bucket, before they are looked at.
        command = await harness.client.post("/v1/registrations", headers=partner,
                                            json=registration("p-1", "limited.com"))
        assert command.status_code == 429
        # Another key has its own bucket; the admin token is not limited.
        assert (await harness.client.get("/v1/registrations", headers=other)).status_code \
            == 200
        for _ in range(10):
            assert (await harness.client.get("/v1/registrations")).status_code == 200


async def test_an_address_over_its_failed_authentications_gets_429_even_with_a_valid_key(
        tmp_path: Path) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN,
                        auth_failure_limit_per_second=0.1, auth_failure_burst=5)
    async with serve(settings) as harness:
        partner = await harness.as_("partner", "p-1")
        statuses = []
        for i in range(7):
            token = f"drk.key_guess{i}.{'A' * 43}"
            statuses.append((await harness.client.get(
                "/v1/registrations", headers={"Authorization": f"Bearer {token}"})
            ).status_code)
        assert statuses == [401] * 5 + [429] * 2
        # Over the limit no key is tried: the partner's valid key and the admin token too.
        for headers in (partner, {}):
            refused = await harness.client.get("/v1/registrations", headers=headers)
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["title"] == "Too many requests"


# --- operations endpoints -------------------------------------------------------------------


async def _ops(harness: Harness, headers: dict[str, str]) -> tuple[httpx.Response,
                                                                    httpx.Response]:
    return (await harness.client.get("/metrics", headers=headers),
            await harness.client.get("/readyz", headers=headers))


async def test_metrics_and_readiness_detail_need_the_ops_token_by_default(harness: Harness
                                                                        ) -> None:
    partner = await harness.as_("partner", "p-1")
    for headers in (NO_AUTH, partner, {"Authorization": "Bearer wrong"}):
        metrics, ready = await _ops(harness, headers)
        assert_unauthorized(metrics)
        assert b"dealreg_" not in metrics.content
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "detail": {}}
    for headers in ({"Authorization": "Bearer ops-secret"},
                    {"Authorization": f"Bearer {ADMIN}"}):
        metrics, ready = await _ops(harness, headers)
        assert metrics.status_code == 200 and b"dealreg_" in metrics.content
        detail: dict[str, Any] = ready.json()["detail"]
        assert detail["workers"] and "projections" in detail
    assert (await harness.client.get("/healthz", headers=NO_AUTH)).status_code == 200


async def test_operations_endpoints_can_be_left_open(tmp_path: Path) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN,
                        ops_token_required=False)
    async with serve(settings) as harness:
        metrics, ready = await _ops(harness, NO_AUTH)
        assert metrics.status_code == 200 and b"dealreg_" in metrics.content
        assert "projections" in ready.json()["detail"]
