"""The directory lists and the console's queue and search filters, over a running system
on both backends: partners, owners and API keys as pages without secrets, policy versions
and their diff, the owner's queue soonest due first, the registration search."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
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
    async with running(request.param, request, tmp_path_factory.mktemp("dir")) as system:
        yield system


def fresh(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def commands(system: Running, role: str, subject: str | None = None
                   ) -> httpx.AsyncClient:
    """A client of the app serving the reference data (the registration service)."""
    return (await system.as_(role, subject))[0]


async def every_page(client: httpx.AsyncClient, path: str, limit: int,
                     **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(500):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages never ended")


async def test_partners_page_by_id_filter_by_status_and_tier_and_show_no_secret(
        system: Running) -> None:
    made = {}
    for tier, status in (("gold", "active"), ("silver", "suspended"), ("gold", "onboarding")):
        pid = fresh("lp")
        put = await system.admin.put(f"/v1/partners/{pid}", json={
            "name": f"Partner {pid}", "type": "reseller", "tier": tier, "status": status,
            "webhook_url": f"https://hooks.{pid}.example/dealreg"})
        assert put.status_code == 201, put.text
        made[pid] = (tier, status)
    admin = await commands(system, "admin")
    listed = await every_page(admin, "/v1/partners", 2)
    ids = [p["id"] for p in listed]
    assert ids == sorted(ids) and len(ids) == len(set(ids)), "a page repeated or reordered"
    assert set(made) <= set(ids)
    mine = {p["id"]: p for p in listed if p["id"] in made}
    assert all(p["webhook_url"] for p in mine.values())   # admins see the URL
    manager = await commands(system, "channel_manager")
    for answer in (await every_page(manager, "/v1/partners", 50),):
        assert all(p["webhook_url"] is None for p in answer)
    for client in (admin, manager):
        text = (await client.get("/v1/partners", params={"limit": 500})).text
        assert "whsec_" not in text
    gold = await every_page(manager, "/v1/partners", 50, tier="gold")
    assert {p["id"] for p in gold if p["id"] in made} == {
        pid for pid, (tier, _) in made.items() if tier == "gold"}
    assert all(p["tier"] == "gold" for p in gold)
    some = await every_page(manager, "/v1/partners", 50, status=["suspended", "onboarding"])
    assert {p["id"] for p in some if p["id"] in made} == {
        pid for pid, (_, status) in made.items() if status in ("suspended", "onboarding")}
    partner = await commands(system, "partner", next(iter(made)))
    assert (await partner.get("/v1/partners")).status_code == 403
    bad = await manager.get("/v1/partners", params={"cursor": "AAAA"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
    wrong = await manager.get("/v1/partners", params={"tier": "diamond"})
    assert wrong.status_code == 422


async def test_owners_page_without_their_signing_secret(system: Running) -> None:
    made = [fresh("lo") for _ in range(3)]
    for oid in made:
        put = await system.admin.put(f"/v1/owners/{oid}", json={
            "name": f"Owner {oid}", "email": f"{oid}@vendor.example",
            "webhook_url": f"https://hooks.vendor.example/{oid}"})
        assert put.status_code == 201, put.text
        assert put.json()["webhook_secret"].startswith("whsec_")
    manager = await commands(system, "channel_manager")
    listed = await every_page(manager, "/v1/owners", 1)
    ids = [o["id"] for o in listed]
    assert ids == sorted(ids) and set(made) <= set(ids)
    assert {o["email"] for o in listed if o["id"] in made} == {
        f"{o}@vendor.example" for o in made}
    assert "whsec_" not in (await manager.get("/v1/owners", params={"limit": 500})).text
    for role, subject in (("integration", None), ("owner", made[0]), ("partner", "p-1")):
        denied = await (await commands(system, role, subject)).get("/v1/owners")
        assert denied.status_code == 403, (role, denied.text)


async def test_api_keys_are_listed_without_token_or_hash_and_revoked_ones_on_request(
        system: Running) -> None:
    subject = fresh("kp")
    minted = []
    for name in ("portal", "crm sync"):
        created = await system.admin.post("/v1/api-keys", json={
            "role": "partner", "subject_id": subject, "name": name})
        assert created.status_code == 201, created.text
        minted.append(created.json())
    revoked = await system.admin.delete(f"/v1/api-keys/{minted[1]['id']}")
    assert revoked.status_code == 204
    admin = await commands(system, "admin")
    active = await every_page(admin, "/v1/api-keys", 1, subject_id=subject)
    assert [k["id"] for k in active] == [minted[0]["id"]]
    assert active[0] | {"created_at": None} == {
        "id": minted[0]["id"], "role": "partner", "subject_id": subject, "name": "portal",
        "created_at": None, "revoked_at": None}
    both = await every_page(admin, "/v1/api-keys", 50, subject_id=subject,
                            include_revoked="true")
    assert sorted(k["id"] for k in both) == sorted(k["id"] for k in minted)
    assert next(k for k in both if k["id"] == minted[1]["id"])["revoked_at"] is not None
    everything = (await admin.get("/v1/api-keys", params={
        "limit": 500, "include_revoked": "true"})).text
    for key in minted:
        secret = key["token"].rsplit(".", 1)[1]
        assert secret not in everything
    assert "sha256" not in everything
    by_role = await every_page(admin, "/v1/api-keys", 50, role="partner")
    assert by_role and all(k["role"] == "partner" for k in by_role)
    for role in ("channel_manager", "integration"):
        assert (await (await commands(system, role)).get("/v1/api-keys")).status_code == 403


async def test_policy_versions_newest_first_and_the_diff_between_two(system: Running) -> None:
    admin = await commands(system, "admin")
    found = (await admin.get("/v1/policy")).json()
    try:
        # Published with the admin token, so `published_by` is `admin`.
        first = await system.admin.put("/v1/policy", json={"tie_window": "PT7H"})
        assert first.status_code == 201, first.text
        second = await system.admin.put("/v1/policy", json={"match": {"name_threshold": 0.85},
                                                     "tie_window": "PT8H"})
        assert second.status_code == 201, second.text
        v1, v2 = first.json()["version"], second.json()["version"]
        versions = await every_page(admin, "/v1/policy/versions", 1)
        numbers = [v["version"] for v in versions]
        assert numbers == sorted(numbers, reverse=True) and numbers[0] == v2
        assert [v["version"] for v in versions if v["current"]] == [v2]
        assert versions[0]["published_by"] == "admin"
        partner = await commands(system, "partner", "p-1")
        seen = (await partner.get("/v1/policy/versions")).json()["items"]
        assert seen and all(v["published_by"] is None for v in seen)

        latest = (await partner.get("/v1/policy/diff")).json()   # the current vs the one before
        assert (latest["from"], latest["to"]) == (v2 - 1, v2)
        assert latest["changes"] == [
            {"path": "match.name_threshold", "change": "changed",
             "before": found["match"]["name_threshold"], "after": 0.85},
            {"path": "tie_window", "change": "changed", "before": "PT7H", "after": "PT8H"}]
        span = (await admin.get("/v1/policy/diff", params={"from": v1 - 1, "to": v2})).json()
        assert {c["path"] for c in span["changes"]} == {"match.name_threshold", "tie_window"}
        assert next(c for c in span["changes"] if c["path"] == "tie_window")["before"] == \
            found["tie_window"]
        same = (await admin.get("/v1/policy/diff", params={"from": v2, "to": v2})).json()
        assert same["changes"] == []
        missing = await admin.get("/v1/policy/diff", params={"from": 1, "to": 99999})
        assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "to"
        # `/v1/policy/versions` is not taken for a version number, nor a version for a list.
        assert (await admin.get(f"/v1/policy/{v1}")).json()["tie_window"] == "PT7H"
    finally:
        await restore_policy(system.admin, found)


async def _tie(system: Running) -> tuple[dict[str, Any], dict[str, Any], str]:
    domain = f"{fresh('qd')}.com"
    first = await submit(system.admin, registration("p-1", domain))
    second = await submit(system.admin, registration("p-2", domain))
    assert second["status"] == "in_review", second
    return first, second, second["dispute_id"]


async def test_the_owner_queue_sorts_by_due_and_filters_by_level_and_acknowledgement(
        system: Running) -> None:
    found = (await system.admin.get("/v1/policy")).json()
    for oid in ("cm-1", "dir-1"):
        put = await system.admin.put(f"/v1/owners/{oid}", json={"name": oid})
        assert put.status_code in (200, 201), put.text
    disputes = []
    try:
        # The first dispute gets a longer level-1 deadline than the two after it: soonest
        # due first is then not the order of the ids.
        for sla in ("P5D", "P1D", "P1D"):
            put = await system.admin.put("/v1/policy", json={"escalation": {"levels": [
                {"owner_id": "cm-1", "sla": sla}, {"owner_id": "dir-1", "sla": "P3D"}],
                # exact deadlines: on the hour, the two P1D disputes would tie
                "deadline_unit": None}})
            assert put.status_code in (200, 201), put.text
            disputes.append((await _tie(system))[2])
    finally:
        await restore_policy(system.admin, found)
    await system.settle()
    owner = await system.queries("owner", "cm-1")
    ack = await (await system.as_("owner", "cm-1"))[0].post(
        f"/v1/disputes/{disputes[1]}/acknowledge", headers={"Prefer": "wait=15"})
    assert ack.status_code in (200, 202), ack.text
    await system.settle()

    queue = await every_page(owner, "/v1/disputes", 1, status="open", sort="due")
    keys = [(d["due_at"], d["id"]) for d in queue]
    assert keys == sorted(keys), "not soonest due first"
    assert len(keys) == len(set(keys))
    assert [d["id"] for d in queue if d["id"] in disputes] == [
        disputes[1], disputes[2], disputes[0]]

    waiting = await every_page(owner, "/v1/disputes", 50, status="open", acknowledged="false")
    assert disputes[1] not in {d["id"] for d in waiting}
    assert {disputes[0], disputes[2]} <= {d["id"] for d in waiting}
    acked = await every_page(owner, "/v1/disputes", 50, acknowledged="true")
    assert disputes[1] in {d["id"] for d in acked}
    assert all(d["acknowledged_at"] for d in acked)
    assert disputes[0] not in {d["id"] for d in await every_page(
        owner, "/v1/disputes", 50, level=2)}
    assert set(disputes) <= {d["id"] for d in await every_page(
        owner, "/v1/disputes", 50, level=[1, 2])}

    now = datetime.now(UTC)
    overdue = await every_page(owner, "/v1/disputes", 50, due_before=now.isoformat())
    assert not set(disputes) & {d["id"] for d in overdue}   # due in days, not yet
    later = await every_page(owner, "/v1/disputes", 50, sort="due",
                             due_before=(now + timedelta(days=30)).isoformat())
    assert set(disputes) <= {d["id"] for d in later}

    # A cursor of one order is not taken for the other.
    first = (await owner.get("/v1/disputes", params={"limit": 1})).json()
    assert first["next_cursor"] is not None
    crossed = await owner.get("/v1/disputes", params={"sort": "due",
                                                      "cursor": first["next_cursor"]})
    assert crossed.status_code == 422
    # A partner sees some due times rounded: no ordering or filtering by the exact one.
    partner = await system.queries("partner", "p-2")
    for params in ({"sort": "due"}, {"due_before": now.isoformat()}):
        refused = await partner.get("/v1/disputes", params=params)
        assert refused.status_code == 422, refused.text
    naive = await owner.get("/v1/disputes", params={"due_before": "2026-01-01T00:00:00"})
    assert naive.status_code == 422


async def test_the_registration_search_filters_by_product_account_text_and_dates(
        system: Running) -> None:
    partner = fresh("sp")
    label = fresh("Zq")
    domain = f"{label.lower()}.com"
    made = []
    for n, products in enumerate((("analytics",), ("storage", "backup"), ("analytics",))):
        made.append(await submit(system.admin, registration(
            partner, f"n{n}-{domain}", name=f"{label} Unit {n}", products=products,
            crm=f"CRM-{label}-{n}")))
    await system.settle()
    manager = await system.queries("channel_manager")
    mine = await every_page(manager, "/v1/registrations", 1, partner_id=partner,
                            product="ANALYTICS")
    assert [r["id"] for r in mine] == [made[2]["id"], made[0]["id"]]   # newest first
    by_name = await every_page(manager, "/v1/registrations", 50, account=label.upper())
    assert {r["id"] for r in by_name} == {r["id"] for r in made}
    by_crm = await every_page(manager, "/v1/registrations", 50, account=f"CRM-{label}-1")
    assert [r["id"] for r in by_crm] == [made[1]["id"]]
    by_domain = await every_page(manager, "/v1/registrations", 50,
                                 account=f"n2-{domain}", product="analytics")
    assert [r["id"] for r in by_domain] == [made[2]["id"]]
    submitted = sorted(datetime.fromisoformat(r["submitted_at"]) for r in made)
    window = await every_page(manager, "/v1/registrations", 50, partner_id=partner,
                              submitted_from=submitted[1].isoformat(),
                              submitted_to=(submitted[2] + timedelta(microseconds=1))
                              .isoformat())
    assert {r["id"] for r in window} == {r["id"] for r in made
                                         if datetime.fromisoformat(r["submitted_at"])
                                         >= submitted[1]}
    none = await every_page(manager, "/v1/registrations", 50, partner_id=partner,
                            submitted_to=submitted[0].isoformat())
    assert none == []
    # A partner searches only its own: the other partner's matching registration is absent.
    other = await system.queries("partner", "p-1")
    theirs = await every_page(other, "/v1/registrations", 50, account=label)
    assert theirs == []


async def test_a_due_order_cursor_is_not_taken_for_an_id_cursor(system: Running) -> None:
    # Regression: a `sort=due` cursor (`<µs>:<id>`) passed without `sort=due` was read as
    # an id, and every dispute id sorts after it: the queue silently restarted.
    for _ in range(2):
        await _tie(system)
    await system.settle()
    owner = await system.queries("owner", "cm-1")
    by_due = (await owner.get("/v1/disputes", params={"limit": 1, "sort": "due"})).json()
    assert by_due["next_cursor"] is not None
    crossed = await owner.get("/v1/disputes", params={"cursor": by_due["next_cursor"]})
    assert crossed.status_code == 422, crossed.text
    assert crossed.json()["errors"][0]["field"] == "cursor"
