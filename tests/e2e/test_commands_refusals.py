"""What the command side answers when adjudication (or the partner's standing) refuses:
a contest adjudication refuses is a problem, not "201 open"; a contest not waited for is
202 `pending` with an opaque id; an inactive partner's extension is 409."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.settings import Settings
from tests.integration.registration.harness import (
    Harness,
    eventually,
    log_size,
    registration,
    serve,
)

WAIT = {"Prefer": "wait=10"}
OPAQUE = re.compile(r"^dsp_[0-9a-f]{26}$")


@pytest.fixture(scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("refusals"),
                        admin_token="test-admin-token")
    async with serve(settings) as running:
        # Outside the tie window the earlier registration wins (a precedence rejection).
        # A withdrawn owner frees the account (no promotion of the next in line).
        published = await running.client.put("/v1/policy", json={"tie_window": "PT0.001S",
                                                                  "on_release": "free"})
        assert published.status_code == 201, published.text
        for partner in ("p-1", "p-2", "p-3"):
            assert (await running.client.put(f"/v1/partners/{partner}", json={
                "name": partner, "type": "reseller", "tier": "gold"})).status_code == 201
        yield running


async def _register(harness: Harness, partner: str, domain: str) -> dict[str, Any]:
    answer = await harness.client.post("/v1/registrations", json=registration(partner, domain),
                                       headers={**WAIT, **await harness.as_("partner", partner)})
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_a_contest_adjudication_refuses_is_a_problem_not_an_open_dispute(
    harness: Harness,
) -> None:
    # p-1 lost to p-2 by first_submitted (contestable, as far as the edge can see), then
    # took the account itself once p-2 withdrew: adjudication refuses the contest (a party
    # never holds two overlapping protections), which the edge cannot know.
    await _register(harness, "p-2", "own-contest.com")
    lost = await _register(harness, "p-1", "own-contest.com")
    assert lost["decision"]["rule"] == "first_submitted"
    holder = (await harness.client.get(f"/v1/registrations/{lost['id']}")).json()
    rival = holder["decision"]["conflicts"][0]["registration_id"]
    withdrawn = await harness.client.post(f"/v1/registrations/{rival}/withdraw", headers=WAIT)
    assert withdrawn.status_code == 200, withdrawn.text
    assert (await _register(harness, "p-1", "own-contest.com"))["status"] == "approved"
    contested = await harness.client.post(
        f"/v1/registrations/{lost['id']}/disputes", json={"reason": "mine"},
        headers={**WAIT, **await harness.as_("partner", "p-1")})
    assert contested.status_code == 409, contested.text
    assert contested.headers["content-type"].startswith("application/problem+json")
    assert "(not_disputable)" in contested.json()["detail"]
    row = (await harness.client.get(f"/v1/registrations/{lost['id']}")).json()
    assert (row["status"], row["dispute_id"]) == ("rejected", None)


async def test_a_contest_of_a_duplicate_is_refused(harness: Harness) -> None:
    await _register(harness, "p-1", "dup-contest.com")
    duplicate = await _register(harness, "p-1", "dup-contest.com")
    assert duplicate["decision"]["rule"] == "duplicate"
    contested = await harness.client.post(
        f"/v1/registrations/{duplicate['id']}/disputes", json={"reason": "mine"},
        headers={**WAIT, **await harness.as_("partner", "p-1")})
    assert contested.status_code == 409, contested.text


async def test_a_contest_answers_with_the_dispute_it_opened(harness: Harness) -> None:
    await _register(harness, "p-1", "contest-wait.com")
    lost = await _register(harness, "p-2", "contest-wait.com")
    assert lost["decision"]["rule"] == "first_submitted"
    contested = await harness.client.post(
        f"/v1/registrations/{lost['id']}/disputes", json={"reason": "we sourced it"},
        headers={**WAIT, **await harness.as_("partner", "p-2")})
    assert contested.status_code == 201, contested.text
    dispute = contested.json()
    assert dispute["status"] == "open" and OPAQUE.match(dispute["id"]), dispute
    assert contested.headers["location"] == f"/v1/disputes/{dispute['id']}"
    assert (await harness.client.get(contested.headers["location"])).status_code == 200


async def test_a_contest_not_waited_for_is_pending_with_an_opaque_id(harness: Harness) -> None:
    await _register(harness, "p-1", "contest-nowait.com")
    lost = await _register(harness, "p-3", "contest-nowait.com")
    contested = await harness.client.post(
        f"/v1/registrations/{lost['id']}/disputes", json={"reason": "we sourced it"},
        headers=await harness.as_("partner", "p-3"))
    assert contested.status_code == 202, contested.text
    pending = contested.json()
    assert pending["status"] == "pending" and OPAQUE.match(pending["id"]), pending

    async def opened() -> dict[str, Any] | None:
        found = await harness.client.get(f"/v1/disputes/{pending['id']}")
        return found.json() if found.status_code == 200 else None

    assert (await eventually(opened))["status"] == "open"


async def test_a_suspended_partner_cannot_extend(harness: Harness) -> None:
    approved = await _register(harness, "p-2", "suspended-extend.com")
    assert approved["status"] == "approved"
    suspended = await harness.client.put("/v1/partners/p-2", json={
        "name": "p-2", "type": "reseller", "tier": "gold", "status": "suspended"})
    assert suspended.status_code == 200, suspended.text
    intake = harness.runtime.topics.intake
    before = await log_size(harness, intake)
    refused = await harness.client.post(f"/v1/registrations/{approved['id']}/extend",
                                        headers=await harness.as_("partner", "p-2"))
    assert refused.status_code == 409, refused.text
    assert "partner_inactive" in refused.json()["detail"]
    assert await log_size(harness, intake) == before
