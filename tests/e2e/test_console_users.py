"""The console as its users meet it on a bad day: odd ids in links, a session that ends
while a form is open, a form page kept across a new sign-in. `dealreg dev`'s app (embedded
backend) driven over ASGI through the browser-facing console only (cookie + form)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dealreg.app import create_app
from shared.settings import Settings

ADMIN = "console-users-admin-token"


@dataclass
class World:
    client: httpx.AsyncClient   # a browser: cookies only, no API header
    keys: dict[str, str]

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}"}


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html) or re.search(
        r'"X-CSRF-Token": ?"([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


async def _sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    client.cookies.clear()
    page = await client.get("/console/sign-in")
    return await client.post("/console/sign-in", data={
        "api_key": key, "csrf": _csrf(page.text), "next": "/console/"})


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    settings = Settings(backend="embedded", data_dir=Path(tmp_path_factory.mktemp("users")),
                        admin_token=ADMIN, log_level="WARNING")
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://dealreg", timeout=30) as client:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        put = await client.put("/v1/partners/p-hurry", headers=admin, json={
            "name": "Hurry Partners", "tier": "gold", "type": "reseller", "status": "active"})
        assert put.status_code in (200, 201), put.text
        keys = {}
        for role, subject in (("partner", "p-hurry"), ("owner", "cm-1"),
                              ("channel_manager", None)):
            minted = await client.post("/v1/api-keys", headers=admin,
                                       json={"role": role, "subject_id": subject})
            assert minted.status_code == 201, minted.text
            keys[role] = minted.json()["token"]
        keys["admin"] = ADMIN
        yield World(client, keys)


@pytest.mark.parametrize("odd", ["%3F", "%3Fstatus=open", "%23", "%25", "%3Flimit%3D1"])
async def test_an_odd_id_in_a_console_link_is_a_404_page_never_a_500(
        world: World, odd: str) -> None:
    """Ids went into /v1 paths unquoted on the owner's and manager's pages: `?` turned
    `/v1/disputes/?` into the dispute list (a 500 reading it as one dispute), `#` and `%`
    broke the URL."""
    pages = {"owner": ["/console/owner/disputes/{}"],
             "channel_manager": ["/console/manager/registrations/{}",
                                 "/console/manager/owners/{}"],
             "admin": ["/console/manager/registrations/{}", "/console/manager/partners/{}",
                       "/console/manager/owners/{}", "/console/owner/disputes/{}"]}
    for role, paths in pages.items():
        assert (await _sign_in(world.client, world.keys[role])).status_code == 303
        for path in paths:
            answer = await world.client.get(path.format(odd))
            # The API's answer for an id that names nothing (422 where the id's
            # pattern is checked), on an HTML page.
            assert answer.status_code in (404, 422), (role, path, answer.status_code,
                                                      answer.text[:300])
            assert answer.headers["content-type"].startswith("text/html")


def _hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


async def _register_form(world: World) -> dict[str, str]:
    """The register form as the partner's browser shows it, filled in."""
    page = await world.client.get("/console/partner/register")
    assert page.status_code == 200, page.text[:300]
    return {**_hidden(page.text), "account.name": "Typed Carefully GmbH",
            "account.domain": "typed-carefully.de", "account.country": "DE",
            "opportunity.title": "Ünïcode rollout", "opportunity.products": "analytics",
            "motion": "resell"}


async def _mine(world: World, domain: str) -> list[str]:
    answer = await world.client.get("/v1/registrations", params={"limit": 100}, headers={
        "Authorization": f"Bearer {world.keys['partner']}"})
    return [r["id"] for r in answer.json()["items"]
            if (r.get("account") or {}).get("domain") == domain]


SAME_SITE = {"Sec-Fetch-Site": "same-origin", "Origin": "http://dealreg"}


