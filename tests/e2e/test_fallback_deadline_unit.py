"""A late joiner's decision by the final-breach fallback tells no rival's submission finer
than the policy's `escalation.deadline_unit` (session 29 rival review, r2conf).

Two levels of PT3S: p1 approved, p2 ties with it (the dispute opens at p2's submission),
p3 joins 1 s later; the fallback settles it. Before session 29 every deadline fell exactly
at the SLA, so p3's `decided_at`, its timeline entries and its webhook's `resolved_at` read
p2's submission + 2 x 3 s to the microsecond, where p3's dispute read rounds it to the hour.
Now a deadline falls due on the next whole multiple of the unit (the product default PT1H;
this test PT2S, to stay fast): every moment p3 reads is on a whole 2 s, and nothing reads
p2's submission + 6 s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.e2e.test_partner_view_channels import fresh
from tests.integration.projections.system_support import (
    Running,
    registration,
    restore_policy,
    running,
    submit,
)
from tests.support.receivers import HttpReceiver, http_receiver

UNIT_S = 2


@pytest.fixture(scope="module")
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module", params=["embedded"])
async def system(request, tmp_path_factory, hook) -> AsyncIterator[Running]:
    async with running(request.param, request, tmp_path_factory.mktemp("unit"),
                       webhook_allowed_networks=["127.0.0.0/8"],
                       notification_schedule_seconds=[0, 0.2, 0.2], notification_jitter=0,
                       notification_poll_seconds=0.05) as system:
        yield system


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _on_unit(value: str) -> bool:
    moment = _at(value)
    return moment.microsecond == 0 and moment.second % UNIT_S == 0


def _moments(value: Any) -> list[str]:
    """Every ISO 8601 moment anywhere in a JSON value."""
    found: list[str] = []
    if isinstance(value, dict):
        for item in value.values():
            found += _moments(item)
    elif isinstance(value, list):
        for item in value:
            found += _moments(item)
    elif isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        found.append(value)
    return found


async def partner_sees(system: Running, hook: HttpReceiver, partner: str,
                       registration_id: str) -> dict[str, Any]:
    """What `partner` reads of its registration once its dispute is resolved: the
    registration, its timeline, its delivery log and the webhooks it received (waiting up
    to 30 s for both the log's and the hook's `resolved`)."""
    q = await system.queries("partner", partner)
    own = (await q.get(f"/v1/registrations/{registration_id}")).json()
    timeline = (await q.get(f"/v1/registrations/{registration_id}/timeline")).json()
    deliveries, hooks = None, []
    for _ in range(300):  # the delivery log and the webhook's arrival, up to 30 s
        deliveries = (await q.get(f"/v1/partners/{partner}/deliveries")).json()
        hooks = [json.loads(req.body) for req in hook.requests
                 if partner in req.body.decode() or registration_id in req.body.decode()]
        if (any("resolved" in json.dumps(d) for d in deliveries.get("items", []))
                and "resolved" in json.dumps(hooks)):
            break
        await asyncio.sleep(0.1)
    return {"registration": own, "timeline": timeline, "deliveries": deliveries,
            "webhooks": hooks}


async def test_a_late_joiners_fallback_decision_tells_no_rivals_submission(system, hook):
    for owner in ("cm-u1", "dir-u1", "cm-1", "dir-1"):  # the restored policy names cm-1, dir-1
        await system.admin.put(f"/v1/owners/{owner}", json={"name": owner})
    before = (await system.admin.get("/v1/policy")).json()
    pub = await system.admin.put("/v1/policy", json={"escalation": {
        "levels": [{"owner_id": "cm-u1", "sla": "PT3S"}, {"owner_id": "dir-u1", "sla": "PT3S"}],
        "deadline_unit": f"PT{UNIT_S}S"}})
    assert pub.status_code in (200, 201), pub.text
    try:
        p1, p2, p3 = fresh("u1"), fresh("u2"), fresh("u3")
        for p in (p1, p2, p3):
            await system.admin.put(f"/v1/partners/{p}", json={
                "name": "P", "type": "reseller", "tier": "gold", "status": "active",
                "webhook_url": hook.url})
        domain = f"{fresh('unit')}.com"
        await submit(system.admin, registration(p1, domain))
        second = await submit(system.admin, registration(p2, domain))
        dispute = second["dispute_id"]
        assert dispute, second
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
        own, hooks, timeline = seen["registration"], seen["webhooks"], seen["timeline"]
        assert own["status"] in ("approved", "rejected"), own
        assert _on_unit(own["decided_at"]), own
        if own.get("protected_until"):
            assert _at(own["protected_until"]).microsecond == 0, own
        text = json.dumps(seen)
        assert "resolved" in json.dumps(hooks), hooks
        for moment in _moments(seen):
            assert _at(moment) != exact, (moment, seen)
        # Every moment the settlement fixed reads a whole unit, its event ids too.
        assert exact.isoformat().replace("+00:00", "")[:23] not in text
        settled = [e for e in timeline["entries"]
                   if e["type"] in ("dealreg.registration.decided.v1",
                                    "dealreg.dispute.resolved.v1")]
        assert settled, timeline
        for entry in settled:
            if entry.get("at") and _at(entry["at"]) >= exact:
                assert _on_unit(entry["at"]), entry
    finally:
        await restore_policy(system.admin, before)
