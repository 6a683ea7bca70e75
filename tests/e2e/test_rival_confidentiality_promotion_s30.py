"""A promotion caused by a rival's expiry tells the promoted partner no moment finer than
the policy's `promotion_unit` (session 30, confidentiality).

p1 is approved at some moment t; p2, later and rejected `first_submitted`, waits in p1's
line. p1's protection expires at exactly t + `protection_period`. Before session 30 p2 was
promoted at that instant: its `decided_at`, its `protected_until` (minus the period) and
its timeline read p1's approval to the microsecond, where the partner view shows a rival's
moments only to the hour. Now the promotion takes effect on the next whole unit (product
default PT1H; this test PT10S, to stay fast), and p3, registering the customer between
p1's expiry and that moment, queues behind p2 instead of taking the account.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
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

UNIT_S = 10
PERIOD_S = 4


@pytest.fixture(scope="module")
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module", params=["embedded"])
async def system(request, tmp_path_factory, hook) -> AsyncIterator[Running]:
    async with running(request.param, request, tmp_path_factory.mktemp("promo"),
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


async def _until(read: Any, ok: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await read()
        if ok(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_a_promotion_after_a_rivals_expiry_tells_no_finer_moment_than_the_unit(
        system: Running, hook: HttpReceiver) -> None:
    before = (await system.admin.get("/v1/policy")).json()
    pub = await system.admin.put("/v1/policy", json={
        "protection_period": f"PT{PERIOD_S}S", "tie_window": "PT0.5S",
        "reregistration_cooloff": None, "promotion_unit": f"PT{UNIT_S}S"})
    assert pub.status_code in (200, 201), pub.text
    try:
        p1, p2, p3 = fresh("pr1"), fresh("pr2"), fresh("pr3")
        for p in (p1, p2, p3):
            await system.admin.put(f"/v1/partners/{p}", json={
                "name": "P", "type": "reseller", "tier": "gold", "status": "active",
                "webhook_url": hook.url})
        domain = f"{fresh('promo')}.com"
        # p1 approved ~0.5 s into a unit, so its expiry (+4 s) leaves most of the unit as
        # the gap between the expiry and the promotion, for p3 to arrive in.
        await asyncio.sleep(UNIT_S - time.time() % UNIT_S + 0.5)
        first = await submit(system.admin, registration(p1, domain))
        assert first["status"] == "approved", first
        await asyncio.sleep(1.0)
        second = await submit(system.admin, registration(p2, domain))
        assert (second["status"], second["decision"]["rule"]) == (
            "rejected", "first_submitted"), second
        staff = await system.queries("admin")
        expiry = _at(first["protected_until"])  # t + the period: p1's approval, exactly
        assert expiry.microsecond or expiry.second % UNIT_S, "p1 expires on the unit"
        due = datetime.fromtimestamp(-(-expiry.timestamp() // UNIT_S) * UNIT_S, UTC)

        async def status_of(rid: str) -> dict[str, Any]:
            return (await staff.get(f"/v1/registrations/{rid}")).json()

        ended = await _until(lambda: status_of(first["id"]),
                             lambda r: r["status"] == "expired")
        assert ended["status"] == "expired", ended
        # The gap: p1 has ended, p2 is not promoted yet; p3 registers the customer.
        assert datetime.now(UTC) < due - timedelta(seconds=1), (expiry, due)
        assert (await status_of(second["id"]))["status"] == "rejected"
        third = await submit(system.admin, registration(p3, domain))
        assert (third["status"], third["decision"]["rule"]) == (
            "rejected", "promotion_pending"), third

        promoted = await _until(lambda: status_of(second["id"]),
                                lambda r: r["status"] == "approved")
        assert promoted["decision"]["rule"] == "promoted_on_release", promoted
        assert (await status_of(third["id"]))["status"] == "rejected"  # behind p2
        await system.settle()

        q = await system.queries("partner", p2)
        own = (await q.get(f"/v1/registrations/{second['id']}")).json()
        timeline = (await q.get(f"/v1/registrations/{second['id']}/timeline")).json()
        ownership = (await q.get("/v1/ownership", params={"account_key": f"dom:{domain}"}
                                 )).json()
        deliveries = (await q.get(f"/v1/partners/{p2}/deliveries")).json()
        hooks = [json.loads(req.body) for req in hook.requests
                 if p2 in req.body.decode() or second["id"] in req.body.decode()]
        ownership.pop("as_of", None)  # the moment asked about: now
        seen = {"registration": own, "timeline": timeline, "ownership": ownership,
                "deliveries": deliveries, "webhooks": hooks}
        # What the promotion fixed reads the unit: decided at the due moment, protected
        # from it for the period; nothing p2 reads is p1's expiry or p1's approval.
        assert _at(own["decided_at"]) == due, own
        assert _at(own["protected_until"]) == due + timedelta(seconds=PERIOD_S), own
        approval = expiry - timedelta(seconds=PERIOD_S)
        text = json.dumps(seen)
        for moment in _moments(seen):
            assert _at(moment) not in (expiry, approval), (moment, seen)
            if _at(moment) >= expiry:
                # Everything after p1's expiry: on the unit, or p2's own protection end
                # (the unit + the period).
                shifted = (_at(moment) - timedelta(seconds=PERIOD_S)).isoformat()
                assert _on_unit(moment) or _on_unit(shifted), (moment, seen)
        for secret in (expiry, approval):
            assert secret.isoformat().replace("+00:00", "")[:22] not in text
        decided = [e for e in timeline["entries"]
                   if e["type"] == "dealreg.registration.decided.v1"]
        assert [e["data"]["rule"] for e in decided] == ["first_submitted",
                                                       "promoted_on_release"], timeline
        assert _on_unit(decided[-1]["at"]) and _on_unit(decided[-1]["data"]["decided_at"])
    finally:
        await restore_policy(system.admin, before)
