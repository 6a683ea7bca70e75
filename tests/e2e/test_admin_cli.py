"""`dealreg admin` against a real `dealreg dev` process: the CLI is a client of the public
API, so every command here is checked by what the API then answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from dealreg.cli import app
from tests.e2e.test_registration_slice import registration
from tests.support.processes import free_port, stop

TOKEN = "admin-cli-token"


@pytest.fixture(scope="module")
def dev_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dealreg dev` with one delivery attempt per notification (a failure is dead)."""
    data = tmp_path_factory.mktemp("admin-dev")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env.update(DEALREG_ADMIN_TOKEN=TOKEN, DEALREG_NOTIFICATION_SCHEDULE_SECONDS="[0]")
    log = (data / "dev.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "dealreg", "dev", "--port", str(port),
                             "--data-dir", str(data / "d")], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (data / "dev.log").read_text()
            assert time.monotonic() < deadline, (data / "dev.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        stop(proc)
        log.close()


def admin(url: str, *args: str, token: str | None = TOKEN) -> Any:
    """Run `dealreg admin ... --json`: (exit code, parsed JSON or the output text)."""
    env = {"DEALREG_URL": url, "COLUMNS": "200"}
    if token is not None:
        env["DEALREG_ADMIN_TOKEN"] = token
    result = CliRunner().invoke(app, ["admin", *args], env=env)
    try:
        return result.exit_code, json.loads(result.stdout)
    except ValueError:
        return result.exit_code, result.output


def api(url: str, method: str, path: str, token: str = TOKEN,
        headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    return httpx.request(method, url + path, timeout=30, **kw,
                         headers={"Authorization": f"Bearer {token}", **(headers or {})})


def test_dev_creates_the_default_policys_escalation_owners(dev_url: str) -> None:
    code, versions = admin(dev_url, "policy", "versions", "--json")
    assert code == 0, versions
    assert versions[0]["escalation_owners"] == "cm-1, dir-1"
    for owner in ("cm-1", "dir-1"):
        code, shown = admin(dev_url, "owners", "show", owner, "--json")
        assert code == 0, shown
        assert shown["id"] == owner and shown["webhook_secret"].startswith("whsec_")


def test_owners_put_changes_only_the_fields_given(dev_url: str) -> None:
    code, created = admin(dev_url, "owners", "put", "cm-emea", "--name", "EMEA",
                          "--email", "emea@vendor.example", "--json")
    assert code == 0, created
    code, updated = admin(dev_url, "owners", "put", "cm-emea", "--email",
                          "emea2@vendor.example", "--json")
    assert code == 0, updated
    served = api(dev_url, "GET", "/v1/owners/cm-emea").json()
    assert served["name"] == "EMEA" and served["email"] == "emea2@vendor.example"
    assert served["webhook_secret"] == created["webhook_secret"]


def test_partners_put_creates_then_updates_keeping_the_other_fields(dev_url: str) -> None:
    code, out = admin(dev_url, "partners", "put", "p-cli", "--name", "CLI Reseller",
                      "--type", "reseller", "--tier", "gold", "--region", "EMEA", "--json")
    assert code == 0, out
    code, out = admin(dev_url, "partners", "put", "p-cli", "--tier", "silver", "--json")
    assert code == 0, out
    served = api(dev_url, "GET", "/v1/partners/p-cli").json()
    assert (served["name"], served["tier"], served["region"]) == \
        ("CLI Reseller", "silver", "EMEA")
    code, out = admin(dev_url, "partners", "put", "p-bad", "--name", "x", "--type", "nope",
                      "--tier", "gold")
    assert code == 1 and "422" in out and "type" in out, out


def test_keys_mint_gives_a_working_token_and_revoke_ends_it(dev_url: str) -> None:
    code, key = admin(dev_url, "keys", "mint", "--role", "partner", "--subject", "p-1",
                      "--name", "portal", "--json")
    assert code == 0, key
    assert api(dev_url, "GET", "/v1/policy", token=key["token"]).status_code == 200
    code, out = admin(dev_url, "keys", "revoke", key["id"], "--json")
    assert code == 0, out
    code, out = admin(dev_url, "keys", "revoke", key["id"])
    assert code == 1 and "404" in out, out


def test_policy_publish_from_a_file_shows_the_problem_or_the_new_version(
        dev_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"escalation": {"levels": [{"owner_id": "ghost-9",
                                                          "sla": "P2D"}]}}))
    code, out = admin(dev_url, "policy", "publish", str(bad))
    assert code == 1, out
    assert "422" in out and "ghost-9" in out and "escalation.levels.0.owner_id" in out, out
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"escalation": {"levels": [
        {"owner_id": "cm-1", "sla": "P2D"}, {"owner_id": "dir-1", "sla": "P5D"}]}}))
    code, published = admin(dev_url, "policy", "publish", str(good), "--json")
    assert code == 0, published
    assert api(dev_url, "GET", "/v1/policy").json()["version"] == published["version"] > 1
    code, versions = admin(dev_url, "policy", "versions", "--json")
    assert [v["version"] for v in versions] == list(range(1, published["version"] + 1))
    assert versions[-1]["in_force"] is True and versions[-1]["published_by"] == "admin"


