"""The channel manager's console in a real browser: registration search and a
registration's timeline, the ownership look-up (now, as of a date, by domain, name +
country or CRM id), the partner and owner directories (an admin edits them, redelivers a
notification) and the policy's versions with a diff."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.conftest import Console, DevServer
from tests.browser.ops_support import LEVEL2, collide, ladder, policy


def look_up(console: Console) -> str:
    """Submits the look-up form and reads the new page's answer (not the old one's)."""
    console.submit("#look-up")
    return console.wait_text("#ownership-answer")


@pytest.fixture(scope="module")
def settled(dev_server: DevServer, keys: dict[str, str]) -> Iterator[dict[str, Any]]:
    """A collision the owner settled for Northwind: (contoso, northwind, dispute)."""
    with ladder(dev_server):
        contoso, northwind, dispute_id = collide(dev_server, keys)
        with dev_server.api(keys["owner"]) as owner:
            resolved = owner.post(f"/v1/disputes/{dispute_id}/resolve",
                                  headers={"Prefer": "wait=10"},
                                  json={"outcome": "award", "registration_id": northwind["id"],
                                        "note": "First meeting documented."})
        assert resolved.status_code in (200, 201, 202), resolved.text
        yield {"contoso": contoso, "northwind": northwind, "dispute": dispute_id}


def test_search_finds_registrations_and_shows_a_timeline_with_every_decision(
        console: Console, keys: dict[str, str], settled: dict[str, Any]) -> None:
    northwind, contoso = settled["northwind"], settled["contoso"]
    name = northwind["account"]["name"]
    console.sign_in(keys["channel_manager"])
    assert console.path == "/console/manager/"
    console.fill({"account": name.split()[0].lower(), "partner_id": "p-northwind",
                  "product": "CRM"})
    console.submit("#search")
    console.wait_for(f"#results tr[data-id='{northwind['id']}']")
    shown = [r.get_attribute("data-id") for r in console.find_all("#results tbody tr")]
    assert contoso["id"] not in shown    # another partner, and without the crm product
    # The browser named its timezone, so the search's dates are days in New York.
    assert "tz=America%2FNew_York" in console.path, console.path
    console.screenshot("manager-search")

    today = datetime.now(UTC).date()
    account = name.split()[0]
    console.go(f"/console/manager/?account={account}&submitted_from={today.isoformat()}")
    assert {northwind["id"], contoso["id"]} <= {
        r.get_attribute("data-id") for r in console.find_all("#results tbody tr")}
    console.go(f"/console/manager/?account={account}&submitted_to="
               f"{(today - timedelta(days=1)).isoformat()}")
    assert console.wait_for("#no-results")

    console.go(f"/console/manager/?account={account}&partner_id=p-northwind")
    console.submit(f"#results tr[data-id='{northwind['id']}'] a")
    console.wait_for("#timeline")
    decided = [li for li in console.find_all("#timeline li")
               if li.get_attribute("data-type") == "dealreg.registration.decided.v1"]
    assert len(decided) >= 2, "the first decision and the resolution"
    texts = " ".join(li.text for li in decided)
    assert "tier" in texts and "dispute_resolution" in texts and "settled as award" in texts
    assert "First meeting documented." in console.text()   # the internal note, for vendors
    console.sign_out()


def test_ownership_by_domain_name_and_crm_id_now_and_as_of_a_date(
        console: Console, keys: dict[str, str], settled: dict[str, Any]) -> None:
    northwind = settled["northwind"]
    facts = northwind["account"]
    console.sign_in(keys["channel_manager"])
    console.go("/console/manager/ownership")
    console.click("input[name=by][value=domain]")
    console.fill({"domain": f"https://www.{facts['domain']}/pricing"})
    answer = look_up(console)
    assert "Northwind Systems" in answer and northwind["id"] in answer
    assert "Contoso" not in console.text("#owners")   # the award took it away
    console.driver.execute_script(
        "window.scrollTo(0, arguments[0].getBoundingClientRect().top + window.scrollY - 330)",
        console.find("#ownership-answer"))
    console.screenshot("ownership")

    console.click("input[name=by][value=name]")
    assert not console.find("#domain").is_displayed()   # only the chosen key's fields
    console.fill({"name": facts["name"], "country": "US"})
    assert "Matched by name" in look_up(console)
    assert "Northwind Systems" in console.text("#owners")

    console.click("input[name=by][value=crm_account_id]")
    console.fill({"crm_account_id": facts["crm_account_id"]})
    assert "Matched by crm account id" in look_up(console)
    assert "Northwind Systems" in console.text("#owners")

    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    console.go(f"/console/manager/ownership?by=domain&domain={facts['domain']}"
               f"&as_of={yesterday}")
    assert "as of" in console.wait_text("#ownership-answer")
    assert console.find("#no-owner")
    console.sign_out()


def test_an_admin_edits_the_directories_and_redelivers_a_notification(
        console: Console, keys: dict[str, str], dev_server: DevServer,
        settled: dict[str, Any]) -> None:
    partner_id = f"p-fabrikam-{uuid.uuid4().hex[:4]}"
    console.sign_in(keys["admin"])
    console.go("/console/manager/partners")
    console.fill({"id": partner_id, "name": "Fabrikam Resellers", "type": "si",
                  "tier": "silver", "status": "onboarding"})
    console.submit("#create-partner")
    assert console.wait_text("#flash") == "Created."
    assert console.path.startswith(f"/console/manager/partners/{partner_id}")
    console.fill({"tier": "platinum", "status": "active", "region": "EMEA"})
    console.submit("#save-partner")
    assert console.wait_text("#flash") == "Saved."
    assert console.text("#partner-tier").lower() == "platinum"
    with dev_server.api() as api:
        stored = api.get(f"/v1/partners/{partner_id}").json()
    assert (stored["tier"], stored["status"], stored["region"]) == ("platinum", "active", "EMEA")
    # A refused edit shows the API's reason next to the field.
    console.fill({"webhook_url": "ftp://hooks.fabrikam.example"})
    console.submit("#save-partner")
    assert "webhook_url" in console.wait_text("#problem")
    assert console.find("#p-webhook").get_attribute("aria-invalid") == "true"

    console.go(f"/console/manager/owners/{LEVEL2}")
    console.fill({"email": "rio@vendor.example"})
    console.submit("#save-owner")
    assert console.wait_text("#flash") == "Saved."
    assert "rio@vendor.example" in console.text()

    # Northwind has no webhook: its dispute.resolved delivery is logged as disabled and
    # can be sent again (after a URL is set, say).
    console.go("/console/manager/partners/p-northwind")
    assert "dispute.resolved" in console.wait_text("#deliveries tbody tr")
    console.submit("#deliveries tbody tr button.redeliver")
    assert console.wait_text("#flash") == "Queued for redelivery."

    console.go("/console/manager/partners")
    console.wait_for(f"#partners tr[data-id='{partner_id}']")
    console.screenshot("directory")
    console.sign_out()

    # A channel manager reads the directory but is offered no edit (the API's rule).
    console.sign_in(keys["channel_manager"])
    console.go(f"/console/manager/partners/{partner_id}")
    assert "Fabrikam Resellers" in console.wait_text("h1")
    assert not console.find_all("#edit-partner") and not console.find_all("#deliveries")
    console.sign_out()


def test_the_policy_page_shows_versions_and_the_diff_between_two(
        console: Console, keys: dict[str, str], dev_server: DevServer,
        settled: dict[str, Any]) -> None:
    change = {"tie_window": "PT6H", "protection_period": "P120D",
              "match": {"name_threshold": 0.86}}
    with policy(dev_server, change) as published:
        version = published["version"]
        console.sign_in(keys["channel_manager"])
        console.go("/console/manager/policy")
        assert f"version {version}" in console.wait_text("#policy-current h2")
        console.submit(f"#policy-versions tr[data-version='{version}'] a")
        console.wait_for("#diff")
        rows = {r.get_attribute("data-path"): r.text for r in console.find_all("#diff tbody tr")}
        assert set(rows) == {"tie_window", "protection_period", "match.name_threshold"}
        assert "PT6H" in rows["tie_window"] and "0.86" in rows["match.name_threshold"]
        assert "P120D" in rows["protection_period"] and "P90D" in rows["protection_period"]
        console.driver.execute_script(
            "document.getElementById('policy-diff').scrollIntoView()")
        console.screenshot("policy-diff")
        # Two identical versions: nothing changed.
        console.go(f"/console/manager/policy?from={version}&to={version}")
        assert console.wait_for("#no-changes")
        console.sign_out()
