"""A contest is one appeal, through the HTTP API on the embedded backend (rival review,
session 23): a partner that lost to a registration by precedence may contest that once, and
neither withdrawing its contested registration nor losing the dispute and registering the
customer again gives it a fresh appeal against the same registration. Before, withdraw /
re-register / contest opened a new level-1 dispute (fresh SLA, a new notification to the
owner) as often as the rival liked, so the ladder never reached its fallback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from faker import Faker

from dealreg.app import create_app
from shared.settings import Settings
from tests.e2e.conftest import ADMIN, _serve

WAIT = {"Prefer": "wait=15"}
PARTITIONS = Settings(backend="embedded").topic_partitions


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncExitStack() as stack:
        settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN)
        client = await _serve(stack, create_app(settings))
        # A one-second tie window: a registration a moment later loses by first_submitted.
        published = await client.put("/v1/policy", json={"tie_window": "PT1S"})
        assert published.status_code == 201, published.text
        for partner in ("p-owner", "p-rival"):
            put = await client.put(f"/v1/partners/{partner}", json={
                "name": partner, "type": "reseller", "tier": "gold"})
            assert put.status_code in (200, 201), put.text
        yield client


async def as_partner(client: httpx.AsyncClient, partner: str) -> dict[str, str]:
    minted = await client.post("/v1/api-keys", json={"role": "partner", "subject_id": partner})
    assert minted.status_code == 201, minted.text
    return {"Authorization": f"Bearer {minted.json()['token']}", **WAIT}


def customer(seed: int) -> dict[str, Any]:
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    name = fake.company()
    slug = "".join(ch for ch in name.split()[0].lower() if ch.isalnum())
    return {"name": name, "domain": f"{slug}.co.uk", "country": "GB"}


async def register(client: httpx.AsyncClient, headers: dict[str, str], partner: str,
                   account: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/registrations", headers=headers, json={
        "partner_id": partner, "account": account,
        "opportunity": {"title": "Rollout", "products": ["analytics"]}, "motion": "resell"})
    assert response.status_code == 201, response.text
    decided: dict[str, Any] = response.json()
    return decided


async def lost(client: httpx.AsyncClient, rival: dict[str, str],
               account: dict[str, Any]) -> dict[str, Any]:
    decided = await register(client, rival, "p-rival", account)
    assert (decided["status"], decided["decision"]["rule"]) == (
        "rejected", "first_submitted"), decided
    return decided


async def contest(client: httpx.AsyncClient, rival: dict[str, str],
                  registration_id: str) -> httpx.Response:
    return await client.post(f"/v1/registrations/{registration_id}/disputes", headers=rival,
                             json={"reason": "we met the buyer first"})


async def test_withdrawing_a_contest_and_registering_again_does_not_renew_the_appeal(
    client: httpx.AsyncClient,
) -> None:
    owner, rival = await as_partner(client, "p-owner"), await as_partner(client, "p-rival")
    account = customer(23)
    held = await register(client, owner, "p-owner", account)
    assert held["status"] == "approved", held
    await asyncio.sleep(1.2)

    first = await lost(client, rival, account)
    appeal = await contest(client, rival, first["id"])
    assert appeal.status_code == 201, appeal.text
    withdrawn = await client.post(f"/v1/registrations/{first['id']}/withdraw", headers=rival)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"

    again = await lost(client, rival, account)
    refused = await contest(client, rival, again["id"])
    assert refused.status_code == 409, refused.text
    assert "not_disputable" in refused.json()["detail"], refused.text
    assert held["id"] not in refused.text  # the refusal names no competitor
    disputes = (await client.get("/v1/disputes?owner_id=cm-1")).json()["items"]
    assert [d["status"] for d in disputes] == ["resolved"], disputes
    still = await client.get(f"/v1/registrations/{held['id']}", headers=owner)
    assert still.json()["status"] == "approved"


async def test_losing_a_contest_and_registering_again_does_not_renew_the_appeal(
    client: httpx.AsyncClient,
) -> None:
    owner, rival = await as_partner(client, "p-owner"), await as_partner(client, "p-rival")
    account = customer(7)
    held = await register(client, owner, "p-owner", account)
    await asyncio.sleep(1.2)
    first = await lost(client, rival, account)
    appeal = await contest(client, rival, first["id"])
    assert appeal.status_code == 201, appeal.text
    resolved = await client.post(f"/v1/disputes/{appeal.json()['id']}/resolve", headers=WAIT,
                                 json={"outcome": "award", "registration_id": held["id"],
                                       "note": "the owner was first"})
    assert resolved.status_code in (200, 202), resolved.text

    again = await lost(client, rival, account)
    refused = await contest(client, rival, again["id"])
    assert refused.status_code == 409, refused.text
    assert "not_disputable" in refused.json()["detail"], refused.text

    # Another partner's first appeal against the same owner is still heard.
    await client.put("/v1/partners/p-third", json={"name": "p-third", "type": "reseller",
                                                   "tier": "gold"})
    third = await as_partner(client, "p-third")
    theirs = await register(client, third, "p-third", account)
    assert theirs["decision"]["rule"] == "first_submitted", theirs
    heard = await contest(client, third, theirs["id"])
    assert heard.status_code == 201, heard.text


async def test_registering_again_under_a_key_on_another_partition_does_not_renew_the_appeal(
    client: httpx.AsyncClient,
) -> None:
    """Rival attack, session 24 (held): the same customer registered again by its name and
    a CRM id of the rival's choosing, under a key on another partition than the contested
    one, loses to the same owner and gets no second appeal."""
    from shared.eventlog.partitioner import partition_for

    owner, rival = await as_partner(client, "p-owner"), await as_partner(client, "p-rival")
    for seed in (11, 12, 13):
        account = customer(seed)
        held = await register(client, owner, "p-owner", account)
        assert held["status"] == "approved", held
        await asyncio.sleep(1.2)
        first = await lost(client, rival, account)
        appeal = await contest(client, rival, first["id"])
        assert appeal.status_code == 201, appeal.text
        withdrawn = await client.post(f"/v1/registrations/{first['id']}/withdraw",
                                      headers=rival)
        assert withdrawn.status_code == 200, withdrawn.text
        crm = f"CRM{seed}"
        while partition_for(f"crm:{crm}", PARTITIONS) == partition_for(held["account_key"],
                                                                       PARTITIONS):
            crm += "X"
        again = await register(client, rival, "p-rival", {
            "name": account["name"], "country": "GB", "crm_account_id": crm})
        assert (again["status"], again["account_key"]) == ("rejected", f"crm:{crm}"), again
        refused = await contest(client, rival, again["id"])
        assert refused.status_code == 409, refused.text
        assert "not_disputable" in refused.json()["detail"], refused.text
        assert held["id"] not in refused.text
