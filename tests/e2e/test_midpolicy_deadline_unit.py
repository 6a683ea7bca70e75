"""A dispute opened under a document without a deadline unit moves onto the unit of the
document a late joiner comes under (session 30 rival review, confidentiality).

Levels PT3S/PT3S with `deadline_unit: null` (an upgraded deployment's older document); p1
approved, p2 ties with it (the dispute opens at p2's submission); a document with `PT2S`
is published; p3 joins 1 s later under it; the fallback settles. Before the rule the
dispute kept the exact deadlines of the version it opened under, so p3's `decided_at` was
p2's `submitted_at` + 6 s to the microsecond, where p3's dispute read rounds rivals'
moments. Now p3's join moves the pending deadline onto PT2S (decided by p3's policy
version): every moment the settlement fixed is on a whole 2 s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.e2e.test_fallback_deadline_unit import (
    UNIT_S,
    _at,
    _moments,
    _on_unit,
    partner_sees,
)
from tests.e2e.test_partner_view_channels import fresh
from tests.integration.projections.system_support import (
    Running,
    registration,
    restore_policy,
    running,
    submit,
)
from tests.support.receivers import HttpReceiver, http_receiver

LEVELS = [{"owner_id": "cm-m1", "sla": "PT3S"}, {"owner_id": "dir-m1", "sla": "PT3S"}]


@pytest.fixture(scope="module")
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module", params=["embedded"])
async def system(request, tmp_path_factory, hook) -> AsyncIterator[Running]:
    async with running(request.param, request, tmp_path_factory.mktemp("midpolicy"),
                       webhook_allowed_networks=["127.0.0.0/8"],
                       notification_schedule_seconds=[0, 0.2, 0.2], notification_jitter=0,
                       notification_poll_seconds=0.05) as system:
        yield system


async def test_a_joiner_under_a_unit_does_not_read_a_rivals_submission_through_an_older_document(
        system, hook):
    for owner in ("cm-m1", "dir-m1", "cm-1", "dir-1"):  # the restored policy names cm-1, dir-1
        await system.admin.put(f"/v1/owners/{owner}", json={"name": owner})
    before = (await system.admin.get("/v1/policy")).json()
    old = await system.admin.put("/v1/policy", json={"escalation": {
        "levels": LEVELS, "deadline_unit": None}})
    assert old.status_code in (200, 201), old.text
    try:
        p1, p2, p3 = fresh("m1"), fresh("m2"), fresh("m3")
        for p in (p1, p2, p3):
            await system.admin.put(f"/v1/partners/{p}", json={
                "name": "P", "type": "reseller", "tier": "gold", "status": "active",
                "webhook_url": hook.url})
        domain = f"{fresh('midpolicy')}.com"
        await submit(system.admin, registration(p1, domain))
        second = await submit(system.admin, registration(p2, domain))
        dispute = second["dispute_id"]
        assert dispute, second
        new = await system.admin.put("/v1/policy", json={"escalation": {
            "levels": LEVELS, "deadline_unit": f"PT{UNIT_S}S"}})
        assert new.status_code in (200, 201), new.text
        await asyncio.sleep(1.0)
        third = await submit(system.admin, registration(p3, domain))
        assert third["dispute_id"] == dispute, third
        staff = await system.queries("channel_manager", "cm")
        for _ in range(600):
            shown = (await staff.get(f"/v1/disputes/{dispute}")).json()
            if shown["status"] == "resolved":
                break
            await asyncio.sleep(0.05)
        assert shown["status"] == "resolved", shown
        assert shown["resolution"]["rule"] == "final_breach_fallback", shown
        await system.settle()

        # p2's submission + both SLAs: what p3 read before the rule, to the microsecond.
        exact = _at(second["submitted_at"]) + timedelta(seconds=6)
        assert _on_unit(shown["resolved_at"]), shown
        assert _at(shown["resolved_at"]) > exact

        seen = await partner_sees(system, hook, p3, third["id"])
        own, hooks = seen["registration"], seen["webhooks"]
        assert own["status"] in ("approved", "rejected"), own
        assert _on_unit(own["decided_at"]), own
        assert _at(own["decided_at"]) != exact, own
        text = json.dumps(seen)
        assert "resolved" in json.dumps(hooks), hooks
        for moment in _moments(seen):
            assert _at(moment) != exact, (moment, seen)
        assert exact.isoformat().replace("+00:00", "")[:23] not in text
    finally:
        await restore_policy(system.admin, before)
