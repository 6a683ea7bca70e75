"""Pipeline and program metrics over a running system on both backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.integration.projections.system_support import Running, registration, running, submit


@pytest.fixture(scope="module", params=["embedded", "distributed"])
async def system(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    async with running(request.param, request, tmp_path_factory.mktemp("pipe")) as system:
        yield system


def fresh(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def money(amounts: list[dict[str, str]]) -> dict[str, str]:
    return {a["currency"]: a["value"] for a in amounts}


async def pipeline(system: Running, role: str, subject: str | None, **params: Any) -> Any:
    return await (await system.queries(role, subject)).get("/v1/pipeline", params=params)


async def test_pipeline_counts_and_amounts_by_every_grouping(system: Running) -> None:
    partner = fresh("p")
    await submit(system.admin, registration(partner, f"{fresh('a')}.com", amount="100.00",
                                            products=("analytics", "storage")))
    await submit(system.admin, registration(partner, f"{fresh('b')}.com", amount="50.25",
                                            motion="referral", products=("analytics",)))
    await submit(system.admin, registration(partner, f"{fresh('c')}.com", amount="70.00",
                                            currency="EUR", motion="co_sell",
                                            products=("compute",)))
    await system.settle()

    by_partner = (await pipeline(system, "channel_manager", "cm", group_by="partner",
                                 partner_id=partner)).json()
    [group] = by_partner["groups"]
    assert group["key"] == partner and group["count"] == 3
    assert money(group["amounts"]) == {"USD": "150.25", "EUR": "70.00"}
    assert group["sourced"]["count"] == 2
    assert money(group["sourced"]["amounts"]) == {"USD": "100.00", "EUR": "70.00"}
    assert group["influenced"]["count"] == 1
    assert money(group["influenced"]["amounts"]) == {"USD": "50.25"}
    assert by_partner["total"]["count"] == 3

    by_motion = (await pipeline(system, "channel_manager", "cm", group_by="motion",
                                partner_id=partner)).json()
    assert {g["key"]: g["count"] for g in by_motion["groups"]} == {
        "co_sell": 1, "referral": 1, "resell": 1}
    by_stage = (await pipeline(system, "channel_manager", "cm", group_by="stage",
                               partner_id=partner)).json()
    assert {g["key"]: g["count"] for g in by_stage["groups"]} == {"approved": 3}
    by_product = (await pipeline(system, "channel_manager", "cm", group_by="product",
                                 partner_id=partner)).json()
    assert {g["key"]: g["count"] for g in by_product["groups"]} == {
        "analytics": 2, "compute": 1, "storage": 1}
    assert by_product["total"]["count"] == 3  # a two-product deal is one deal in the total
    open_only = (await pipeline(system, "channel_manager", "cm", group_by="stage",
                                partner_id=partner, status=["won", "lost"])).json()
    assert open_only["groups"] == [] and open_only["total"]["count"] == 0


async def test_a_partner_sees_only_its_own_pipeline(system: Running) -> None:
    partner = fresh("p")
    await submit(system.admin, registration(partner, f"{fresh('own')}.com"))
    await submit(system.admin, registration(fresh("q"), f"{fresh('other')}.com"))
    await system.settle()
    mine = (await pipeline(system, "partner", partner, group_by="partner")).json()
    assert [g["key"] for g in mine["groups"]] == [partner]
    assert (await pipeline(system, "partner", partner, group_by="partner",
                           partner_id="p-1")).status_code == 403
    assert (await pipeline(system, "partner", partner, group_by="nonsense")).status_code == 422


async def test_program_metrics_over_a_window(system: Running) -> None:
    since = datetime.now(UTC).isoformat()
    winner, loser = fresh("p"), fresh("p")
    domain = f"{fresh('m')}.com"
    won = await submit(system.admin, registration(winner, domain, amount="300.00"))
    tied = await submit(system.admin, registration(loser, domain))
    assert tied["status"] == "in_review"
    lost = await submit(system.admin, registration(loser, f"{fresh('n')}.com"))
    for rid, outcome, amount in ((won["id"], "won", {"value": "280.00", "currency": "USD"}),
                                 (lost["id"], "lost", None)):
        body: dict[str, Any] = {"outcome": outcome}
        if amount:
            body["amount"] = amount
        closed = await system.admin.post(f"/v1/registrations/{rid}/close", json=body,
                                         headers={"Prefer": "wait=15"})
        assert closed.status_code in (200, 202), closed.text
    await system.settle()

    metrics = (await (await system.queries("channel_manager", "cm")).get(
        "/v1/metrics/program", params={"since": since})).json()
    regs = metrics["registrations"]
    assert (regs["submitted"], regs["decided"]) == (3, 3)
    assert regs["auto_approved"] == 2 and regs["collided"] == 1
    assert regs["auto_approval_rate"] == pytest.approx(2 / 3, abs=1e-3)
    latency = regs["decision_latency_seconds"]
    assert latency["count"] == 3 and 0 <= latency["p50"] <= latency["p95"] <= latency["p99"] < 30
    assert metrics["disputes"]["opened"] == 1
    results = {p["partner_id"]: p for p in metrics["partners"]}
    assert (results[winner]["won"], results[winner]["win_rate"]) == (1, 1.0)
    assert money(results[winner]["sourced_won"]) == {"USD": "280.00"}
    assert (results[loser]["lost"], results[loser]["win_rate"]) == (1, 0.0)
    empty = (await (await system.queries("channel_manager", "cm")).get(
        "/v1/metrics/program", params={"since": "2001-01-01T00:00:00Z",
                                       "until": "2001-01-02T00:00:00Z"})).json()
    assert empty["registrations"]["submitted"] == 0
    assert empty["registrations"]["decision_latency_seconds"]["p50"] is None


async def test_program_metrics_are_for_program_roles_only(system: Running) -> None:
    for role, subject, status in (("partner", "p-1", 403), ("rep", "rep-1", 403),
                                  ("owner", "cm-1", 200), ("integration", None, 200)):
        response = await (await system.queries(role, subject)).get("/v1/metrics/program")
        assert response.status_code == status, role


async def test_program_series_count_per_bucket_on_both_backends(system: Running) -> None:
    """The bucket expressions and per-bucket quantiles are dialect-specific SQL: the same
    registrations give the same series on SQLite and PostgreSQL."""
    leader = await system.queries("channel_manager", "cm")
    today = datetime.now(UTC).date().isoformat()

    async def series(bucket: str) -> dict[str, Any]:
        response = await leader.get("/v1/program/metrics", params={
            "from": today, "to": today, "bucket": bucket})
        assert response.status_code == 200, response.text
        return {s["name"]: s for s in response.json()["series"]}

    before = {bucket: await series(bucket) for bucket in ("day", "week")}
    first, second = fresh("p"), fresh("p")
    domain = f"{fresh('s')}.com"
    won = await submit(system.admin, registration(first, domain, amount="300.00",
                                                  products=("analytics", "storage")))
    await submit(system.admin, registration(second, domain, amount="10.00"))
    await submit(system.admin, registration(second, f"{fresh('t')}.com", amount="20.50",
                                            currency="EUR", motion="referral"))
    closed = await system.admin.post(f"/v1/registrations/{won['id']}/close",
                                     json={"outcome": "won"}, headers={"Prefer": "wait=15"})
    assert closed.status_code in (200, 202), closed.text
    await system.settle()
    for bucket in ("day", "week"):
        after = await series(bucket)
        [row], [old] = after["decisions"]["rows"][-1:], before[bucket]["decisions"]["rows"][-1:]
        assert row["bucket"] <= today
        assert (row["submitted"] - old["submitted"], row["decided"] - old["decided"],
                row["collided"] - old["collided"]) == (3, 3, 1)
        assert row["p50_seconds"] is not None and row["p90_seconds"] >= row["p50_seconds"]
        assert sum(r["registrations"] for r in after["decision_time"]["rows"]) == (
            after["decision_time"]["summary"]["count"])
        mine = {(r["partner"], r["currency"]): r for r in after["pipeline_by_partner"]["rows"]
                if r["partner"] in (first, second)}
        assert (mine[(first, "USD")]["sourced_count"],
                mine[(first, "USD")]["sourced_amount"]) == (1, "300.00")
        assert (mine[(second, "EUR")]["influenced_count"],
                mine[(second, "EUR")]["influenced_amount"]) == (1, "20.50")
        products = {r["product"] for r in after["pipeline_by_product"]["rows"]}
        assert {"analytics", "storage"} <= products
        rates = {r["partner"]: r for r in after["win_rates"]["rows"]}
        assert (rates[first]["won"], rates[first]["win_rate"]) == (1, 1.0)
        assert after["disputes"]["rows"][-1]["opened"] >= 1