def test_dead_letters_are_listed_and_redelivered(dev_url: str) -> None:
    closed = free_port()  # nothing listens: the one delivery attempt fails, then it is dead
    code, out = admin(dev_url, "owners", "put", "cm-1", "--webhook-url",
                      f"http://127.0.0.1:{closed}/hook", "--json")
    assert code == 0, out
    body = registration("p-dl1", domain="https://www.deadletters-test.com")
    for partner in ("p-dl1", "p-dl2"):  # a tie: a dispute escalated to cm-1
        answer = api(dev_url, "POST", "/v1/registrations",
                     json={**body, "partner_id": partner}, headers={"Prefer": "wait=10"})
        assert answer.status_code in (201, 202), answer.text
    deadline = time.monotonic() + 30
    dead: list[dict[str, Any]] = []
    while not dead and time.monotonic() < deadline:
        code, dead = admin(dev_url, "dead-letters", "list", "--owner", "cm-1", "--json")
        assert code == 0, dead
        time.sleep(0.3)
    assert dead and all(d["status"] == "dead" for d in dead), dead
    code, everyone = admin(dev_url, "dead-letters", "list", "--json")  # every recipient
    assert code == 0 and {d["id"] for d in dead} <= {d["id"] for d in everyone}, everyone
    code, out = admin(dev_url, "dead-letters", "redeliver", dead[0]["id"], "--json")
    assert code == 0 and out == [{"id": dead[0]["id"], "status": "pending"}], out
    code, out = admin(dev_url, "dead-letters", "redeliver", "dlv_nope")
    assert code == 1 and "404" in out, out


def test_a_wrong_token_or_an_unreachable_server_is_one_clear_error(dev_url: str) -> None:
    code, out = admin(dev_url, "owners", "show", "cm-1", token="wrong")
    assert code == 1 and "401" in out and "DEALREG_ADMIN_TOKEN" in out, out
    code, out = admin(dev_url, "owners", "show", "cm-1", token=None)
    assert code == 1 and "no admin token" in out, out
    code, out = admin(f"http://127.0.0.1:{free_port()}", "owners", "show", "cm-1")
    assert code == 1 and "cannot reach dealreg" in out and "Traceback" not in out, out


def test_lists_page_through_every_partner_owner_and_key_without_secrets(dev_url: str) -> None:
    for i in range(7):
        code, out = admin(dev_url, "partners", "put", f"p-list-{i}", "--name", f"L{i}",
                          "--type", "reseller", "--tier", "gold", "--json")
        assert code == 0, out
    code, minted = admin(dev_url, "keys", "mint", "--role", "rep", "--subject", "rep-list",
                         "--name", "listed", "--json")
    assert code == 0, minted
    # A page size of 2: the CLI follows next_cursor to the end.
    code, partners = admin(dev_url, "partners", "list", "--limit", "2", "--json")
    assert code == 0, partners
    ids = [p["id"] for p in partners]
    assert {f"p-list-{i}" for i in range(7)} <= set(ids) and len(ids) == len(set(ids))
    assert all(not p.get("webhook_secret") for p in partners)
    code, owners = admin(dev_url, "owners", "list", "--limit", "1", "--json")
    assert code == 0 and {"cm-1", "dir-1"} <= {o["id"] for o in owners}, owners
    assert all("webhook_secret" not in o for o in owners)
    code, keys = admin(dev_url, "keys", "list", "--limit", "1", "--json")
    assert code == 0, keys
    listed = next(k for k in keys if k["id"] == minted["id"])
    assert "token" not in listed and listed["subject_id"] == "rep-list"
    code, out = admin(dev_url, "keys", "revoke", minted["id"], "--json")
    assert code == 0, out
    code, keys = admin(dev_url, "keys", "list", "--json")
    assert minted["id"] not in {k["id"] for k in keys}
    code, keys = admin(dev_url, "keys", "list", "--include-revoked", "--json")
    assert next(k for k in keys if k["id"] == minted["id"])["revoked_at"] is not None
    code, table = admin(dev_url, "partners", "list")
    assert code == 0 and "p-list-6" in table and "reseller" in table, table
