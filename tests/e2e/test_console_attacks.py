"""The console attacked as a hostile client would: stolen cookies after sign-out, guessing
keys at the sign-in form. `dealreg dev`'s app (embedded backend) driven over ASGI, only
through the browser-facing console (cookie + form), never the API's header."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

ADMIN = "rival-admin-token"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    from dealreg.app import create_app
    from shared.settings import Settings

    settings = Settings(backend="embedded", data_dir=tmp_path / "data", admin_token=ADMIN,
                        auth_failure_limit_per_second=0.01, auth_failure_burst=3)
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dealreg") as client:
        yield client


async def _sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    page = await client.get("/console/sign-in")
    return await client.post("/console/sign-in", data={
        "api_key": key, "csrf": _csrf(page.text), "next": "/console/"})


async def test_a_cookie_copied_before_sign_out_opens_nothing_after_it(
        console: httpx.AsyncClient) -> None:
    assert (await _sign_in(console, ADMIN)).status_code == 303
    stolen = console.cookies["dealreg_session"]
    page = await console.get("/console/partner/")
    assert page.status_code == 200
    token = re.search(r'"X-CSRF-Token": ?"([^"]+)"', page.text)
    assert token, page.text[:500]
    out = await console.post("/console/sign-out", data={"csrf": token.group(1)})
    assert out.status_code == 303

    # Whoever kept the cookie (a shared machine, a proxy log) replays it.
    console.cookies.clear()
    console.cookies.set("dealreg_session", stolen, path="/console")
    replayed = await console.get("/console/partner/")
    assert replayed.status_code == 303
    assert replayed.headers["location"].startswith("/console/sign-in")
    # Signing in again starts a new session that works.
    console.cookies.clear()
    assert (await _sign_in(console, ADMIN)).status_code == 303
    assert (await console.get("/console/partner/")).status_code == 200


async def test_past_the_failed_sign_in_limit_even_the_right_key_is_not_tried(
        console: httpx.AsyncClient) -> None:
    answers = [(await _sign_in(console, f"guess-{i}")).status_code for i in range(4)]
    assert answers == [401, 401, 401, 429]
    # The guesser hits the right (admin) token now: it must not learn that it was right.
    right = await _sign_in(console, ADMIN)
    assert right.status_code == 429, right.headers
    assert "dealreg_session" not in console.cookies


async def test_a_burst_of_concurrent_wrong_sign_ins_gets_no_more_tries_than_the_limit(
        console: httpx.AsyncClient) -> None:
    """Key-shaped guesses are looked up in the store (an await): a limit checked before the
    look-up and counted after it let a burst of concurrent guesses all pass the check and
    all be tried, so a right key among them signed in. The console counts a guess before
    trying it, as the API does: three are tried, the rest (the right key too) get 429."""
    import asyncio

    page = await console.get("/console/sign-in")
    csrf = _csrf(page.text)
    guesses = [f"drk.key_guess{i:02d}.{'x' * 43}" for i in range(19)] + [ADMIN]
    answers = await asyncio.gather(*(console.post("/console/sign-in", data={
        "api_key": guess, "csrf": csrf, "next": "/console/"}) for guess in guesses))
    assert sorted(a.status_code for a in answers) == [401] * 3 + [429] * 17
    assert answers[-1].status_code == 429  # the right key, past the limit: not tried
    assert "dealreg_session" not in console.cookies
    refused = [a for a in answers if a.status_code == 429]
    assert all(int(a.headers["retry-after"]) >= 1 for a in refused)


async def test_a_partner_note_naming_a_party_is_refused_and_never_reaches_the_rival(
        console: httpx.AsyncClient) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    keys = {}
    for pid, name in (("p-alpha", "Alpha Resellers"), ("p-beta", "Beta Partners")):
        answer = await console.put(f"/v1/partners/{pid}", headers=admin, json={
            "name": name, "tier": "gold", "type": "reseller", "status": "active"})
        assert answer.status_code in (200, 201), answer.text
        minted = await console.post("/v1/api-keys", headers=admin,
                                    json={"role": "partner", "subject_id": pid})
        keys[pid] = minted.json()["token"]
    ids = {}
    for pid, crm in (("p-alpha", "CRM-ALPHA-42"), ("p-beta", None)):
        created = await console.post("/v1/registrations", headers={
            "Authorization": f"Bearer {keys[pid]}", "Prefer": "wait=10"}, json={
            "account": {"name": "Globex", "domain": "globex-rival.com", "country": "US",
                        **({"crm_account_id": crm} if crm else {})},
            "opportunity": {"title": "Same deal", "products": ["widget"]},
            "motion": "resell"})
        assert created.status_code == 201, created.text
        ids[pid] = created.json()["id"]
    disputes = (await console.get("/v1/disputes", headers=admin)).json()["items"]
    dispute = next(d for d in disputes if ids["p-beta"] in d["registration_ids"])

    # The owner's console form, as a tired owner fills it in: naming the winner.
    assert (await _sign_in(console, ADMIN)).status_code == 303
    page = await console.get(f"/console/owner/disputes/{dispute['id']}")
    for note in ("Awarded to p-alpha.", "alpha resellers came first",
                 "Their CRM id crm-alpha-42 was older"):
        refused = await console.post(f"/console/owner/disputes/{dispute['id']}/resolve", data={
            "csrf": _csrf(page.text), "outcome": "award", "winner": ids["p-alpha"],
            "note": "internal", "partner_note": note})
        assert refused.status_code == 422, (note, refused.status_code)
        assert 'id="partner_note-error"' in refused.text
    beta = await console.get(f"/v1/registrations/{ids['p-beta']}/timeline",
                             headers={"Authorization": f"Bearer {keys['p-beta']}"})
    assert "dispute.resolved" not in beta.text

    settled = await console.post(f"/console/owner/disputes/{dispute['id']}/resolve", data={
        "csrf": _csrf(page.text), "outcome": "award", "winner": ids["p-alpha"],
        "note": "Alpha Resellers (p-alpha) showed the older CRM id",
        "partner_note": "Awarded on the documented first introduction."})
    assert settled.status_code == 303, settled.text[:2000]


async def test_a_register_form_submitted_twice_at_once_files_one_registration(
        console: httpx.AsyncClient) -> None:
    import asyncio

    admin = {"Authorization": f"Bearer {ADMIN}"}
    await console.put("/v1/partners/p-gamma", headers=admin, json={
        "name": "Gamma", "tier": "gold", "type": "reseller", "status": "active"})
    key = (await console.post("/v1/api-keys", headers=admin, json={
        "role": "partner", "subject_id": "p-gamma"})).json()["token"]
    assert (await _sign_in(console, key)).status_code == 303
    page = await console.get("/console/partner/register")
    form_key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert form_key, "the register form carries no idempotency key"
    form = {"csrf": _csrf(page.text), "idempotency_key": form_key.group(1),
            "account.name": "Double Click Co", "account.domain": "double-click-co.com",
            "account.country": "US", "opportunity.title": "One deal",
            "opportunity.products": "widget", "motion": "resell"}

    # A double click: the same form posted twice before the first answer came back.
    first, second = await asyncio.gather(*(console.post("/console/partner/register",
                                                        data=form) for _ in range(2)))
    assert (first.status_code, second.status_code) == (303, 303), second.text[:1500]
    assert first.headers["location"] == second.headers["location"]
    mine = (await console.get("/v1/registrations", headers={
        "Authorization": f"Bearer {key}"})).json()["items"]
    assert [r["status"] for r in mine] == ["approved"]

    # The same page changed and sent again is a new registration, not an error.
    again = await console.post("/console/partner/register", data={
        **form, "account.name": "Other Co", "account.domain": "other-co-rival.com"})
    assert again.status_code == 303, again.text[:1500]
    assert again.headers["location"] != first.headers["location"]


async def test_when_the_api_cannot_be_reached_console_pages_say_so_with_a_503_page(
        tmp_path: Path) -> None:
    from dealreg.app import create_app
    from shared.settings import Settings
    from tests.support.processes import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = create_app(Settings(backend="embedded", data_dir=tmp_path / "data",
                              admin_token=ADMIN, console_api_url=nowhere))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://dealreg") as client:
        assert (await _sign_in(client, ADMIN)).status_code == 303
        for page in ("/console/partner/", "/console/owner/", "/console/manager/",
                     "/console/program/", "/console/program/csv/decisions"):
            answer = await client.get(page)
            assert answer.status_code == 503, (page, answer.status_code, answer.text[:300])
            assert answer.headers["content-type"].startswith("text/html"), page
            assert "could not be reached" in answer.text, page


async def test_a_link_cannot_make_the_owner_queue_show_someone_elses_text(
        console: httpx.AsyncClient) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    key = (await console.post("/v1/api-keys", headers=admin, json={
        "role": "owner", "subject_id": "cm-1"})).json()["token"]
    assert (await _sign_in(console, key)).status_code == 303
    lure = "Your session expired: call +1 555 0100 with your API key"
    page = await console.get("/console/owner/", params={"done": "acknowledged", "n": "0",
                                                        "failed": lure})
    assert page.status_code == 200
    assert "555 0100" not in page.text

    # A real refusal (not this owner's dispute) is still told, in the console's words.
    token = re.search(r'"X-CSRF-Token": ?"([^"]+)"', page.text)
    assert token
    bulk = await console.post("/console/owner/acknowledge", data={
        "csrf": token.group(1), "dispute": "dsp_0000000000000000000000000f"})
    assert bulk.status_code == 303
    told = await console.get(bulk.headers["location"])
    assert "dsp_0000000000000000000000000f: no such dispute in your queue" in told.text


async def test_a_form_over_the_console_limit_is_a_413_page_and_files_nothing(
        console: httpx.AsyncClient) -> None:
    """A form over 256 KB was refused 403 "Request refused", as if its security token were
    stale (a reload would not help). It is 413 with a page saying why, and nothing is
    filed; a form within the limit goes through."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    await console.put("/v1/partners/p-huge", headers=admin, json={
        "name": "Huge", "tier": "gold", "type": "reseller", "status": "active"})
    key = (await console.post("/v1/api-keys", headers=admin, json={
        "role": "partner", "subject_id": "p-huge"})).json()["token"]
    assert (await _sign_in(console, key)).status_code == 303
    page = await console.get("/console/partner/register")
    form_key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert form_key, page.text[:500]
    form = {"csrf": _csrf(page.text), "idempotency_key": form_key.group(1),
            "account.name": "Huge Form Co", "account.domain": "huge-form-co.com",
            "account.country": "US", "opportunity.title": "One deal",
            "opportunity.products": "widget", "motion": "resell"}
    for extra in ("padding", "opportunity.title"):
        refused = await console.post("/console/partner/register",
                                     data={**form, extra: "x" * (300 * 1024)})
        assert refused.status_code == 413, (refused.status_code, refused.text[:800])
        assert "Form too large" in refused.text and "nothing was changed" in refused.text
        assert "text/html" in refused.headers["content-type"]
    mine = (await console.get("/v1/registrations", headers={
        "Authorization": f"Bearer {key}"})).json()["items"]
    assert mine == []
    # Within the limit the same form files its registration.
    accepted = await console.post("/console/partner/register", data=form)
    assert accepted.status_code == 303, accepted.text[:800]
