"""Partners subscribe to `dispute.resolved` (redacted to what they may see), and webhook
secrets rotate with two active secrets; with real local receivers (embedded backend)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.projections.api.deliveries import PartnerAttemptView, PartnerDeliveryView
from tests.integration.projections.system_support import Running, registration, submit
from tests.integration.projections.test_notifications import Env, _env, deliveries, until
from tests.support.receivers import HttpReceiver, Reply, http_receiver


@pytest.fixture
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    async with _env(request, tmp_path) as e:
        yield e


def _partner(**extra: Any) -> dict[str, Any]:
    return {"name": "Partner", "type": "reseller", "tier": "gold", "status": "active", **extra}


async def _tie(system: Running, first: str, second: str) -> tuple[str, str, str]:
    domain = f"res-{uuid.uuid4().hex[:8]}.com"
    a = await submit(system.admin, registration(first, domain))
    b = await submit(system.admin, registration(second, domain))
    assert b["status"] == "in_review", b
    return str(a["id"]), str(b["id"]), str(b["dispute_id"])


async def _resolve(system: Running, dispute: str, winner: str) -> None:
    owner = (await system.as_("owner", "cm-1"))[0]
    resolved = await owner.post(f"/v1/disputes/{dispute}/resolve",
                                headers={"Prefer": "wait=15"},
                                json={"outcome": "award", "registration_id": winner,
                                      "note": "documented introduction",
                                      "partner_note": PARTNER_NOTE})
    assert resolved.status_code in (200, 202), resolved.text


PARTNER_NOTE = "Awarded on the evidence both sides gave (MARKER-pnote)."


async def _resolved(hook: HttpReceiver, count: int = 1) -> list[Any]:
    requests = await hook.wait_for(count)
    return [r for r in requests if orjson.loads(r.body)["type"] == "dispute.resolved"]


async def test_a_subscribed_partner_hears_its_own_outcome_only(env: Env) -> None:
    system = env.system
    async with http_receiver() as partner_hook:
        put = await system.admin.put("/v1/partners/pw-1", json=_partner(
            webhook_url=partner_hook.url))
        assert put.status_code in (200, 201), put.text
        secret = put.json()["webhook_secret"]
        assert secret.startswith("whsec_")
        assert [s["secret"] for s in put.json()["webhook_secrets"]] == [secret]
        admin_view = (await system.admin.get("/v1/partners/pw-1")).json()
        assert admin_view["webhook_secret"] == secret
        for role, subject, url in (("partner", "pw-1", partner_hook.url),
                                   ("channel_manager", "cm-x", None)):
            seen = (await (await system.as_(role, subject))[0].get("/v1/partners/pw-1")).json()
            assert (seen["webhook_url"], seen["webhook_secret"], seen["webhook_secrets"]) == (
                url, None, [])
        quiet = await system.admin.put("/v1/partners/pw-2", json=_partner())
        assert quiet.json()["webhook_secret"] is None  # no URL, no secret

        mine, theirs, dispute = await _tie(system, "pw-1", "pw-2")
        await _resolve(system, dispute, mine)
        [request] = await partner_hook.wait_for(1)
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["type"] == "dispute.resolved"
        assert payload["data"]["dispute"]["id"] == dispute
        assert payload["data"]["dispute"]["outcome"] == "award"
        assert payload["data"]["registrations"] == [
            {"id": mine, "status": "approved", "credit_percent": None}]
        # Nothing about the competitor, not even inside the dispute id (a hash).
        raw = request.body.decode()
        assert theirs not in raw and "pw-2" not in raw
        assert "documented introduction" not in raw  # nor the internal note
        assert payload["data"]["dispute"]["partner_note"] == PARTNER_NOTE
        assert "cm-1" not in raw  # nor who resolved it

        # The owner was told too; pw-2 (no webhook) got a delivery marked disabled only.
        await until(lambda: _owner_got_resolution(env))
        await asyncio.sleep(0.3)
        assert len(partner_hook.requests) == 1
        db = system.query_app.state.runtime.engine
        async with db.connect() as conn:
            from sqlalchemy import text
            rows = (await conn.execute(text(
                "SELECT recipient_id, status, channel FROM notification_outbox "
                "WHERE recipient_kind = 'partner' ORDER BY recipient_id"))).all()
        assert [tuple(r) for r in rows] == [("pw-1", "delivered", "webhook"),
                                            ("pw-2", "disabled", "webhook")]

        # The losing partner, once subscribed, hears only its own rejection.
        put2 = await system.admin.put("/v1/partners/pw-2", json=_partner(
            webhook_url=partner_hook.url))
        secret2 = put2.json()["webhook_secret"]
        a, b, dispute2 = await _tie(system, "pw-1", "pw-2")
        await _resolve(system, dispute2, a)
        got = await partner_hook.wait_for(3)
        by_partner = {}
        for r in got[1:]:
            try:
                by_partner["pw-2"] = (Webhook(secret2).verify(r.body, r.headers), r.body)
            except WebhookVerificationError:
                by_partner["pw-1"] = (Webhook(secret).verify(r.body, r.headers), r.body)
        loser, loser_raw = by_partner["pw-2"]
        assert loser["data"]["registrations"] == [
            {"id": b, "status": "rejected", "credit_percent": None}]
        loser_text = loser_raw.decode().replace(dispute2, "<dispute>")
        assert a not in loser_text and "pw-1" not in loser_text
        assert "documented introduction" not in loser_text
        assert loser["data"]["dispute"]["partner_note"] == PARTNER_NOTE


async def _owner_got_resolution(env: Env) -> bool:
    return any(d["type"] == "dispute.resolved" and d["status"] == "delivered"
               for d in await deliveries(env.system))


async def test_rotation_signs_with_both_secrets_until_the_old_one_is_retired(env: Env) -> None:
    system = env.system
    owner = {"name": "CM 1", "email": "cm1@vendor.example", "webhook_url": env.hook.url}
    rotated = await system.admin.put("/v1/owners/cm-1", json={**owner, "rotate_secret": True})
    assert rotated.status_code == 200, rotated.text
    old, new = env.secret, rotated.json()["webhook_secret"]
    assert new != old
    listed = rotated.json()["webhook_secrets"]
    assert [(s["secret"], s["status"]) for s in listed] == [(new, "current"),
                                                             (old, "previous")]
    assert listed[1]["expires_at"] is not None and listed[0]["id"] != listed[1]["id"]
    shown = (await system.admin.get("/v1/owners/cm-1")).json()
    assert [s["secret"] for s in shown["webhook_secrets"]] == [new, old]

    await _tie(system, "p-1", "p-2")
    [during] = await env.hook.wait_for(1)
    assert len(during.headers["webhook-signature"].split()) == 2
    Webhook(old).verify(during.body, during.headers)
    Webhook(new).verify(during.body, during.headers)

    retired = await system.admin.put("/v1/owners/cm-1", json={
        **owner, "retire_previous_secret": True})
    assert retired.status_code == 200, retired.text
    assert [s["secret"] for s in retired.json()["webhook_secrets"]] == [new]
    await _tie(system, "p-1", "p-2")
    after = (await env.hook.wait_for(2))[1]
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


async def test_the_grace_period_ends_by_itself(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    async with _env(request, tmp_path, webhook_secret_grace_seconds=0.5) as env:
        owner = {"name": "CM 1", "email": "cm1@vendor.example", "webhook_url": env.hook.url}
        rotated = await env.system.admin.put("/v1/owners/cm-1", json={
            **owner, "rotate_secret": True})
        new = rotated.json()["webhook_secret"]
        await asyncio.sleep(0.6)
        shown = (await env.system.admin.get("/v1/owners/cm-1")).json()
        assert [s["secret"] for s in shown["webhook_secrets"]] == [new]
        await _tie(env.system, "p-1", "p-2")
        [request_] = await env.hook.wait_for(1)
        Webhook(new).verify(request_.body, request_.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(env.secret).verify(request_.body, request_.headers)


async def test_a_partner_reads_its_own_delivery_log_and_no_other(env: Env) -> None:
    system = env.system
    async with http_receiver() as partner_hook:
        for partner in ("pl-1", "pl-2"):
            put = await system.admin.put(f"/v1/partners/{partner}", json=_partner(
                webhook_url=partner_hook.url))
            assert put.status_code in (200, 201), put.text
        mine, theirs, dispute = await _tie(system, "pl-1", "pl-2")
        # Each partner's first attempt fails, so the log holds an error text.
        partner_hook.replies = [Reply(500), Reply(500)]
        await _resolve(system, dispute, mine)
        await partner_hook.wait_for(4)

        async def logged() -> bool:
            admin = await system.queries("admin")
            items = (await admin.get("/v1/partners/pl-1/deliveries")).json()["items"]
            return bool(items) and items[0]["status"] == "delivered"
        await until(logged)
        [full] = (await (await system.queries("admin")).get(
            "/v1/partners/pl-1/deliveries")).json()["items"]
        assert full["event_id"] and full["attempt_log"][0]["error"], full
        own = await (await system.queries("partner", "pl-1")).get(
            "/v1/partners/pl-1/deliveries")
        assert own.status_code == 200, own.text
        [delivery] = own.json()["items"]
        assert (delivery["recipient_kind"], delivery["recipient_id"], delivery["type"]) == (
            "partner", "pl-1", "dispute.resolved")
        assert [a["outcome"] for a in delivery["attempt_log"]] == ["failed", "delivered"]
        assert delivery["attempt_log"][0]["status_code"] == 500
        # The partner view's allow-list, nothing else: not the causing event's id, not the
        # error texts (they may name URLs, addresses, internals).
        assert set(delivery) == set(PartnerDeliveryView.model_fields)
        assert {k for a in delivery["attempt_log"] for k in a} == set(
            PartnerAttemptView.model_fields)
        assert full["event_id"] not in own.text
        assert full["attempt_log"][0]["error"] not in own.text
        assert set(delivery["payload"]) == {"type", "timestamp", "data"}
        assert [r["id"] for r in delivery["payload"]["data"]["registrations"]] == [mine]
        # What it was sent, redacted: nothing of the rival, nor the internal note.
        assert theirs not in own.text and "pl-2" not in own.text
        assert "documented introduction" not in own.text
        stranger = await (await system.queries("partner", "pl-2")).get(
            "/v1/partners/pl-1/deliveries")
        assert stranger.status_code == 404
        owner = await (await system.queries("owner", "cm-1")).get(
            "/v1/partners/pl-1/deliveries")
        assert owner.status_code == 403
