"""Disputes over a running system on both backends: the queue per escalation owner, who
may read a dispute and what a partner learns of it, resolution, and escalation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.projections.system_support import (
    Running,
    registration,
    restore_policy,
    running,
    submit,
)


@pytest.fixture(scope="module", params=["embedded", "distributed"])
async def system(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    async with running(request.param, request, tmp_path_factory.mktemp("dsp")) as system:
        yield system


def fresh(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def tie(system: Running, p1: str = "p-1", p2: str = "p-2"
              ) -> tuple[dict[str, Any], dict[str, Any], str]:
    domain = f"{fresh('tie')}.com"
    first = await submit(system.admin, registration(p1, domain))
    second = await submit(system.admin, registration(p2, domain))
    assert second["status"] == "in_review", second
    await system.settle()
    return first, second, second["dispute_id"]


async def get(system: Running, role: str, subject: str | None, path: str,
              **params: Any) -> Any:
    return await (await system.queries(role, subject)).get(path, params=params)


async def test_a_tie_lands_in_the_level_one_owners_queue(system: Running) -> None:
    first, second, dispute = await tie(system)
    queue = (await get(system, "owner", "cm-1", "/v1/disputes", status="open")).json()
    mine = next(d for d in queue["items"] if d["id"] == dispute)
    assert (mine["level"], mine["owner_id"], mine["status"]) == (1, "cm-1", "open")
    assert set(mine["registration_ids"]) == {first["id"], second["id"]}
    assert mine["due_at"] is not None and mine["reason"] == "tie"
    other_queue = (await get(system, "owner", "dir-1", "/v1/disputes")).json()
    assert dispute not in [d["id"] for d in other_queue["items"]]
    forbidden = await get(system, "owner", "dir-1", "/v1/disputes", owner_id="cm-1")
    assert forbidden.status_code == 403
    hidden = await get(system, "owner", "dir-1", f"/v1/disputes/{dispute}")
    assert hidden.status_code == 404
    # Acting on it does not reveal it either: the same 404 as reading.
    stranger = (await system.as_("owner", "dir-1"))[0]
    for action in ("acknowledge", "resolve"):
        acted = await stranger.post(f"/v1/disputes/{dispute}/{action}",
                                    json={"outcome": "reject_all"})
        assert acted.status_code == 404, acted.text
    vendor = (await get(system, "channel_manager", "cm", "/v1/disputes",
                        owner_id="cm-1", status="open")).json()
    assert dispute in [d["id"] for d in vendor["items"]]


async def test_a_partner_sees_its_own_disputes_with_rivals_hidden(system: Running) -> None:
    first, second, dispute = await tie(system, "p-1", "p-2")
    seen = (await get(system, "partner", "p-2", f"/v1/disputes/{dispute}")).json()
    assert seen["registration_ids"] == [second["id"]]  # rivals: neither ids nor a count
    assert first["id"] not in str(seen)
    listed = (await get(system, "partner", "p-2", "/v1/disputes")).json()["items"]
    assert dispute in [d["id"] for d in listed]
    outsider = await get(system, "partner", "p-9", f"/v1/disputes/{dispute}")
    assert outsider.status_code == 404
    assert dispute not in [d["id"] for d in (await get(
        system, "partner", "p-9", "/v1/disputes")).json()["items"]]


async def test_a_rep_sees_disputes_its_claims_are_party_to(system: Running) -> None:
    domain = f"{fresh('named')}.com"
    await submit(system.admin, registration("p-1", domain))
    claim = await system.admin.post("/v1/claims", headers={"Prefer": "wait=15"}, json={
        "kind": "named_account", "rep_id": "rep-1",
        "account": {"name": domain.split(".")[0].title() + " Corp", "domain": domain,
                    "country": "US"}})
    assert claim.status_code in (200, 201, 202), claim.text
    await system.settle()
    listed = (await get(system, "rep", "rep-1", "/v1/disputes")).json()["items"]
    involving = [d for d in listed if claim.json()["id"] in d["registration_ids"]]
    assert len(involving) == 1
    dispute = involving[0]["id"]
    assert (await get(system, "rep", "rep-2", f"/v1/disputes/{dispute}")).status_code == 404
    assert (await get(system, "rep", "rep-1", f"/v1/disputes/{dispute}")).status_code == 200


async def test_acknowledging_and_resolving_show_in_the_dispute(system: Running) -> None:
    _, second, dispute = await tie(system, "p-3", "p-4")
    owner = (await system.as_("owner", "cm-1"))[0]
    ack = await owner.post(f"/v1/disputes/{dispute}/acknowledge", headers={"Prefer": "wait=15"})
    assert ack.status_code in (200, 202), ack.text
    await system.settle()
    acknowledged = (await get(system, "owner", "cm-1", f"/v1/disputes/{dispute}")).json()
    assert acknowledged["acknowledged_at"] is not None
    resolve = await owner.post(f"/v1/disputes/{dispute}/resolve", headers={"Prefer": "wait=15"},
                               json={"outcome": "award", "registration_id": second["id"],
                                     "note": "documented introduction"})
    assert resolve.status_code in (200, 202), resolve.text
    await system.settle()
    settled = (await get(system, "owner", "cm-1", f"/v1/disputes/{dispute}")).json()
    assert settled["status"] == "resolved"
    assert settled["resolution"]["outcome"] == "award"
    assert settled["resolution"]["registration_id"] == second["id"]
    assert settled["resolution"]["note"] == "documented introduction"
    loser = (await get(system, "partner", "p-3", f"/v1/disputes/{dispute}")).json()
    assert loser["resolution"]["registration_id"] is None
    assert loser["resolution"]["approved_ids"] == []
    assert loser["resolution"]["note"] == "" and loser["resolution"]["resolved_by"] is None
    winner = (await get(system, "partner", "p-4", f"/v1/registrations/{second['id']}")).json()
    assert winner["status"] == "approved" and winner["dispute_id"] == dispute
    resolved = (await get(system, "owner", "cm-1", "/v1/disputes", status="resolved")).json()
    assert dispute in [d["id"] for d in resolved["items"]]


async def test_an_award_by_product_settles_a_dispute_bridging_two_scopes(
        system: Running) -> None:
    domain = f"{fresh('bridge')}.com"
    first = await submit(system.admin, registration("p-7", domain, products=("a",)))
    second = await submit(system.admin, registration("p-8", domain, products=("b",)))
    third = await submit(system.admin, registration("p-9", domain, products=("a", "b")))
    assert (first["status"], second["status"], third["status"]) == (
        "approved", "approved", "in_review"), (first, second, third)
    dispute = third["dispute_id"]
    await system.settle()
    owner = (await system.as_("owner", "cm-1"))[0]
    both = await owner.post(f"/v1/disputes/{dispute}/resolve", json={
        "outcome": "award", "registration_id": third["id"], "awards": {"a": third["id"]}})
    assert both.status_code == 422, both.text
    resolve = await owner.post(f"/v1/disputes/{dispute}/resolve", headers={"Prefer": "wait=15"},
                               json={"outcome": "award",
                                     "awards": {"a": third["id"], "b": second["id"]}})
    assert resolve.status_code in (200, 202), resolve.text
    await system.settle()
    settled = (await get(system, "owner", "cm-1", f"/v1/disputes/{dispute}")).json()
    assert settled["resolution"]["awards"] == [
        {"product": "a", "registration_id": third["id"]},
        {"product": "b", "registration_id": second["id"]}]
    rows = {r["id"]: (await get(system, "channel_manager", "cm",
                                f"/v1/registrations/{r['id']}")).json()
            for r in (first, second, third)}
    assert rows[first["id"]]["status"] == "rejected"
    assert rows[second["id"]]["status"] == "approved"
    assert rows[third["id"]]["status"] == "approved"
    # The ownership read model shows each product with its one owner.
    client = await system.queries("channel_manager", "cm")
    for product, holder in (("a", third["id"]), ("b", second["id"])):
        found = (await client.get("/v1/ownership", params={"domain": domain,
                                                            "product": product})).json()
        assert [o["registration_id"] for o in found["owners"]] == [holder], found
    # A partner sees which product its own registration won, not who won the other.
    seen = (await get(system, "partner", "p-9", f"/v1/disputes/{dispute}")).json()
    assert seen["resolution"]["awards"] == [
        {"product": "a", "registration_id": third["id"]},
        {"product": "b", "registration_id": None}]
    # The loser cannot contest a person's resolution.
    loser = (await system.as_("partner", "p-7"))[0]
    contest = await loser.post(f"/v1/registrations/{first['id']}/disputes",
                               json={"reason": "again"})
    assert contest.status_code == 409, contest.text


async def test_contests_the_rules_refuse_are_answered_409(system: Running) -> None:
    before = (await system.admin.get("/v1/policy")).json()
    published = await system.admin.put("/v1/policy", json={"contest_window": "PT3S"})
    assert published.status_code in (200, 201), published.text
    try:
        for partner, tier in (("p-11", "platinum"), ("p-12", "gold")):
            put = await system.admin.put(f"/v1/partners/{partner}", json={
                "name": partner, "type": "reseller", "tier": tier})
            assert put.status_code in (200, 201), put.text
        domain = f"{fresh('contest')}.com"
        await submit(system.admin, registration("p-11", domain))
        lost = await submit(system.admin, registration("p-12", domain))
        assert (lost["status"], lost["decision"]["rule"]) == ("rejected", "tier"), lost
        await system.settle()
        partner = (await system.as_("partner", "p-12"))[0]
        path = f"/v1/registrations/{lost['id']}/disputes"
        suspended = await system.admin.put("/v1/partners/p-12", json={
            "name": "p-12", "type": "reseller", "tier": "gold", "status": "suspended"})
        assert suspended.status_code in (200, 201), suspended.text
        refused = await partner.post(path, json={"reason": "we were first"})
        assert refused.status_code == 409 and "suspended" in refused.json()["detail"]
        await system.admin.put("/v1/partners/p-12", json={
            "name": "p-12", "type": "reseller", "tier": "gold", "status": "active"})
        await asyncio.sleep(3.5)
        late = await partner.post(path, json={"reason": "we were first"})
        assert late.status_code == 409 and "PT3S" in late.json()["detail"], late.text
    finally:
        await restore_policy(system.admin, before)


async def test_a_missed_deadline_escalates_to_the_next_owner(system: Running) -> None:
    for owner in ("cm-fast", "dir-fast", "cm-1", "dir-1"):  # a policy names known owners
        created = await system.admin.put(f"/v1/owners/{owner}", json={"name": owner})
        assert created.status_code in (200, 201), created.text
    published = await system.admin.put("/v1/policy", json={"escalation": {"levels": [
        {"owner_id": "cm-fast", "sla": "PT1S"}, {"owner_id": "dir-fast", "sla": "PT1H"}],
        "deadline_unit": None}})  # due at the SLA: seconds, not the next hour
    assert published.status_code in (200, 201), published.text
    try:
        _, _, dispute = await tie(system, "p-5", "p-6")
        for _ in range(200):
            found = (await get(system, "owner", "dir-fast", "/v1/disputes")).json()["items"]
            if any(d["id"] == dispute for d in found):
                break
            await asyncio.sleep(0.05)
        escalated = (await get(system, "owner", "dir-fast", f"/v1/disputes/{dispute}")).json()
        assert (escalated["level"], escalated["owner_id"]) == (2, "dir-fast")
        assert [(b["level"], b["outcome"]) for b in escalated["breaches"]] == [(1, "escalated")]
        # The first owner keeps read access to a dispute it was assigned.
        assert (await get(system, "owner", "cm-fast",
                          f"/v1/disputes/{dispute}")).status_code == 200
        # ... so acting on it is 403 (no longer assigned), not 404.
        former = (await system.as_("owner", "cm-fast"))[0]
        assert (await former.post(f"/v1/disputes/{dispute}/acknowledge")).status_code == 403
        metrics = (await get(system, "channel_manager", "cm", "/v1/metrics/program")).json()
        assert {"level": 1, "outcome": "escalated"}.items() <= next(
            b for b in metrics["disputes"]["sla_breaches"] if b["level"] == 1).items()
    finally:
        default = (await system.admin.get("/v1/policy/1")).json()
        restored = await system.admin.put("/v1/policy", json={
            "escalation": {"levels": default["escalation"]["levels"]}})
        assert restored.status_code in (200, 201), restored.text