async def test_a_form_sent_after_the_session_ended_is_kept_through_sign_in(
        world: World) -> None:
    """A partner fills the register form, the session ends (expiry, sign-out in another
    tab), Register: the sign-in page used to come back and, after it, an empty form. The
    form now rides through the sign-in page and is offered to send once signed in again;
    nothing is sent before that."""
    assert (await _sign_in(world.client, world.keys["partner"])).status_code == 303
    form = await _register_form(world)
    world.client.cookies.delete("dealreg_session")  # the session ended meanwhile

    refused = await world.client.post("/console/partner/register", data=form,
                                      headers=SAME_SITE)
    assert refused.status_code == 401, refused.headers
    assert 'id="api_key"' in refused.text and "not sent" in refused.text
    carried = _hidden(refused.text)
    # Carried sealed: whoever stands at this sign-in page reads nothing of the form.
    assert carried["carried"] and "Typed Carefully" not in refused.text
    assert "Ünïcode rollout" not in refused.text and "typed-carefully" not in refused.text
    assert carried["next"] == "/console/partner/register"
    assert await _mine(world, "typed-carefully.de") == []

    signed = await world.client.post("/console/sign-in", data={
        **carried, "api_key": world.keys["partner"]})
    assert signed.status_code == 200, signed.text[:500]
    assert "Typed Carefully GmbH" in signed.text
    assert await _mine(world, "typed-carefully.de") == []  # offered, not sent
    offered = _hidden(signed.text)
    assert offered["account.name"] == "Typed Carefully GmbH"
    assert offered["idempotency_key"] == form["idempotency_key"]
    assert 'action="/console/partner/register"' in signed.text

    sent = await world.client.post("/console/partner/register", data=offered)
    assert sent.status_code == 303, sent.text[:500]
    again = await world.client.post("/console/partner/register", data=offered)
    assert again.headers.get("location") == sent.headers["location"]  # the same one
    assert len(await _mine(world, "typed-carefully.de")) == 1


async def test_a_form_posted_from_another_site_without_a_session_is_not_carried(
        world: World) -> None:
    """Another site cannot pre-fill a form for the partner to send after signing in."""
    assert (await _sign_in(world.client, world.keys["partner"])).status_code == 303
    form = await _register_form(world)
    world.client.cookies.delete("dealreg_session")
    for headers in ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
                    {"Origin": "https://evil.example"}, {}):
        answer = await world.client.post("/console/partner/register",
                                         data={**form, "account.domain": "forged.example"},
                                         headers=headers)
        assert answer.status_code == 303, (headers, answer.status_code)
        assert answer.headers["location"].startswith("/console/sign-in?next=")
        assert "forged.example" not in answer.headers["location"]


async def test_a_form_kept_open_across_a_new_sign_in_is_offered_again_not_lost(
        world: World) -> None:
    """Signing in again (another tab, a new day) draws a new CSRF token: a form page from
    before was refused with a 403 page and everything typed was lost. It now comes back
    with the new token, to send again, and nothing was sent."""
    assert (await _sign_in(world.client, world.keys["partner"])).status_code == 303
    form = {**await _register_form(world), "account.domain": "stale-token.de"}
    assert (await _sign_in(world.client, world.keys["partner"])).status_code == 303

    refused = await world.client.post("/console/partner/register", data=form,
                                      headers=SAME_SITE)
    assert refused.status_code == 403, refused.text[:300]
    assert "not sent" in refused.text
    assert await _mine(world, "stale-token.de") == []
    offered = _hidden(refused.text)
    assert offered["account.domain"] == "stale-token.de"
    assert offered["csrf"] != form["csrf"]
    sent = await world.client.post("/console/partner/register", data=offered)
    assert sent.status_code == 303, sent.text[:500]
    assert len(await _mine(world, "stale-token.de")) == 1


def _untied(html: str) -> list[str]:
    """Inputs marked invalid whose error text is not tied to them (`aria-describedby`
    naming the element that shows it): a screen reader announces "invalid" and no why."""
    out = []
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        if 'aria-invalid="true"' not in tag:
            continue
        described = re.search(r'aria-describedby="([^"]+)"', tag)
        ids = described.group(1).split() if described else []
        if not any(re.search(rf'<p class="field-error[^"]*" id="{re.escape(i)}"', html)
                   for i in ids):
            name = re.search(r'name="([^"]+)"', tag)
            out.append(name.group(1) if name else tag)
    return out


