"""The escalation owner's console resolves with every outcome the API offers, and what it
sends is what the API records (the browser tests drive one award through Chromium; here
each outcome goes through the console's own form handling, in process, on the embedded
backend that `dealreg dev` runs: the distributed console sends commands through the
gateway, see tests/e2e/test_console_served.py)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from dealreg.app import create_app
from shared.settings import Settings

ADMIN = "console-outcomes-admin"
OWNER = "own-out"


@dataclass
class World:
    api: httpx.AsyncClient        # admin, JSON
    browser: httpx.AsyncClient    # the owner signed in to the console (cookies only)
    keys: dict[str, str]


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    settings = Settings(backend="embedded", data_dir=Path(tmp_path_factory.mktemp("outcomes")),
                        admin_token=ADMIN, log_level="WARNING")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dealreg",
                                     headers={"Authorization": f"Bearer {ADMIN}"},
                                     timeout=30) as api, \
                httpx.AsyncClient(transport=transport, base_url="http://dealreg",
                                  timeout=30) as browser:
            for owner in (OWNER, "own-out-2"):
                assert (await api.put(f"/v1/owners/{owner}", json={"name": owner})
                        ).status_code == 201
            policy = await api.put("/v1/policy", json={"escalation": {"levels": [
                {"owner_id": OWNER, "sla": "P2D"}, {"owner_id": "own-out-2", "sla": "P2D"}]}})
            assert policy.status_code == 201, policy.text
            keys = {}
            for partner, tier in (("p-gold", "gold"), ("p-silver", "silver")):
                put = await api.put(f"/v1/partners/{partner}", json={
                    "name": partner, "type": "reseller", "tier": tier, "status": "active"})
                assert put.status_code == 201, put.text
                keys[partner] = (await api.post("/v1/api-keys", json={
                    "role": "partner", "subject_id": partner})).json()["token"]
            owner_key = (await api.post("/v1/api-keys", json={
                "role": "owner", "subject_id": OWNER})).json()["token"]
            page = await browser.get("/console/sign-in")
            signed = await browser.post("/console/sign-in", data={
                "api_key": owner_key, "csrf": _csrf(page.text), "next": "/console/owner/"})
            assert signed.status_code == 303, signed.text
            yield World(api, browser, keys)


async def collide(world: World, *, crm: tuple[str, str] | None = None
                  ) -> tuple[str, str, str]:
    """(silver's approved registration, gold's in review, the dispute)."""
    domain = f"out-{uuid.uuid4().hex[:10]}.com"
    ids = []
    for partner, products, (crm_id) in (("p-silver", ["analytics"], crm[0] if crm else None),
                                        ("p-gold", ["analytics", "crm"],
                                         crm[1] if crm else None)):
        answer = await world.api.post("/v1/registrations", headers={
            "Authorization": f"Bearer {world.keys[partner]}", "Prefer": "wait=10"}, json={
            "account": {"name": f"Outcome {domain}", "domain": domain, "country": "US",
                        "crm_account_id": crm_id},
            "opportunity": {"title": "Outcomes", "products": products},
            "motion": "resell"})
        assert answer.status_code == 201, answer.text
        ids.append(answer.json())
    assert ids[1]["status"] == "in_review" and ids[1]["dispute_id"], ids[1]
    return ids[0]["id"], ids[1]["id"], ids[1]["dispute_id"]


async def resolve(world: World, dispute: str, form: dict[str, str]) -> httpx.Response:
    page = await world.browser.get(f"/console/owner/disputes/{dispute}")
    assert page.status_code == 200, page.text
    return await world.browser.post(f"/console/owner/disputes/{dispute}/resolve",
                                    data={**form, "csrf": _csrf(page.text)})


async def recorded(world: World, dispute: str) -> dict[str, Any]:
    answer = await world.api.get(f"/v1/disputes/{dispute}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def test_award_split_co_sell_and_reject_all_reach_the_api_as_chosen(
        world: World) -> None:
    cases: list[tuple[str, Any]] = [
        ("award", lambda silver, gold: {"winner": gold}),
        ("split", lambda silver, gold: {f"percent__{gold}": "70", f"percent__{silver}": "30"}),
        ("co_sell", lambda silver, gold: {}),
        ("reject_all", lambda silver, gold: {}),
        ("award_products", lambda silver, gold: {"award__analytics": silver,
                                                 "award__crm": gold}),
    ]
    for outcome, fields in cases:
        silver, gold, dispute = await collide(world)
        answer = await resolve(world, dispute, {
            "outcome": outcome, "note": f"internal {outcome}",
            "partner_note": f"for partners {outcome}", **fields(silver, gold)})
        assert answer.status_code == 303, (outcome, answer.text[:2000])
        assert answer.headers["location"].endswith("?done=resolved")
        done = await recorded(world, dispute)
        resolution = done["resolution"]
        assert done["status"] == "resolved", outcome
        assert resolution["outcome"] == ("award" if outcome == "award_products" else outcome)
        assert (resolution["note"], resolution["partner_note"]) == (
            f"internal {outcome}", f"for partners {outcome}")
        if outcome == "award":
            assert resolution["registration_id"] == gold
        if outcome == "split":
            assert {s["registration_id"]: float(s["percent"])
                    for s in resolution["splits"]} == {gold: 70.0, silver: 30.0}
        if outcome == "award_products":
            assert {a["product"]: a["registration_id"] for a in resolution["awards"]} == {
                "analytics": silver, "crm": gold}
        shown = await world.browser.get(f"/console/owner/disputes/{dispute}?done=resolved")
        assert "Resolution recorded." in shown.text and f"internal {outcome}" in shown.text


async def test_distinct_settles_a_possible_duplicate(world: World) -> None:
    # One domain, two CRM ids: maybe one customer, maybe two; a person decides.
    *_, dispute = await collide(world, crm=("CRM-A-1", "CRM-B-2"))
    assert (await recorded(world, dispute))["reason"] == "possible_duplicate"
    answer = await resolve(world, dispute, {"outcome": "distinct", "note": "two customers"})
    assert answer.status_code == 303, answer.text[:2000]
    assert (await recorded(world, dispute))["resolution"]["outcome"] == "distinct"


async def test_a_refused_resolution_shows_the_apis_reason_and_keeps_the_form(
        world: World) -> None:
    silver, gold, dispute = await collide(world)
    answer = await resolve(world, dispute, {
        "outcome": "split", f"percent__{gold}": "70", f"percent__{silver}": "20",
        "note": "kept as typed"})
    assert answer.status_code == 422
    assert "add up to 100" in answer.text and "kept as typed" in answer.text
    assert 'value="20"' in answer.text
    assert (await recorded(world, dispute))["status"] == "open"
    # Without the session's CSRF token nothing is sent.
    forged = await world.browser.post(f"/console/owner/disputes/{dispute}/resolve",
                                      data={"outcome": "reject_all", "csrf": "forged"})
    assert forged.status_code == 403
    assert (await recorded(world, dispute))["status"] == "open"


async def test_acknowledge_one_and_many_from_the_console(world: World) -> None:
    disputes = [(await collide(world))[2] for _ in range(3)]
    page = await world.browser.get(f"/console/owner/disputes/{disputes[0]}")
    one = await world.browser.post(f"/console/owner/disputes/{disputes[0]}/acknowledge",
                                   data={"csrf": _csrf(page.text)})
    assert one.status_code == 303, one.text
    queue = await world.browser.get("/console/owner/?ack=no")
    assert disputes[0] not in queue.text and disputes[1] in queue.text
    many = await world.browser.post("/console/owner/acknowledge", content=urlencode([
        ("csrf", _csrf(queue.text)), ("dispute", disputes[1]), ("dispute", disputes[2]),
        ("dispute", "dsp_not_mine")]), headers={
        "content-type": "application/x-www-form-urlencoded"})
    assert many.status_code == 303
    assert "n=2" in many.headers["location"] and "dsp_not_mine" in many.headers["location"]
    for dispute in disputes:
        assert (await recorded(world, dispute))["acknowledged_at"] is not None
    # The poll answers 204 while nothing changed, the rows when something did.
    rows = await world.browser.get("/console/owner/queue/rows")
    digest = re.search(r'data-digest="([0-9a-f]+)"', rows.text)
    assert rows.status_code == 200 and digest
    same = await world.browser.get(f"/console/owner/queue/rows?digest={digest.group(1)}")
    assert same.status_code == 204
    arrived = (await collide(world))[2]
    changed = await world.browser.get(f"/console/owner/queue/rows?digest={digest.group(1)}")
    assert changed.status_code == 200 and arrived in changed.text


async def test_a_refused_resolution_shows_on_the_owners_dispute_page(world: World) -> None:
    """A resolution adjudication refuses (here: an award by product to a registration that
    does not cover it), sent without waiting (202), changes nothing; the owner's dispute
    page says the last resolve was refused and why (it read as a plain open dispute before,
    s27-staff)."""
    silver, gold, dispute = await collide(world)
    sent = await world.api.post(f"/v1/disputes/{dispute}/resolve", json={
        "outcome": "award", "awards": {"analytics": gold, "crm": silver}})
    assert sent.status_code == 202, sent.text
    for _ in range(200):
        shown = await world.browser.get(f"/console/owner/disputes/{dispute}")
        if 'id="last-refusal"' in shown.text:
            break
        await asyncio.sleep(0.05)
    assert 'id="last-refusal"' in shown.text, shown.text[:3000]
    assert "refused (invalid_resolution)" in shown.text
    assert f"{silver} does not cover the product crm" in shown.text
    assert (await recorded(world, dispute))["status"] == "open"
