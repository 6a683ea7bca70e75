"""Signing in and out of the console, and what each role's navigation offers."""

from __future__ import annotations

import httpx

from tests.browser.conftest import Console, DevServer

NAV = {
    "partner": ["partner"],
    "rep": ["partner"],
    "owner": ["owner"],
    "channel_manager": ["manager", "program"],
    "admin": ["partner", "owner", "manager", "program"],
    "integration": [],
}
AREA_PATHS = {"partner": "/console/partner/", "owner": "/console/owner/",
              "manager": "/console/manager/", "program": "/console/program/"}


def test_each_role_signs_in_and_sees_only_its_areas(console: Console,
                                                    keys: dict[str, str]) -> None:
    for role, expected in NAV.items():
        console.driver.delete_all_cookies()
        console.sign_in(keys[role])
        assert console.nav() == expected, role
        if expected:
            # Lands on its first area.
            assert console.path == AREA_PATHS[expected[0]], (role, console.path)
        else:
            assert "no screens for the integration role" in console.text()
        # Every other area answers the 403 page, not the screen and not a 500.
        for area, path in AREA_PATHS.items():
            if area in expected:
                continue
            console.go(path)
            assert "Not for your role" in console.text("h1"), (role, area)
        console.sign_out()


def test_a_wrong_key_is_refused_with_a_message(console: Console, keys: dict[str, str]) -> None:
    console.sign_in(keys["partner"][:-4] + "AAAA")
    assert "unknown or revoked" in console.text("#signin-error")
    assert console.find("#api_key").get_attribute("aria-invalid") == "true"
    assert console.nav() == []
    console.screenshot("sign-in")
    # Nothing behind the sign-in page without a session.
    console.go("/console/partner/")
    assert console.path.startswith("/console/sign-in?next=")


def test_signing_out_ends_the_session(console: Console, keys: dict[str, str]) -> None:
    console.sign_in(keys["partner"])
    assert console.nav() == ["partner"]
    cookie = console.driver.get_cookie("dealreg_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    console.sign_out()
    assert "signed out" in console.text()
    console.go("/console/partner/")
    assert console.path.startswith("/console/sign-in")


def test_after_sign_in_the_user_returns_to_the_page_asked_for(console: Console,
                                                              keys: dict[str, str]) -> None:
    console.go("/console/partner/?status=approved")
    assert console.path.startswith("/console/sign-in?next=")
    console.sign_in(keys["partner"], here=True)
    assert console.path == "/console/partner/?status=approved"


def test_a_form_post_without_the_csrf_token_is_refused(dev_server: DevServer,
                                                       keys: dict[str, str]) -> None:
    with httpx.Client(base_url=dev_server.base) as browser:
        page = browser.get("/console/sign-in")
        assert page.status_code == 200
        # Sign-in itself: the page's token is required (login CSRF).
        forged = browser.post("/console/sign-in", data={"api_key": keys["partner"]})
        assert forged.status_code == 403 and "security token" in forged.text
        assert browser.get("/console/partner/").status_code == 303
        signed = browser.post("/console/sign-in", data={
            "api_key": keys["partner"], "csrf": _field(page.text, "csrf")})
        assert signed.status_code == 303, signed.text
        # Signed in: a state-changing post needs the session's token, field or header.
        for post in ({}, {"data": {"csrf": "made-up"}},
                     {"headers": {"X-CSRF-Token": _field(page.text, "csrf")}}):
            refused = browser.post("/console/sign-out", **post)  # type: ignore[arg-type]
            assert refused.status_code == 403, refused.text
            assert "security token" in refused.text
        # Still signed in: the refused sign-outs did nothing.
        listing = browser.get("/console/partner/")
        assert listing.status_code == 200
        # What htmx sends (the session's token in X-CSRF-Token) is accepted.
        accepted = browser.post("/console/sign-out",
                                headers={"X-CSRF-Token": _field(listing.text, "csrf")})
        assert accepted.status_code == 303
        assert browser.get("/console/partner/").status_code == 303


def _field(html: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


def test_the_keyboard_reaches_everything_with_a_visible_focus(console: Console,
                                                              keys: dict[str, str]) -> None:
    from selenium.webdriver.common.keys import Keys

    console.sign_in(keys["admin"])
    body = console.find("body")
    body.send_keys(Keys.TAB)
    first = console.driver.switch_to.active_element
    assert first.text == "Skip to content" and first.is_displayed()
    outline = first.value_of_css_property("outline-style")
    assert outline == "solid", outline  # the focus ring (:focus-visible) shows
    first.send_keys(Keys.ENTER)
    assert console.driver.switch_to.active_element.get_attribute("id") == "main"
    # Tabbing from the top walks the brand, every nav entry, then sign-out.
    console.go("/console/partner/")
    seen: list[str] = []
    for _ in range(8):
        console.driver.switch_to.active_element.send_keys(Keys.TAB)
        active = console.driver.switch_to.active_element
        seen.append(active.get_attribute("data-area") or active.get_attribute("id") or "")
    assert seen[2:6] == ["partner", "owner", "manager", "program"], seen
    assert "sign-out" in seen, seen


def test_an_unknown_console_page_is_an_html_404(console: Console,
                                                keys: dict[str, str]) -> None:
    console.sign_in(keys["partner"])
    console.go("/console/no-such-page")
    assert console.text("h1") == "Not found"
    assert console.nav() == ["partner"]


def test_pages_run_without_script_errors_or_policy_violations(
        console: Console, keys: dict[str, str]) -> None:
    console.browser_errors()
    console.go("/console/sign-in")
    console.sign_in(keys["admin"])
    for path in ("/console/partner/", "/console/partner/register", "/console/partner/claim",
                 "/console/owner/", "/console/manager/", "/console/program/"):
        console.go(path)
        # htmx loaded from our own origin and picked up the CSRF header.
        assert console.driver.execute_script("return typeof htmx") == "object", path
    assert console.browser_errors() == []


def test_revoking_a_key_ends_its_console_sessions(dev_server: DevServer) -> None:
    with dev_server.api() as admin:
        minted = admin.post("/v1/api-keys", json={"role": "partner", "subject_id": "p-gone"})
        assert minted.status_code == 201, minted.text
        key = minted.json()
    with httpx.Client(base_url=dev_server.base) as browser:
        page = browser.get("/console/sign-in")
        signed = browser.post("/console/sign-in", data={
            "api_key": key["token"], "csrf": _field(page.text, "csrf")})
        assert signed.status_code == 303
        assert browser.get("/console/partner/").status_code == 200
        with dev_server.api() as admin:
            assert admin.delete(f"/v1/api-keys/{key['id']}").status_code == 204
        gone = browser.get("/console/partner/")
        assert gone.status_code == 303
        assert gone.headers["location"].startswith("/console/sign-in?next=")
