"""The escalation owner's console in a real browser: the queue, a dispute side by side,
resolving it so that each partner sees its own outcome and nothing of the other, bulk
acknowledge, and a queue that shows new disputes without a reload."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser.conftest import Console, DevServer
from tests.browser.ops_support import OWNER, collide, dispute, ladder, policy, until


@pytest.fixture(scope="module", autouse=True)
def escalation(dev_server: DevServer, keys: dict[str, str]) -> Iterator[None]:
    with ladder(dev_server):
        yield


def test_the_owner_resolves_a_collision_and_each_partner_sees_only_its_outcome(
        console: Console, keys: dict[str, str], dev_server: DevServer) -> None:
    contoso, northwind, dispute_id = collide(dev_server, keys)
    console.sign_in(keys["owner"])
    assert console.path == "/console/owner/"
    row = console.wait_text(f"#queue-table tr[data-id='{dispute_id}']")
    assert "L1" in row and "left" in row
    # The queue polls (an htmx swap): the link is found again if it was replaced.
    console.submit(f"#queue-table tr[data-id='{dispute_id}'] a.account-link")

    console.wait_for("#parties")
    sides = {p.get_attribute("data-id"): p.text for p in console.find_all("#parties .party")}
    assert set(sides) == {contoso["id"], northwind["id"]}
    assert "Northwind Systems" in sides[northwind["id"]]
    assert "gold" in sides[northwind["id"]].lower()
    assert "Contoso Partners" in sides[contoso["id"]] and "silver" in sides[contoso["id"]].lower()
    assert "analytics, crm" in sides[northwind["id"]]
    assert "USD 120000.00" in sides[northwind["id"]] and "USD 84000.00" in sides[contoso["id"]]
    # The rule that fired and the match evidence with its score.
    assert "tier" in sides[northwind["id"]] and contoso["id"] in sides[northwind["id"]]
    assert "1.00" in sides[northwind["id"]]
    assert "policy v" in sides[northwind["id"]]
    assert "working time" in console.text(".dispute-facts")
    assert console.find_all("#timeline li")
    console.screenshot("dispute")

    console.click("input[name=outcome][value=award]")
    console.click(f"input[name=winner][value='{northwind['id']}']")
    console.fill({"note": "INTERNAL-ONLY: Contoso never showed a meeting.",
                  "partner_note": "Awarded on the earlier documented introduction."})
    console.submit("#resolve")
    assert console.wait_text("#outcome") == "award"
    assert "resolved" in console.text("#dispute-status")
    settled = dispute(dev_server, dispute_id)
    assert settled["status"] == "resolved"
    assert settled["resolution"]["registration_id"] == northwind["id"]
    console.sign_out()

    # Each partner sees its own outcome in its console, and nothing of the other.
    for key, mine, theirs, status, rival in (
            ("partner", northwind, contoso, "approved", ("p-contoso", "Contoso Partners")),
            ("partner2", contoso, northwind, "rejected", ("p-northwind",
                                                          "Northwind Systems"))):
        console.sign_in(keys[key])
        console.go("/console/partner/")
        row = console.wait_for(f"tr[data-id='{mine['id']}']")
        assert status in row.text.replace("_", " ")
        source = console.driver.page_source
        for secret in (*rival, theirs["id"], "INTERNAL-ONLY", OWNER):
            assert secret not in source, (key, secret)
        console.sign_out()


def test_bulk_acknowledge_acknowledges_every_selected_dispute(
        console: Console, keys: dict[str, str], dev_server: DevServer) -> None:
    picked = [collide(dev_server, keys)[2] for _ in range(2)]
    left_alone = collide(dev_server, keys)[2]
    console.sign_in(keys["owner"])
    console.go("/console/owner/?ack=no")
    for dispute_id in picked:
        console.wait_for(f"#pick-{dispute_id}")
        console.click(f"#pick-{dispute_id}")
    console.submit("#bulk-acknowledge")
    assert "Acknowledged 2 dispute(s)." in console.wait_text("#flash")
    for dispute_id in picked:
        assert dispute(dev_server, dispute_id)["acknowledged_at"] is not None
    assert dispute(dev_server, left_alone)["acknowledged_at"] is None
    # Acknowledged ones leave the "not yet" view; the other stays.
    console.go("/console/owner/?ack=no")
    console.wait_for(f"tr[data-id='{left_alone}']")
    assert not console.find_all(f"tr[data-id='{picked[0]}']")
    console.sign_out()


def test_the_queue_shows_a_new_dispute_and_an_overdue_one_without_a_reload(
        console: Console, keys: dict[str, str], dev_server: DevServer) -> None:
    ticked = collide(dev_server, keys)[2]
    console.sign_in(keys["owner"])
    console.wait_for(f"#pick-{ticked}")
    console.click(f"#pick-{ticked}")
    console.driver.execute_script("window.__notReloaded = 'still here';")

    arrived = collide(dev_server, keys)[2]
    # One level of three seconds, kept open past it: due in the past, still with the owner.
    with policy(dev_server, {"escalation": {"levels": [{"owner_id": OWNER, "sla": "PT3S"}],
                                            "calendar": None, "deadline_unit": None}}):
        late = collide(dev_server, keys)[2]
    until(lambda: dispute(dev_server, late)["breached"], timeout=20)

    WebDriverWait(console.driver, 20).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-id='{arrived}']")
        and d.find_elements(By.CSS_SELECTOR, f"tr.overdue[data-id='{late}']"))
    assert console.driver.execute_script("return window.__notReloaded") == "still here"
    assert console.find(f"#pick-{ticked}").is_selected(), "a refresh dropped the ticked box"
    overdue = console.find(f"tr[data-id='{late}'] .countdown")
    assert overdue.text.startswith("overdue by")
    assert "overdue" in (overdue.get_attribute("class") or "")
    # Red: the overdue style (the palette's `--bad`), not the ink of a countdown on time.
    color = "return getComputedStyle(arguments[0]).color"
    on_time = console.find(f"tr[data-id='{arrived}'] .countdown")
    bad = console.driver.execute_script(
        "return getComputedStyle(document.documentElement).getPropertyValue('--bad')")
    red = console.driver.execute_script(color, overdue)
    assert red != console.driver.execute_script(color, on_time)
    assert bad.strip().lower() == "#{:02x}{:02x}{:02x}".format(
        *map(int, red.removeprefix("rgb(").removesuffix(")").split(",")))
    # Soonest due first: the overdue one leads.
    ids = [r.get_attribute("data-id") for r in console.find_all("#queue-table tbody tr")]
    assert ids[0] == late
    # The countdown ticks in the browser.
    before = overdue.text
    WebDriverWait(console.driver, 5).until(
        lambda d: d.find_element(By.CSS_SELECTOR,
                                 f"tr[data-id='{late}'] .countdown").text != before)
    console.screenshot("owner-queue")
    console.sign_out()
