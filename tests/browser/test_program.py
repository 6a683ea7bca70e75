"""The program leader's dashboard in a real browser, after a realistic workload.

A generated workload (tests/support/companies.py) is registered through the API of the
running `dealreg dev`: real company look-alikes, true collisions inside the tie window
(disputes), under a policy with seconds-long SLAs so disputes breach both levels while the
test waits; some disputes are resolved and some deals closed won and lost. Then a channel
manager opens the dashboard: every chart is drawn with the API's numbers (the SVG marks'
values are compared with `GET /v1/program/metrics`), each CSV link downloads the same
numbers, a bad range is explained, and a partner is refused.
"""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Console, DevServer
from tests.support.companies import generate

SEED = 2026
REGISTRATIONS = 36
SERIES = ("decision_time", "decisions", "disputes", "sla_breaches", "pipeline_by_partner",
          "pipeline_by_product", "win_rates")


def _ok(answer: httpx.Response) -> Any:
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


@pytest.fixture(scope="module")
def workload(dev_server: DevServer, keys: dict[str, str]) -> Iterator[dict[str, Any]]:
    rng = random.Random(SEED)
    plan = generate(SEED, REGISTRATIONS, collision_share=0.3, partners=6)
    with dev_server.api() as admin:
        before = _ok(admin.get("/v1/policy"))
        fast = {"escalation": {"levels": [{"owner_id": level["owner_id"], "sla": "PT2S"}
                                          for level in before["escalation"]["levels"]],
                               "reminder_before": 0.5, "deadline_unit": None}}
        _ok(admin.put("/v1/policy", json=fast))
        try:
            for partner, tier in plan.partners:
                _ok(admin.put(f"/v1/partners/{partner}", json={
                    "name": partner.upper(), "tier": tier, "type": "reseller",
                    "status": "active"}))
            ids = []
            for spec in plan.registrations:
                body = spec.request(motion=rng.choice(("resell", "resell", "co_sell",
                                                       "referral")))
                body["opportunity"]["amount"] = {
                    "value": f"{rng.randrange(2000, 60000)}.00",
                    "currency": rng.choice(("USD",) * 5 + ("EUR",))}
                ids.append(dev_server.register(keys["integration"], body)["id"])
            # Resolve one open dispute by hand; the others breach level 1 and 2.
            mine = set(ids)
            queue = [d for d in _ok(admin.get("/v1/disputes", params={
                "status": "open", "limit": 100}))["items"] if mine & set(d["registration_ids"])]
            assert queue, "the workload opened no dispute"
            _ok(admin.post(f"/v1/disputes/{queue[0]['id']}/resolve", headers={
                "Prefer": "wait=10"}, json={"outcome": "award", "note": "first in",
                                           "registration_id": queue[0]["registration_ids"][0]}))
            closed = 0
            for rid in ids:
                row = _ok(admin.get(f"/v1/registrations/{rid}"))
                if row["status"] != "approved" or row.get("dispute_id"):
                    continue
                answer = admin.post(f"/v1/registrations/{rid}/close", headers={
                    "Prefer": "wait=10"}, json={"outcome": "won" if closed % 3 else "lost"})
                assert answer.status_code in (200, 202, 409), answer.text
                closed += answer.status_code != 409
                if closed == 6:
                    break
            assert closed >= 3
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                metrics = _ok(admin.get("/v1/program/metrics"))
                breaches = {s["name"]: s for s in metrics["series"]}["sla_breaches"]
                # Every dispute of this workload settled (other tests' may stay open):
                # the numbers stay put from here.
                still_open = [d for d in _ok(admin.get(
                    "/v1/disputes", params={"status": "open", "limit": 100}))["items"]
                    if mine & set(d["registration_ids"])]
                if {r["level"] for r in breaches["rows"]} >= {1, 2} and not still_open:
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"not settled: breaches {breaches['summary']}, "
                                     f"{len(still_open)} open disputes of the workload")
        finally:
            _ok(admin.put("/v1/policy", json={"escalation": before["escalation"]}))
    yield {"registrations": ids}


def api_series(dev_server: DevServer, token: str) -> dict[str, dict[str, Any]]:
    with dev_server.api(token) as api:
        body = _ok(api.get("/v1/program/metrics"))
    return {s["name"]: s for s in body["series"]}


def marks(console: Console, chart: str) -> dict[tuple[str, str], float]:
    found = {}
    for mark in console.find_all(f"#chart-{chart} .point"):
        key = (mark.get_attribute("data-series") or "", mark.get_attribute("data-category")
               or "")
        found[key] = float(mark.get_attribute("data-value") or "nan")
    return found