async def test_every_field_error_on_the_manager_pages_is_tied_to_its_input(
        world: World) -> None:
    assert (await _sign_in(world.client, world.keys["admin"])).status_code == 303
    page = await world.client.get("/console/manager/partners")
    csrf = _csrf(page.text)
    answers = {
        "ownership": await world.client.get("/console/manager/ownership",
                                            params={"domain": "not a domain"}),
        "search": await world.client.get("/console/manager/", params={"account": "a" * 400}),
        "new partner": await world.client.post("/console/manager/partners", data={
            "csrf": csrf, "id": "", "name": "Nameless"}),
        "partner": await world.client.post("/console/manager/partners", data={
            "csrf": csrf, "id": "p-tied", "name": "", "webhook_url": "ftp://nowhere"}),
        "owner": await world.client.post("/console/manager/owners", data={
            "csrf": csrf, "id": "o-tied", "name": "", "email": "not-an-address"}),
    }
    for what, answer in answers.items():
        assert 'aria-invalid="true"' in answer.text, (what, answer.status_code)
        assert _untied(answer.text) == [], what
        # In words, not the field's regular expression.
        assert "should match pattern" not in answer.text, what


async def test_search_dates_are_days_in_the_viewers_timezone(world: World) -> None:
    """The search's "submitted from/to" were UTC days: in New York after 19:00 a search
    for today missed what was registered in the last hours. The browser now names its
    timezone (`tz`, filled in by console.js) and the days are the viewer's. Two zones
    far either side of UTC: at any hour one of them is on another date than UTC."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    created = await world.client.post("/v1/registrations", headers={
        "Authorization": f"Bearer {world.keys['partner']}", "Prefer": "wait=10"}, json={
        "account": {"name": "Dateline Ltd", "domain": "dateline-tz.com", "country": "NZ"},
        "opportunity": {"title": "Across the line"}, "motion": "resell"})
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert (await _sign_in(world.client, world.keys["channel_manager"])).status_code == 303
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        today = datetime.now(ZoneInfo(zone)).date()
        found = await world.client.get("/console/manager/", params={
            "account": "dateline", "submitted_from": today.isoformat(),
            "submitted_to": today.isoformat(), "tz": zone})
        assert found.status_code == 200
        assert f'data-id="{rid}"' in found.text, zone
        assert f'name="tz" value="{zone}"' in found.text  # kept for the next page
        before = await world.client.get("/console/manager/", params={
            "account": "dateline", "submitted_to": (today - timedelta(days=1)).isoformat(),
            "tz": zone})
        assert f'data-id="{rid}"' not in before.text, zone
    # An unknown zone is UTC, not an error.
    odd = await world.client.get("/console/manager/", params={
        "account": "dateline", "tz": "../../etc/passwd"})
    assert odd.status_code == 200 and f'data-id="{rid}"' in odd.text


async def test_a_form_the_role_cannot_send_is_not_offered(world: World) -> None:
    """A partner could open the rep's claim form by its URL (and a rep the register form),
    fill it all in, and only then be refused by the API."""
    minted = await world.client.post("/v1/api-keys", headers=world.admin,
                                     json={"role": "rep", "subject_id": "rep-hurry"})
    for role, key, path in (("partner", world.keys["partner"], "/console/partner/claim"),
                            ("rep", minted.json()["token"], "/console/partner/register")):
        assert (await _sign_in(world.client, key)).status_code == 303
        page = await world.client.get(path)
        assert page.status_code == 403, (role, page.status_code)
        assert "Not for your role" in page.text and "<form method=\"post\" action=\"" \
            + path not in page.text


async def test_a_session_ending_under_a_polling_page_returns_to_that_page(
        world: World) -> None:
    """The owner's queue polls its rows; when the session ended, htmx was sent to sign in
    with `next` the polled fragment, so after signing in the owner landed on a bare,
    unstyled table. `next` is now the page htmx says it is on (`HX-Current-URL`)."""
    world.client.cookies.clear()
    answer = await world.client.get("/console/owner/queue/rows?ack=no&digest=x", headers={
        "HX-Request": "true", "HX-Current-URL": "http://dealreg/console/owner/?ack=no"})
    assert answer.status_code == 401
    assert answer.headers["hx-redirect"] == "/console/sign-in?next=%2Fconsole%2Fowner%2F%3Fack%3Dno"
    # A page elsewhere is not a place to return to.
    answer = await world.client.get("/console/owner/queue/rows", headers={
        "HX-Request": "true", "HX-Current-URL": "https://evil.example//console/x"})
    assert answer.headers["hx-redirect"].startswith(
        "/console/sign-in?next=%2Fconsole%2Fowner%2Fqueue%2Frows")


async def test_a_previous_users_stale_form_is_not_offered_to_the_next_user(
        world: World) -> None:
    """A shared machine: partner A's tab holds a register form; A's session is replaced by
    partner B signing in on the same browser; A's tab sends. The form was offered to B
    under B's token: B read what A typed (a customer A is pursuing) and one button sent it
    as B's registration. A form is offered again only to the user whose page it was."""
    put = await world.client.put("/v1/partners/p-next", headers=world.admin, json={
        "name": "Next Partners", "tier": "gold", "type": "reseller", "status": "active"})
    assert put.status_code in (200, 201), put.text
    minted = await world.client.post("/v1/api-keys", headers=world.admin,
                                     json={"role": "partner", "subject_id": "p-next"})
    assert minted.status_code == 201, minted.text
    assert (await _sign_in(world.client, world.keys["partner"])).status_code == 303
    form = {**await _register_form(world), "account.domain": "a-secret-prospect.de"}
    assert (await _sign_in(world.client, minted.json()["token"])).status_code == 303
    refused = await world.client.post("/console/partner/register", data=form,
                                      headers=SAME_SITE)
    assert refused.status_code == 403, refused.text[:300]
    assert "a-secret-prospect.de" not in refused.text


