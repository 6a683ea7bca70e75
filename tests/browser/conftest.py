"""The console in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`)
driven by Selenium, against a real `dealreg dev` process.

One dev server and one browser per test session (starting either costs seconds); every
test gets the browser signed out (`console` fixture). Keys are minted through the API for
each role (`keys`). `console.screenshot("name")` writes console-<name>.png at 1280x800 into
`DEALREG_SCREENSHOTS` when it is set (`make screenshots` sets docs/images, the pictures the
README shows), else into a temporary directory, so a test run leaves the tree clean.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.support.processes import free_port, stop

ROOT = Path(__file__).resolve().parents[2]
IMAGES = Path(os.environ.get("DEALREG_SCREENSHOTS")
              or tempfile.mkdtemp(prefix="dealreg-screenshots-"))
CHROMIUM = os.environ.get("DEALREG_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DEALREG_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
WIDTH, HEIGHT = 1280, 800
VIEWER_TZ = "America/New_York"


@dataclass
class DevServer:
    """A running `dealreg dev` and an admin's view of its API."""

    base: str
    admin_token: str
    log: Path
    _keys: dict[tuple[str, str | None], str] = field(default_factory=dict)

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30, headers={
            "Authorization": f"Bearer {token or self.admin_token}"})

    def mint(self, role: str, subject_id: str | None = None) -> str:
        """An API key for `role` (bound to `subject_id`), minted once per session."""
        if (role, subject_id) not in self._keys:
            with self.api() as api:
                answer = api.post("/v1/api-keys", json={
                    "role": role, "subject_id": subject_id, "name": f"browser {role}"})
            assert answer.status_code == 201, answer.text
            self._keys[(role, subject_id)] = answer.json()["token"]
        return self._keys[(role, subject_id)]

    def register(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/registrations as `token`, waiting for the decision."""
        with self.api(token) as api:
            answer = api.post("/v1/registrations", json=body, headers={"Prefer": "wait=10"})
        assert answer.status_code in (200, 201, 202), answer.text
        return dict(answer.json())


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path,
                timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"dealreg dev exited: {log.read_text()[-3000:]}")
            try:
                if client.get(f"{base}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"dealreg dev not ready in {timeout} s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """`dealreg dev` as a user runs it (`make dev`): a subprocess on a free port."""
    data = tmp_path_factory.mktemp("console-dev")
    port = free_port()
    token = "browser-admin-" + secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env.update(DEALREG_ADMIN_TOKEN=token, DEALREG_SESSION_SECRET=secrets.token_urlsafe(32),
               DEALREG_LOG_LEVEL="WARNING", COLUMNS="200")
    log = data / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dealreg", "dev", "--port", str(port), "--data-dir",
             str(data / "data")], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc, log)
        yield DevServer(base, token, log)
    finally:
        stop(proc)


PARTNERS = {"p-northwind": ("Northwind Systems", "gold"), "p-contoso": ("Contoso Partners",
                                                                       "silver")}


@pytest.fixture(scope="session")
def keys(dev_server: DevServer) -> dict[str, str]:
    """A key per role: `partner` (p-northwind, gold), `partner2` (p-contoso, silver), `rep`
    (rep-ava), `owner` (cm-1, level 1 of the default policy's escalation), `owner2` (dir-1,
    level 2), `channel_manager`, `integration`, and the `admin` token."""
    with dev_server.api() as api:
        for partner_id, (name, tier) in PARTNERS.items():
            answer = api.put(f"/v1/partners/{partner_id}", json={
                "name": name, "tier": tier, "type": "reseller", "status": "active"})
            assert answer.status_code in (200, 201), answer.text
    return {
        "admin": dev_server.admin_token,
        "partner": dev_server.mint("partner", "p-northwind"),
        "partner2": dev_server.mint("partner", "p-contoso"),
        "rep": dev_server.mint("rep", "rep-ava"),
        "owner": dev_server.mint("owner", "cm-1"),
        "owner2": dev_server.mint("owner", "dir-1"),
        "channel_manager": dev_server.mint("channel_manager", None),
        "integration": dev_server.mint("integration", None),
    }


@pytest.fixture(scope="session")
def driver() -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", f"--window-size={WIDTH},{HEIGHT}", "--lang=en-US",
                     "--disable-extensions", "--no-first-run", "--hide-scrollbars"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The viewer is somewhere other than UTC, so the tests see times converted to it.
    service = Service(executable_path=CHROMEDRIVER, env={**os.environ, "TZ": VIEWER_TZ})
    chrome = webdriver.Chrome(service=service, options=options)
    chrome.set_page_load_timeout(30)
    # The viewport (what screenshots show) is exactly WIDTH x HEIGHT.
    chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    try:
        yield chrome
    finally:
        chrome.quit()


class Console:
    """The browser on the console, with the few moves every test makes."""

    def __init__(self, driver: webdriver.Chrome, server: DevServer) -> None:
        self.driver = driver
        self.server = server

    def go(self, path: str) -> None:
        self.driver.get(self.server.base + path)

    @property
    def path(self) -> str:
        url: str = self.driver.current_url
        return url.removeprefix(self.server.base)

    def find(self, css: str) -> WebElement:
        """The element now (an htmx swap or a page load may replace it later: read it
        with `text`/`wait_text`, act on it with `click`/`submit`, which find it again)."""
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def _settle(self, css: str, read: Any, timeout: float = 10) -> Any:
        """`read(element)` of the element `css` matches, found afresh on every try: an
        element replaced under us (htmx swapped its container, the page was reloaded)
        is looked up again instead of failing the test."""
        try:
            box: tuple[Any] = WebDriverWait(
                self.driver, timeout, ignored_exceptions=(
                    StaleElementReferenceException, NoSuchElementException)).until(
                lambda d: (read(d.find_element(By.CSS_SELECTOR, css)),))
        except TimeoutException:
            raise AssertionError(f"{css!r} never readable on {self.path}:\n"
                                 f"{self.driver.page_source[:2000]}") from None
        return box[0]

    def click(self, css: str) -> None:
        """Click `css`, finding it again if a swap replaced it meanwhile (no page load)."""
        self._settle(css, lambda e: e.click())

    def submit(self, css: str, timeout: float = 15) -> None:
        """Click `css` (a submit button or link) and wait until the browser has left the
        page it was on, so what the test waits for next is the new page's, never a
        same-id element of the old one (a second `#flash`, `#form-errors`, `#done`)."""
        # A mark on the current window object: a page load replaces it. (Waiting for the
        # old <html> to go stale trips a chromedriver error mid-navigation instead.)
        self.driver.execute_script("window.__consoleOldPage = true;")
        self.click(css)
        try:
            WebDriverWait(self.driver, timeout, ignored_exceptions=(WebDriverException,)).until(
                lambda d: d.execute_script(
                    "return window.__consoleOldPage === undefined"
                    " && document.readyState !== 'loading';"))
        except TimeoutException:
            raise AssertionError(f"clicking {css!r} never left {self.path}") from None

    def find_all(self, css: str) -> list[WebElement]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def wait_for(self, css: str, timeout: float = 10) -> WebElement:
        try:
            element: WebElement = WebDriverWait(
                self.driver, timeout,
                ignored_exceptions=(StaleElementReferenceException,)).until(
                expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css)))
        except TimeoutException:
            raise AssertionError(f"{css!r} never showed on {self.path}:\n"
                                 f"{self.find('body').text[:2000]}") from None
        return element

    def text(self, css: str = "main") -> str:
        """The text of `css` as it is now (found afresh if a swap replaced it)."""
        return str(self._settle(css, lambda e: e.text, timeout=5))

    def wait_text(self, css: str, timeout: float = 10) -> str:
        """The text of `css` once it is visible (an element swapped in the meantime is
        found again)."""
        self.wait_for(css, timeout)
        return self.text(css)

    def sign_in(self, token: str, *, here: bool = False) -> None:
        """Sign in with `token` (on the sign-in page already shown when `here`)."""
        if not here:
            self.go("/console/sign-in")
        field_ = self.wait_for("#api_key")
        field_.clear()
        field_.send_keys(token)
        self.click("form[action='/console/sign-in'] button[type=submit]")
        WebDriverWait(self.driver, 10).until(
            lambda d: "/console/sign-in" not in d.current_url or d.find_elements(
                By.CSS_SELECTOR, "#signin-error"))

    def sign_out(self) -> None:
        self.submit("#sign-out")
        self.wait_for("#api_key")

    def fill(self, values: dict[str, str]) -> None:
        """Type into the fields named by the keys (`name` attributes)."""
        for name, value in values.items():
            element = self.find(f"[name='{name}']")
            if element.tag_name == "select":
                element.find_element(By.CSS_SELECTOR, f"option[value='{value}']").click()
            else:
                element.clear()
                element.send_keys(value)

    def nav(self) -> list[str]:
        return [a.get_attribute("data-area") or "" for a in self.find_all("nav a[data-area]")]

    def browser_errors(self) -> list[str]:
        """Script errors and Content-Security-Policy violations logged since the last call."""
        return [entry["message"] for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE"]

    def screenshot(self, name: str) -> Path:
        """IMAGES/console-<name>.png (with `make screenshots`: the README's pictures)."""
        IMAGES.mkdir(parents=True, exist_ok=True)
        target = IMAGES / f"console-{name}.png"
        assert self.driver.save_screenshot(str(target)), target
        return target


@pytest.fixture
def console(driver: webdriver.Chrome, dev_server: DevServer) -> Console:
    """The shared browser, signed out."""
    driver.get(dev_server.base + "/console/sign-in")
    driver.delete_all_cookies()
    return Console(driver, dev_server)
