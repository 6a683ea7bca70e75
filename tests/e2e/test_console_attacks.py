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
