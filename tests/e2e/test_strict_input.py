"""Strict input (issue 13 item 5), through HTTP: every garbage input observed is a 422
problem naming the field, and nothing reaches the log. Control and format characters in
text, non-canonical amounts, `as_of` outside sane bounds, tampered cursors, positions
beyond the end of the log."""

from __future__ import annotations

import asyncio
import copy
import sqlite3
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from shared.settings import Settings
from tests.integration.registration.harness import Harness, log_size, registration, serve


@pytest.fixture(scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("strict"),
                        admin_token="test-admin-token", topic_partitions=2)
    async with serve(settings) as running:
        yield running


async def _refused(harness: Harness, method: str, path: str, body: Any, field: str,
                   topic: str | None = None) -> dict[str, Any]:
    topic = topic or harness.runtime.topics.intake
    before = await log_size(harness, topic)
    response = await harness.client.request(method, path, json=body)
    assert response.status_code == 422, (body, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert await log_size(harness, topic) == before, "something was appended"
    return problem


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[last] = value
    return out


CONTROL_AND_FORMAT = [
    "\u0085", "\x00", "\x1b", "\x7f", "\u009b", "\u200b", "\u200e", "\u200f", "\u202a",
    "\u202e", "\u2066", "\u2069", "\u2028", "\ufeff", "\u00ad", "\n", "\t",
    "\u3164", "\uffa0", "\u115f", "\u1160", "\u2800"]  # invisible letters (session 29)


@pytest.mark.parametrize("char", CONTROL_AND_FORMAT, ids=[f"U+{ord(c):04X}" for c in
                                                          CONTROL_AND_FORMAT])
async def test_control_and_format_characters_in_text_fields_are_422_and_nothing_appended(
        harness: Harness, char: str) -> None:
    body = registration("p-1", "ctl.com")
    for field in ("account.name", "opportunity.title", "external_ref"):
        await _refused(harness, "POST", "/v1/registrations",
                       _with(body, field, f"Acme{char}Corp"), field)
    await _refused(harness, "POST", "/v1/registrations",
                   _with(body, "opportunity.products", ["ok", f"bad{char}x"]),
                   "opportunity.products.1")
    reference = harness.runtime.topics.reference
    await _refused(harness, "PUT", "/v1/partners/p-ctl", {
        "name": f"Acme{char}Reseller", "type": "reseller", "tier": "gold"}, "name", reference)
    await _refused(harness, "PUT", "/v1/owners/cm-ctl", {"name": f"CM{char}1"}, "name",
                   reference)


async def test_a_dispute_reason_may_span_lines_but_not_carry_format_characters(
        harness: Harness) -> None:
    first = await harness.client.post("/v1/registrations",
                                      json=registration("p-1", "lines.com"),
                                      headers={"Prefer": "wait=10"})
    rival = await harness.client.post("/v1/registrations",
                                      json=registration("p-2", "lines.com"),
                                      headers={"Prefer": "wait=10"})
    assert first.status_code == 201 and rival.status_code == 201, rival.text
    target = f"/v1/registrations/{first.json()['id']}/disputes"
    partner = await harness.as_("partner", "p-1")
    for reason in ("We met them.\u202eIt was us", "Intro\u0085made"):
        before = await log_size(harness, harness.runtime.topics.intake)
        refused = await harness.client.post(target, json={"reason": reason},
                                            headers=partner)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "reason"
        assert await log_size(harness, harness.runtime.topics.intake) == before
    accepted = await harness.client.post(
        target, json={"reason": "We introduced them:\n- March summit\n\t- demo"},
        headers=partner)
    assert accepted.status_code in (201, 202, 409), accepted.text
    assert accepted.status_code != 422


@pytest.mark.parametrize("value", ["1_000", " 5", "5 ", "+5", "1e3", "1E3", "NaN", "nan",
                                   "Infinity", "-Infinity", "0x10", "1,000", "007", ".5",
                                   "5.", "", True, None, [], {}])
async def test_amounts_are_only_canonical_decimals(harness: Harness, value: Any) -> None:
    await _refused(harness, "POST", "/v1/registrations",
                   _with(registration("p-1", "amounts.com"), "opportunity.amount.value",
                         value), "opportunity.amount.value")


@pytest.mark.parametrize(("value", "stored"), [("1000", "1000"), ("1000.50", "1000.50"),
                                               (1000, "1000"), (1000.5, "1000.5")])
async def test_canonical_amounts_and_json_numbers_are_accepted_as_given(
        harness: Harness, value: Any, stored: str) -> None:
    body = _with(registration("p-1", f"ok-{stored.replace('.', '-')}.com"),
                 "opportunity.amount.value", value)
    response = await harness.client.post("/v1/registrations", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["opportunity"]["amount"]["value"] == stored


@pytest.mark.parametrize("as_of", ["-1", "0", "1700000000", "1969-12-31T23:59:59Z",
                                   "1999-12-31T23:59:59Z", "2200-01-01T00:00:00Z",
                                   "9999-12-31T23:59:59Z", "2027-01-01T00:00:00", "yesterday"])
async def test_as_of_outside_sane_bounds_or_not_iso_is_422(harness: Harness,
                                                            as_of: str) -> None:
    response = await harness.client.get("/v1/ownership",
                                        params={"domain": "acme.com", "as_of": as_of})
    assert response.status_code == 422, (as_of, response.text)
    assert response.json()["errors"][0]["field"] == "as_of"


async def test_a_sane_as_of_is_answered(harness: Harness) -> None:
    for as_of in ("2000-01-01T00:00:00Z", "2027-02-01T00:00:00+02:00"):
        response = await harness.client.get("/v1/ownership",
                                            params={"domain": "acme.com", "as_of": as_of})
        assert response.status_code == 200, response.text


async def test_program_metrics_windows_are_sane_instants(harness: Harness) -> None:
    bad = await harness.client.get("/v1/metrics/program", params={"since": "-1"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "since"
    ok = await harness.client.get("/v1/metrics/program",
                                  params={"since": "2026-01-01T00:00:00Z"})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("path", ["/v1/registrations", "/v1/disputes"])
async def test_a_cursor_we_did_not_issue_is_422(harness: Harness, path: str) -> None:
    for n in range(3):
        await harness.client.post("/v1/registrations",
                                  json=registration("p-3", f"cursor-{n}.com"),
                                  headers={"Prefer": "wait=5"})
    page = await harness.client.get("/v1/registrations", params={"limit": 1})
    assert page.status_code == 200
    issued = page.json()["next_cursor"]
    assert issued
    assert (await harness.client.get("/v1/registrations",
                                     params={"limit": 1, "cursor": issued})).status_code == 200
    tampered = issued[:-2] + ("AA" if not issued.endswith("AA") else "BB")
    for cursor in ("AAAA", "AAAAAAAAAAAA", tampered, issued[:-1], "cmVnXzAx", "%%%", "-"):
        response = await harness.client.get(path, params={"cursor": cursor})
        assert response.status_code == 422, (cursor, response.text)
        assert response.json()["errors"][0]["field"] == "cursor"


async def test_a_position_beyond_the_end_is_422_while_a_reachable_one_waits(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("positions"),
                        admin_token="test-admin-token", topic_partitions=2)
    async with serve(settings) as running:
        await running.client.post("/v1/registrations", json=registration("p-1", "ryw.com"),
                                  headers={"Prefer": "wait=5"})
        # Hold the read model's write lock: the next command is on the log, not applied.
        lock = sqlite3.connect(settings.data_dir / "readmodel.sqlite3", timeout=5,
                               isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            posted = await running.client.post("/v1/registrations",
                                               json=registration("p-2", "ryw2.com"))
            written = posted.headers["x-log-position"]
            topic, partition, offset = written.split("/")
            started = asyncio.get_running_loop().time()
            waited = await running.client.get("/v1/registrations",
                                              params={"min_position": written},
                                              headers={"Prefer": "wait=0.4"})
            assert waited.status_code == 503, waited.text
            assert waited.headers["retry-after"] == "1"
            assert asyncio.get_running_loop().time() - started >= 0.35  # it waited
            for never in (f"{topic}/{partition}/999999999",
                          f"{topic}/{partition}/{int(offset) + 1}", f"{topic}/7/0"):
                started = asyncio.get_running_loop().time()
                refused = await running.client.get("/v1/registrations",
                                                   params={"min_position": never},
                                                   headers={"Prefer": "wait=3"})
                assert refused.status_code == 422, (never, refused.text)
                assert refused.json()["errors"][0]["field"] == "min_position"
                assert asyncio.get_running_loop().time() - started < 1.0  # no waiting
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        applied = await running.client.get("/v1/registrations",
                                           params={"min_position": written},
                                           headers={"Prefer": "wait=10"})
        assert applied.status_code == 200, applied.text


@pytest.mark.parametrize("field", ["protection_period", "tie_window", "incumbency_window"])
async def test_a_negative_duration_in_a_policy_is_422_and_nothing_is_published(
        harness: Harness, field: str) -> None:
    # Found by the policy fuzzer (tests/e2e/test_fuzz_inputs.py): a number is read as
    # seconds, a negative one was published and then answered 500.
    before = (await harness.client.get("/v1/policy")).json()["version"]
    await _refused(harness, "PUT", "/v1/policy", {field: -68_000_000}, field,
                   harness.runtime.topics.reference)
    assert (await harness.client.get("/v1/policy")).json()["version"] == before


@pytest.mark.parametrize(("event", "field"), [
    ({"id": "e-\u202e1"}, "id"),
    ({"source": "urn:crm\u0085"}, "source"),
    ({"data": {**registration("p-1", "ce.com"),
               "account": {"name": "Ce\u0085Corp", "domain": "ce.com", "country": "US"}}},
     "data.account.name"),
    ({"data": {**registration("p-1", "ce2.com"), "opportunity": {
        "title": "x", "amount": {"value": "1_000", "currency": "USD"}}}},
     "data.opportunity.amount.value"),
])
async def test_cloudevents_with_garbage_are_rejected_alone_and_append_nothing(
        harness: Harness, event: dict[str, Any], field: str) -> None:
    body = {"specversion": "1.0", "id": f"e-{uuid.uuid4()}", "source": "urn:crm",
            "type": "dealreg.registration.submitted.v1",
            "data": registration("p-1", "ce.com"), **event}
    intake = harness.runtime.topics.intake
    before = await log_size(harness, intake)
    response = await harness.client.post(
        "/v1/events", content=orjson.dumps(body),
        headers={"content-type": "application/cloudevents+json",
                 **await harness.as_("integration")})
    assert response.status_code == 202, response.text
    [result] = response.json()["results"]
    assert result["status"] == "rejected" and result["http_status"] in (400, 422), result
    assert field in [e["field"] for e in result["problem"]["errors"]], result
    assert await log_size(harness, intake) == before
