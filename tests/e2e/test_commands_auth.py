"""Authorization: every command endpoint against every role, and the API keys behind them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.settings import Settings
from tests.integration.registration.harness import Harness, eventually, registration, serve

ROLES: list[tuple[str, str | None]] = [
    ("anonymous", None), ("admin", None), ("integration", None), ("partner", "p-1"),
    ("partner", "p-2"), ("rep", "r-1"), ("rep", "r-2"), ("owner", "cm-1"), ("owner", "cm-2"),
    ("channel_manager", None),
]
OK = "ok"


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("auth"),
                        admin_token="test-admin-token")
    async with serve(settings) as harness:
        client = harness.client
        wait = {"Prefer": "wait=10"}
        owned = (await client.post("/v1/registrations", json=registration("p-1", "owned.com"),
                                   headers=wait)).json()
        # A direct named-account claim beats a later partner registration: p-1 can contest.
        claim = await client.post("/v1/claims", headers=wait, json={
            "kind": "named_account", "rep_id": "r-9",
            "account": {"name": "Named", "domain": "named.com", "country": "US"}})
        assert claim.status_code == 201, claim.text
        lost = (await client.post("/v1/registrations", json=registration("p-1", "named.com"),
                                  headers=wait)).json()
        # Two partners of one tier within the tie window: a dispute for cm-1 (level 1).
        tie = (await client.post("/v1/registrations", json=registration("p-3", "tie.com"),
                                 headers=wait)).json()
        await client.post("/v1/registrations", json=registration("p-4", "tie.com"),
                          headers=wait)
        dispute_id = await eventually(lambda: _dispute_of(harness, tie["id"]))
        mine = await client.post("/v1/claims", headers=wait, json={
            "kind": "named_account", "rep_id": "r-1",
            "account": {"name": "Mine", "domain": "mine.com", "country": "US"}})
        assert mine.status_code == 201, mine.text
        yield {"harness": harness, "owned": owned["id"], "lost": lost["id"],
               "dispute": dispute_id, "claim": mine.json()["id"]}


async def _dispute_of(harness: Harness, registration_id: str) -> str | None:
    row = await harness.client.get(f"/v1/registrations/{registration_id}")
    return row.json().get("dispute_id") if row.status_code == 200 else None


def _expected(endpoint: str) -> dict[str, Any]:
    """Per role: OK (admitted: anything but 401/403/404/5xx), or the exact denial."""
    denied: dict[str, Any] = {f"{r}:{s}" if s else r: 403 for r, s in ROLES}
    denied["anonymous"] = 401
    admitted: list[str] = {
        "register": ["admin", "integration", "partner:p-1"],
        "withdraw": ["admin", "integration", "partner:p-1"],
        "extend": ["admin", "integration", "partner:p-1"],
        "close": ["admin", "integration"],
        "claim": ["admin", "integration", "rep:r-1"],
        "release": ["admin", "integration", "rep:r-1"],
        "dispute": ["admin", "integration", "partner:p-1"],
        "acknowledge": ["admin", "owner:cm-1"],
        "resolve": ["admin", "owner:cm-1"],
        "events": ["admin", "integration"],
        "api_key": ["admin"],
        "partner": ["admin", "integration"],
        "owner": ["admin"],
        "policy": ["admin"],
    }[endpoint]
    for role in admitted:
        denied[role] = OK
    # Another partner's registration does not exist for p-2.
    if endpoint in ("withdraw", "extend", "dispute"):
        denied["partner:p-2"] = 404
    # A dispute never assigned to cm-2 does not exist for it (as when it reads it).
    if endpoint in ("acknowledge", "resolve"):
        denied["owner:cm-2"] = 404
    # Another rep's claim does not exist for r-2.
    if endpoint == "release":
        denied["rep:r-2"] = 404
    return denied


def _request(endpoint: str, world: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
    owned, lost, dispute = world["owned"], world["lost"], world["dispute"]
    return {
        "register": ("POST", "/v1/registrations", registration("p-1", "fresh.com")),
        "withdraw": ("POST", f"/v1/registrations/{owned}/withdraw", None),
        "extend": ("POST", f"/v1/registrations/{owned}/extend", None),
        "close": ("POST", f"/v1/registrations/{owned}/close", {"outcome": "lost"}),
        "claim": ("POST", "/v1/claims", {"kind": "opportunity", "rep_id": "r-1",
                                         "account": {"domain": "claimed.com"},
                                         "products": ["analytics"]}),
        "release": ("POST", f"/v1/claims/{world['claim']}/release", None),
        "dispute": ("POST", f"/v1/registrations/{lost}/disputes", {"reason": "we were first"}),
        "acknowledge": ("POST", f"/v1/disputes/{dispute}/acknowledge", None),
        "resolve": ("POST", f"/v1/disputes/{dispute}/resolve", {"outcome": "reject_all"}),
        "events": ("POST", "/v1/events", None),
        "api_key": ("POST", "/v1/api-keys", {"role": "channel_manager", "name": "x"}),
        "partner": ("PUT", "/v1/partners/p-7", {"name": "Seven", "type": "msp",
                                                 "tier": "silver"}),
        "owner": ("PUT", "/v1/owners/cm-7", {"name": "Seven"}),
        "policy": ("PUT", "/v1/policy", {"tie_window": "PT1H"}),
    }[endpoint]


ENDPOINTS = ["register", "claim", "events", "api_key", "partner", "owner", "policy",
             "dispute", "acknowledge", "resolve", "extend", "close", "withdraw", "release"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_every_role_gets_what_the_matrix_says(world: dict[str, Any], endpoint: str
                                                    ) -> None:
    harness: Harness = world["harness"]
    method, path, body = _request(endpoint, world)
    expected = _expected(endpoint)
    found = {}
    for role, subject in ROLES:
        name = f"{role}:{subject}" if subject else role
        headers = ({"Authorization": ""} if role == "anonymous"
                   else await harness.as_(role, subject))
        if endpoint == "events":
            headers["content-type"] = "application/cloudevents+json"
            response = await harness.client.request(method, path, headers=headers, json={
                "specversion": "1.0", "id": f"auth-{name}", "source": "urn:test",
                "type": "dealreg.claim.filed.v1",
                "data": {"kind": "named_account", "rep_id": "r-3",
                         "account": {"domain": f"{role}.example.com"}}})
        else:
            response = await harness.client.request(method, path, headers=headers, json=body)
        assert response.status_code < 500, response.text
        got = response.status_code
        found[name] = OK if got not in (401, 403, 404) else got
        if got in (401, 403, 404):
            assert response.headers["content-type"] == "application/problem+json"
    assert found == expected


async def test_a_token_is_shown_once_stored_hashed_and_revocable(world: dict[str, Any]
                                                                 ) -> None:
    harness: Harness = world["harness"]
    minted = await harness.client.post("/v1/api-keys", json={
        "role": "partner", "subject_id": "p-5", "name": "portal"})
    assert minted.status_code == 201
    key = minted.json()
    assert key["token"].startswith(f"drk.{key['id']}.")
    async with harness.runtime.engine.connect() as conn:
        from sqlalchemy import select

        from shared.api.auth import api_keys
        row = (await conn.execute(select(api_keys).where(api_keys.c.id == key["id"]))).one()
    assert key["token"].split(".")[2] not in str(tuple(row))
    headers = {"Authorization": f"Bearer {key['token']}"}
    assert (await harness.client.get("/v1/policy", headers=headers)).status_code == 200
    wrong = key["token"][:-2] + ("AA" if not key["token"].endswith("AA") else "BB")
    assert (await harness.client.get("/v1/policy", headers={
        "Authorization": f"Bearer {wrong}"})).status_code == 401
    assert (await harness.client.delete(f"/v1/api-keys/{key['id']}")).status_code == 204
    assert (await harness.client.get("/v1/policy", headers=headers)).status_code == 401
    assert (await harness.client.delete(f"/v1/api-keys/{key['id']}")).status_code == 404


async def test_subject_bound_roles_need_a_subject(world: dict[str, Any]) -> None:
    harness: Harness = world["harness"]
    response = await harness.client.post("/v1/api-keys", json={"role": "rep"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "subject_id"
    bogus = await harness.client.post("/v1/api-keys", json={"role": "superuser"})
    assert bogus.status_code == 422


async def test_the_admin_token_from_the_environment_keeps_working(world: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    harness: Harness = world["harness"]
    assert (await harness.client.get("/v1/policy")).status_code == 200
    assert (await harness.client.get("/v1/policy", headers={
        "Authorization": "Bearer not-the-admin-token"})).status_code == 401
    assert (await harness.client.get("/v1/policy", headers={
        "Authorization": "Basic dXNlcjpwYXNz"})).status_code == 401