async def test_a_form_carried_through_sign_in_is_offered_only_to_its_user(
        world: World) -> None:
    """Rival round 2 (session 27): a shared machine, partner A's session ends with a
    register form open; A's tab sends it and the sign-in page carried it in hidden
    fields, readable by anyone at that page and offered, after sign-in, to whoever signed
    in there: partner B read the customer A was pursuing and could send it as B's with
    one button. The form now rides sealed to A: B signing in gets B's own start page."""
    put = await world.client.put("/v1/partners/p-other", headers=world.admin, json={
        "name": "Other Partners", "tier": "gold", "type": "reseller", "status": "active"})
    assert put.status_code in (200, 201), put.text
    minted = await world.client.post("/v1/api-keys", headers=world.admin,
                                     json={"role": "partner", "subject_id": "p-other"})
    assert minted.status_code == 201, minted.text
    assert (await _sign_in(world.client, world.keys["partner"])).status_code == 303
    form = {**await _register_form(world), "account.domain": "a-pursued-prospect.de"}
    world.client.cookies.delete("dealreg_session")  # A's session ended meanwhile

    refused = await world.client.post("/console/partner/register", data=form,
                                      headers=SAME_SITE)
    assert refused.status_code == 401, refused.headers
    assert "a-pursued-prospect" not in refused.text and "Typed Carefully" not in refused.text
    carried = _hidden(refused.text)

    as_b = await world.client.post("/console/sign-in", data={
        **carried, "api_key": minted.json()["token"]})
    assert as_b.status_code == 303, as_b.text[:500]
    assert as_b.headers["location"] == "/console/partner/register"
    assert "a-pursued-prospect" not in as_b.text
    page = await world.client.get(as_b.headers["location"])
    assert "a-pursued-prospect" not in page.text and "Typed Carefully" not in page.text
    assert await _mine(world, "a-pursued-prospect.de") == []

    # A forged blob (edited, or sealed for someone else) opens nothing either.
    world.client.cookies.delete("dealreg_session")
    fresh_page = await world.client.get("/console/sign-in")
    forged = {**_hidden(fresh_page.text), "next": carried["next"],
              "carried": carried["carried"][:-4] + "AAAA"}
    as_a = await world.client.post("/console/sign-in", data={
        **forged, "api_key": world.keys["partner"]})
    assert as_a.status_code == 303 and "a-pursued-prospect" not in as_a.text