def download(console: Console, href: str) -> tuple[int, str, str]:
    """Fetch a link with the browser's own session (cookies), as a click on it would."""
    result = console.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(async r => done("
        "[r.status, r.headers.get('content-type') || '', await r.text()]));", href)
    return int(result[0]), str(result[1]), str(result[2])


def test_the_dashboard_draws_every_series_with_the_api_numbers(
        console: Console, dev_server: DevServer, keys: dict[str, str],
        workload: dict[str, Any]) -> None:
    before = api_series(dev_server, keys["channel_manager"])
    console.sign_in(keys["channel_manager"])
    console.go("/console/program/")
    console.wait_for("#panel-decision_time svg.chart")
    truth = api_series(dev_server, keys["channel_manager"])
    assert before == truth

    histogram = marks(console, "decision-time")
    assert histogram == {("registrations", r["bin"]): float(r["registrations"])
                         for r in truth["decision_time"]["rows"]}
    assert sum(histogram.values()) >= REGISTRATIONS

    rates = marks(console, "decision-rates")
    for row in truth["decisions"]["rows"]:
        if row["decided"]:
            assert rates[("auto-approval rate", row["bucket"])] == pytest.approx(
                row["auto_approval_rate"] * 100)
            assert rates[("collision rate", row["bucket"])] == pytest.approx(
                row["collision_rate"] * 100)
    assert any(v > 0 for (name, _), v in rates.items() if name == "collision rate")

    disputes = marks(console, "disputes")
    for row in truth["disputes"]["rows"]:
        assert disputes[("opened", row["bucket"])] == row["opened"]
        assert disputes[("resolved", row["bucket"])] == row["resolved"]
    assert sum(v for (name, _), v in disputes.items() if name == "opened") > 0

    breaches = marks(console, "sla-breaches")
    assert breaches == {(f"level {r['level']}", r["bucket"]): float(r["breaches"])
                        for r in truth["sla_breaches"]["rows"]}
    assert {name for name, _ in breaches} == {"level 1", "level 2"}

    pipeline = marks(console, "pipeline-by-partner")
    # Drawn in the currency with the largest total (the caption says which).
    totals: dict[str, float] = {}
    for r in truth["pipeline_by_partner"]["rows"]:
        totals[r["currency"]] = totals.get(r["currency"], 0.0) + float(
            r["sourced_amount"]) + float(r["influenced_amount"])
    main = max(totals, key=lambda c: totals[c])
    assert f"amounts in {main}" in console.text("#panel-pipeline_by_partner .caption")
    drawn = {r["partner"]: r for r in truth["pipeline_by_partner"]["rows"]
             if r["currency"] == main}
    assert pipeline and {p for _, p in pipeline} == set(drawn)
    for (line, partner), value in pipeline.items():
        assert value == float(drawn[partner][f"{line}_amount"]), (line, partner)

    products = marks(console, "pipeline-by-product")
    assert {p for _, p in products} and all(v >= 0 for v in products.values())

    wins = marks(console, "win-rates")
    assert wins == {("win rate", r["partner"]): r["win_rate"] * 100
                    for r in truth["win_rates"]["rows"]}
    assert wins

    # Every chart says what it shows to a screen reader, and has its numbers as a table.
    for name in SERIES:
        panel = console.find(f"#panel-{name}")
        for svg in panel.find_elements("css selector", "svg.chart"):
            assert svg.get_attribute("role") == "img"
            assert svg.get_attribute("aria-labelledby")
        assert panel.find_elements("css selector", "details.data-table")
    # The README's pictures: the last two weeks, the top and the pipeline panels.
    today = datetime.now(UTC).date()
    console.go(f"/console/program/?from={today - timedelta(days=13)}&to={today}&bucket=day")
    console.wait_for("#panel-decision_time svg.chart")
    console.screenshot("dashboard")
    console.driver.execute_script(
        "document.getElementById('panel-pipeline_by_partner').scrollIntoView()")
    console.screenshot("dashboard-pipeline")


@pytest.mark.parametrize("series", SERIES)
def test_each_csv_link_downloads_the_charted_numbers(
        console: Console, dev_server: DevServer, keys: dict[str, str],
        workload: dict[str, Any], series: str) -> None:
    console.sign_in(keys["channel_manager"])
    console.go("/console/program/")
    link = console.wait_for(f"#panel-{series} a.download")
    href = link.get_attribute("href") or ""
    assert link.get_attribute("download") is not None
    status, content_type, text = download(console, href)
    assert status == 200 and content_type.startswith("text/csv"), text[:300]
    table = list(csv.reader(io.StringIO(text)))
    truth = api_series(dev_server, keys["channel_manager"])[series]
    assert table[0] == truth["columns"]
    assert table[1:] == [["" if row[c] is None else str(row[c]) for c in truth["columns"]]
                         for row in truth["rows"]]
    assert len(table) > 1
    # The page's own data table shows the same rows.
    cells = [[td.get_attribute("textContent").strip() for td in tr.find_elements(
        "css selector", "td")] for tr in console.find_all(
        f"table[data-series='{series}'] tbody tr")]
    assert cells == [["—" if row[c] is None else str(row[c]) for c in truth["columns"]]
                     for row in truth["rows"]]


def test_a_bad_range_is_explained_next_to_the_picker(console: Console,
                                                      keys: dict[str, str]) -> None:
    console.sign_in(keys["admin"])
    console.go("/console/program/?from=2026-02-01&to=2026-01-01")
    assert "before" in console.text("#to-error")
    assert console.find("#to").get_attribute("aria-invalid") == "true"
    assert not console.find_all("svg.chart")
    console.go("/console/program/?from=2026-01-01&to=2026-01-03&bucket=day")
    console.wait_for("#panel-decisions svg.chart")
    assert console.find("#from").get_attribute("value") == "2026-01-01"
    assert len(marks(console, "decision-rates")) == 0  # nothing then: zero rates undrawn
    assert "Nothing in this range" in console.find("#panel-win_rates").get_attribute(
        "textContent")


def test_a_partner_is_refused_the_dashboard_and_its_downloads(
        console: Console, keys: dict[str, str]) -> None:
    console.sign_in(keys["partner"])
    assert "program" not in console.nav()
    console.go("/console/program/")
    assert "Not for your role" in console.text("h1")
    assert not console.find_all("svg.chart")
    status, _, text = download(console, "/console/program/csv/win_rates")
    assert status == 403 and "win_rate" not in text
