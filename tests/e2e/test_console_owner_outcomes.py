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
    # The reason is tied to the inputs it is about (a screen reader reads it with them).
    assert 'aria-describedby="splits-error"' in answer.text
    assert re.search(r'<p class="field-error" id="splits-error">[^<]*100', answer.text)
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


async def test_a_double_submitted_acknowledge_or_resolve_is_answered_as_the_first(
        world: World) -> None:
    """A double click (or a browser retrying the POST) on Resolve resolved once and then
    showed the owner "Conflict: already resolved" as if it had failed; on Acknowledge
    selected it listed every dispute as not acknowledged. The owner's forms carry an
    Idempotency-Key like the partner's: the second submission gets the first's answer."""
    import asyncio

    disputes = [(await collide(world))[2] for _ in range(3)]
    page = await world.browser.get(f"/console/owner/disputes/{disputes[0]}")
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                             page.text.split('id="resolve-form"', 1)[1].split("</form>")[0]))
    assert fields.get("idempotency_key"), "the resolve form carries no Idempotency-Key"
    silver = re.findall(r'name="winner" value="([^"]+)"', page.text)[0]
    form = {**fields, "outcome": "award", "winner": silver, "note": "first come"}
    answers = await asyncio.gather(*(world.browser.post(
        f"/console/owner/disputes/{disputes[0]}/resolve", data=form) for _ in range(2)))
    answers.append(await world.browser.post(f"/console/owner/disputes/{disputes[0]}/resolve",
                                            data=form))
    assert [a.status_code for a in answers] == [303] * 3, [a.text[:300] for a in answers]
    assert (await recorded(world, disputes[0]))["resolution"]["registration_id"] == silver

    page = await world.browser.get(f"/console/owner/disputes/{disputes[1]}")
    ack = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                          page.text.split("/acknowledge", 1)[1].split("</form>")[0]))
    twice = [await world.browser.post(f"/console/owner/disputes/{disputes[1]}/acknowledge",
                                      data=ack) for _ in range(2)]
    assert [a.status_code for a in twice] == [303, 303], [a.text[:300] for a in twice]

    queue = await world.browser.get("/console/owner/?ack=no")
    bulk = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                           queue.text.split('id="bulk"', 1)[1].split("</form>")[0]))
    sent = [await world.browser.post("/console/owner/acknowledge",
                                     data={**bulk, "dispute": [disputes[2]]})
            for _ in range(2)]
    assert [s.headers["location"] for s in sent] == [
        "/console/owner/?done=acknowledged&n=1&ack=no"] * 2


async def test_a_dispute_escalated_away_offers_its_old_owner_no_resolve_form(
        world: World) -> None:
    """A dispute page kept open past its level's deadline: the old owner could fill in the
    whole resolution before the API said "assigned to another owner". The page now says
    where the dispute went and offers no form."""
    import asyncio

    found = (await world.api.get("/v1/policy")).json()
    short = await world.api.put("/v1/policy", json={"escalation": {"levels": [
        {"owner_id": OWNER, "sla": "PT2S"}, {"owner_id": "own-out-2", "sla": "P2D"}],
        "deadline_unit": None}})  # due at the SLA: seconds, not the next hour
    assert short.status_code == 201, short.text
    try:
        dispute = (await collide(world))[2]
        for _ in range(100):
            if (await recorded(world, dispute))["level"] == 2:
                break
            await asyncio.sleep(0.2)
        assert (await recorded(world, dispute))["level"] == 2
    finally:
        await world.api.put("/v1/policy", json={k: v for k, v in found.items()
                                                 if k != "version"})
    page = await world.browser.get(f"/console/owner/disputes/{dispute}")
    assert page.status_code == 200
    assert 'id="not-yours"' in page.text and "own-out-2" in page.text
    assert 'id="resolve-form"' not in page.text and 'id="acknowledge"' not in page.text


async def test_a_queue_longer_than_a_page_pages_on_to_every_open_dispute(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue showed the first 100 disputes and "Showing the first 100", with no way to
    the others but filters. It pages on (the API's cursor), here at 2 a page."""
    from services.console import owner

    for _ in range(3):
        await collide(world)
    monkeypatch.setattr(owner, "QUEUE_LIMIT", 2)
    listed = (await world.api.get("/v1/disputes", params={
        "status": "open", "owner_id": OWNER, "limit": 200})).json()["items"]
    expected = {d["id"] for d in listed}
    assert len(expected) > 2
    seen: list[str] = []
    url = "/console/owner/?sort=opened"
    for _ in range(len(expected)):
        page = await world.browser.get(url)
        assert page.status_code == 200, page.text[:300]
        seen += re.findall(r'<tr data-id="(dsp_[^"]+)"', page.text)
        more = re.search(r'<a id="queue-next" href="([^"]+)"', page.text)
        if more is None:
            break
        url = more.group(1).replace("&amp;", "&")
        assert "sort=opened" in url  # the filters stay
    assert sorted(seen) == sorted(expected)


async def test_bulk_acknowledge_sends_the_acknowledgements_side_by_side(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Acknowledge selected sent one acknowledgement after the other, each waiting up to
    5 s for adjudication: 50 disputes could hold the page for minutes when adjudication
    lagged. They go side by side now (each still answered, refusals still listed)."""
    import asyncio

    from services.console.client import ConsoleApi

    disputes = [(await collide(world))[2] for _ in range(4)]
    in_flight, most = 0, 0
    real_post = ConsoleApi.post

    async def slow_post(self: ConsoleApi, path: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.3)   # adjudication lagging
            return await real_post(self, path, *args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(ConsoleApi, "post", slow_post)
    queue = await world.browser.get("/console/owner/?ack=no")
    bulk = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                           queue.text.split('id="bulk"', 1)[1].split("</form>")[0]))
    sent = await world.browser.post("/console/owner/acknowledge", data={
        **bulk, "dispute": [*disputes, "dsp_0000000000000000000000000f"]})
    assert sent.status_code == 303
    assert "n=4" in sent.headers["location"]
    assert "failed=dsp_0000000000000000000000000f%3A404" in sent.headers["location"]
    assert most == 5, most
    for dispute in disputes:
        assert (await recorded(world, dispute))["acknowledged_at"] is not None
