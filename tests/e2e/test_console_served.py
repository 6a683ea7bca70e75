"""The console is served wherever the queries are: by `dealreg dev` and by the query service
of the distributed deployment (Kafka + PostgreSQL), reading through /v1 with the user's
key."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.conftest import System


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


async def test_the_query_service_serves_the_console_through_the_api(system: System,
                                                                    unique: str) -> None:
    minted = await system.commands.post("/v1/api-keys", json={
        "role": "partner", "subject_id": f"p-{unique}"})
    assert minted.status_code == 201, minted.text
    key = minted.json()["token"]
    created = await system.commands.post("/v1/registrations", json={
        "account": {"name": "Console Corp", "domain": f"console-{unique}.com",
                    "country": "US"},
        "opportunity": {"title": "Served by the queries"}, "motion": "resell"},
        headers={"Authorization": f"Bearer {key}", "Prefer": "wait=20"})
    assert created.status_code == 201, created.text
    registration = created.json()

    # A browser: no Authorization header, only the session cookie.
    transport = system.queries._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://dealreg") as browser:
        root = await browser.get("/")
        assert (root.status_code, root.headers["location"]) == (302, "/console/")
        page = await browser.get("/console/sign-in")
        signed = await browser.post("/console/sign-in", data={
            "api_key": key, "csrf": _csrf(page.text), "next": "/console/"})
        assert signed.status_code == 303, signed.text
        listing = await browser.get("/console/partner/")
        assert listing.status_code == 200
        assert "Console Corp" in listing.text and registration["id"] in listing.text
        detail = await browser.get(f"/console/partner/registrations/{registration['id']}")
        assert detail.status_code == 200
        assert registration["decision"]["explanation"] in detail.text.replace("&#39;", "'")
        # The console's forms are urlencoded; the API under it still takes JSON only.
        refused = await browser.post("/v1/registrations", data={"a": "b"},
                                     headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 415


async def test_session_cookies_are_secure_over_https_or_when_configured(tmp_path: Path) -> None:
    from dealreg.app import create_app
    from shared.settings import Settings

    async def cookie_flags(secure: bool | None, scheme: str) -> tuple[str, str]:
        """The Set-Cookie of the sign-in page and of a sign-in."""
        settings = Settings(backend="embedded", data_dir=tmp_path / f"{secure}-{scheme}",
                            admin_token="console-admin-token", session_cookie_secure=secure)
        app = create_app(settings)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://dealreg") as c:
            page = await c.get("/console/sign-in")
            # The client keeps a Secure cookie from a plain-http page: a browser behind a
            # TLS-terminating proxy talks https.
            c.cookies.set("dealreg_signin", page.cookies["dealreg_signin"])
            signed = await c.post("/console/sign-in", data={
                "api_key": "console-admin-token", "csrf": _csrf(page.text)})
            assert signed.status_code == 303, signed.text
            return page.headers["set-cookie"], signed.headers["set-cookie"]

    page, session = await cookie_flags(None, "http")
    for cookie in (page, session):
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Path=/console" in cookie and "Secure" not in cookie
    assert session.startswith("dealreg_session=")
    assert all("Secure" in c for c in await cookie_flags(None, "https"))
    # Behind a TLS-terminating proxy the request looks like http: configured.
    assert all("Secure" in c for c in await cookie_flags(True, "http"))
