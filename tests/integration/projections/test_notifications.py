"""Dispute notifications end to end, with real receivers: a local HTTP server and a local
SMTP server (aiosmtpd). The first test runs on both backends, the rest embedded."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import update
from standardwebhooks import Webhook

from services.projections.notifications import NotificationSender, ref_owners
from tests.integration.projections.system_support import Running, registration, running, submit
from tests.support.receivers import HttpReceiver, Reply, http_receiver, smtp_receiver


@dataclass
class Env:
    system: Running
    hook: HttpReceiver
    mail: list[Message]
    secret: str


@contextlib.asynccontextmanager
async def _env(request: pytest.FixtureRequest, tmp_path: Path, backend: str = "embedded",
               **overrides: Any) -> AsyncIterator[Env]:
    async with http_receiver() as hook, smtp_receiver() as (smtp_port, mail):
        settings: dict[str, Any] = {
            "webhook_allowed_networks": ["127.0.0.0/8"], "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port, "notification_schedule_seconds": [0, 0.2, 0.2],
            "notification_jitter": 0, "notification_poll_seconds": 0.05, **overrides}
        async with running(backend, request, tmp_path, **settings) as system:
            put = await system.admin.put("/v1/owners/cm-1", json={
                "name": "CM 1", "email": "cm1@vendor.example", "webhook_url": hook.url})
            assert put.status_code in (200, 201), put.text
            secret = put.json()["webhook_secret"]
            await _owner_visible(system, hook.url)
            yield Env(system, hook, mail, secret)


async def _owner_visible(system: Running, url: str) -> None:
    for _ in range(200):
        got = await system.admin.get("/v1/owners/cm-1")
        if got.status_code == 200 and got.json()["webhook_url"] == url:
            return
        await asyncio.sleep(0.025)
    raise TimeoutError("owner not folded")


@pytest.fixture
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with _env(request, tmp_path) as e:
        yield e


@pytest.fixture(params=["embedded", "distributed"])
async def any_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with _env(request, tmp_path, request.param) as e:
        yield e


async def open_dispute(system: Running) -> str:
    domain = f"tie-{uuid.uuid4().hex[:8]}.com"
    await submit(system.admin, registration("p-1", domain))
    second = await submit(system.admin, registration("p-2", domain))
    assert second["status"] == "in_review", second
    return str(second["dispute_id"])


async def deliveries(system: Running, **params: Any) -> list[dict[str, Any]]:
    admin = await system.queries("admin")  # the projections service serves the log
    response = await admin.get("/v1/owners/cm-1/deliveries", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_owner_of_a_new_dispute_gets_a_signed_webhook_and_an_email(
        any_env: Env) -> None:
    env = any_env
    dispute = await open_dispute(env.system)
    started = asyncio.get_running_loop().time()
    [request] = await env.hook.wait_for(1, timeout=1.0)
    while not env.mail:
        assert asyncio.get_running_loop().time() - started < 1.0, "no e-mail within 1 s"
        await asyncio.sleep(0.01)
    payload = Webhook(env.secret).verify(request.body, request.headers)
    assert payload["type"] == "dispute.opened"
    assert payload["data"]["dispute"]["id"] == dispute
    assert payload["data"]["account_key"].startswith("dom:tie-")
    assert request.headers["webhook-id"].startswith("msg_")
    assert env.mail[0]["To"] == "cm1@vendor.example"
    assert dispute in env.mail[0]["Subject"]
    assert len(request.body) < 20_000

    async def logged() -> bool:
        return {d["status"] for d in await deliveries(env.system)} == {"delivered"}
    await until(logged)
    items = await deliveries(env.system)
    assert {d["channel"] for d in items} == {"webhook", "email"}
    assert all(d["attempt_log"][0]["outcome"] == "delivered" for d in items)
    # Another owner may not read cm-1's log.
    other = await env.system.queries("owner", "dir-1")
    assert (await other.get("/v1/owners/cm-1/deliveries")).status_code == 403
    mine = await env.system.queries("owner", "cm-1")
    assert (await mine.get("/v1/owners/cm-1/deliveries")).status_code == 200


async def test_failures_are_retried_with_the_same_id_then_succeed(env: Env) -> None:
    env.hook.replies = [Reply(500), Reply(503, {"retry-after": "0"})]
    await open_dispute(env.system)
    requests = await env.hook.wait_for(3)
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for r in requests:
        Webhook(env.secret).verify(r.body, r.headers)

    async def delivered() -> bool:
        hooks = [d for d in await deliveries(env.system) if d["channel"] == "webhook"]
        return bool(hooks) and hooks[0]["status"] == "delivered"
    await until(delivered)
    [hook] = [d for d in await deliveries(env.system) if d["channel"] == "webhook"]
    assert [(a["outcome"], a["status_code"]) for a in hook["attempt_log"]] == [
        ("failed", 500), ("failed", 503), ("delivered", 200)]


async def test_a_delivery_dies_after_the_last_attempt_and_can_be_redelivered(env: Env) -> None:
    env.hook.replies = [Reply(500), Reply(500), Reply(500)]
    await open_dispute(env.system)

    async def dead() -> bool:
        return any(d["status"] == "dead" for d in await deliveries(env.system))
    await until(dead)
    [hook] = await deliveries(env.system, status="dead")
    assert hook["attempts"] == 3 and hook["last_error"] == "HTTP 500"
    assert len(env.hook.requests) == 3
    forbidden = await (await env.system.queries("owner", "cm-1")).post(
        f"/v1/deliveries/{hook['id']}/redeliver")
    assert forbidden.status_code == 403
    assert (await (await env.system.queries("admin")).post(
        "/v1/deliveries/msg_nope/redeliver")).status_code == 404
    queued = await (await env.system.queries("admin")).post(
        f"/v1/deliveries/{hook['id']}/redeliver")
    assert queued.status_code == 202, queued.text
    requests = await env.hook.wait_for(4)
    assert requests[3].headers["webhook-id"] == hook["id"]

    async def delivered() -> bool:
        return any(d["id"] == hook["id"] and d["status"] == "delivered"
                   for d in await deliveries(env.system))
    await until(delivered)


async def test_a_410_disables_the_endpoint(env: Env) -> None:
    env.hook.replies = [Reply(410)]
    await open_dispute(env.system)

    async def disabled() -> bool:
        return any(d["status"] == "disabled" and d["channel"] == "webhook"
                   for d in await deliveries(env.system))
    await until(disabled)
    await open_dispute(env.system)  # a later notification is not sent to the gone URL

    async def both() -> bool:
        return len([d for d in await deliveries(env.system, status="disabled")
                    if d["channel"] == "webhook"]) == 2
    await until(both)
    assert len(env.hook.requests) == 1


async def test_a_sender_killed_mid_delivery_loses_nothing(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    async with _env(request, tmp_path, notification_lease_seconds=1.0) as env:
        runtime = env.system.query_app.state.runtime
        env.hook.replies = [Reply(200, delay=30)]  # the first receipt hangs
        await open_dispute(env.system)
        [first] = await env.hook.wait_for(1)
        task = runtime.tasks["notifications"]
        task.cancel()  # the worker dies while the receiver is still answering
        await asyncio.gather(task, return_exceptions=True)
        stop = asyncio.Event()
        replacement = NotificationSender(runtime.engine, runtime.settings)
        running_task = asyncio.create_task(replacement.run(stop.is_set))
        try:
            requests = await env.hook.wait_for(2, timeout=10)
            assert requests[1].headers["webhook-id"] == first.headers["webhook-id"]

            await until(lambda: _webhook_delivered(env.system))
        finally:
            stop.set()
            await running_task
        [hook] = [d for d in await deliveries(env.system) if d["channel"] == "webhook"]
        assert hook["id"] == first.headers["webhook-id"]
        assert [a["outcome"] for a in hook["attempt_log"]] == ["delivered"]
        assert len(env.hook.requests) == 2
        body = orjson.loads(requests[1].body)
        assert body["type"] == "dispute.opened"


async def _webhook_delivered(system: Running) -> bool:
    return any(d["channel"] == "webhook" and d["status"] == "delivered"
               for d in await deliveries(system))


@pytest.mark.parametrize("stored", [
    "http://hooks.example.com:99999/x",            # a port out of range
    "http://hooks.exa\u202emple.com/x",            # a right-to-left override in the host
    "http://" + "a" * 64 + ".example.com/x",       # a label over 63 characters
    "http://169.254.169.254/latest/meta-data",     # stored before the check at the door
], ids=["port-99999", "rtl-override", "64-char-label", "metadata"])
async def test_an_unsafe_stored_url_disables_the_delivery_with_the_reason_never_a_crash(
        request: pytest.FixtureRequest, tmp_path: Path, stored: str) -> None:
    # URLs the PUT now refuses can still be in a database from before the check at the
    # door: the sender refuses them with the reason, once, and never retries.
    async with _env(request, tmp_path) as env:
        runtime = env.system.query_app.state.runtime
        async with runtime.engine.begin() as conn:
            await conn.execute(update(ref_owners).where(ref_owners.c.id == "cm-1")
                               .values(webhook_url=stored))
        await open_dispute(env.system)

        async def settled() -> list[dict[str, Any]]:
            return [d for d in await deliveries(env.system) if d["channel"] == "webhook"
                    and d["status"] != "pending"]
        await until(settled)
        await asyncio.sleep(0.5)  # time for retries, were there any
        [hook] = [d for d in await deliveries(env.system) if d["channel"] == "webhook"]
        assert hook["status"] == "disabled", hook
        assert hook["last_error"].startswith("unsafe webhook URL: "), hook
        assert "internal error" not in hook["last_error"]
        assert hook["attempts"] == 1 and len(hook["attempt_log"]) == 1
        assert env.hook.requests == []


async def test_the_sender_connects_to_the_address_it_checked_with_the_name_as_host(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    # The name resolves to the local receiver once; every later look-up would answer the
    # metadata address (DNS rebinding). One look-up per delivery, checked, connected to.
    async with _env(request, tmp_path, webhook_allowed_networks=[],
                    webhook_allow_loopback=True) as env:
        looked_up: list[str] = []

        async def rebinding(host: str, port: int) -> list[str]:
            looked_up.append(host)
            return ["127.0.0.1"] if len(looked_up) == 1 else ["169.254.169.254"]
        runtime = env.system.query_app.state.runtime
        task = runtime.tasks["notifications"]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        port = env.hook.url.split(":")[2].split("/")[0]
        named = f"http://hooks.rebind.test:{port}/hook"
        put = await env.system.admin.put("/v1/owners/cm-1", json={
            "name": "CM 1", "email": "cm1@vendor.example", "webhook_url": named})
        assert put.status_code == 200, put.text  # a name that does not resolve yet is fine
        await _owner_visible(env.system, named)
        stop = asyncio.Event()
        sender = NotificationSender(runtime.engine, runtime.settings, resolver=rebinding)
        running_task = asyncio.create_task(sender.run(stop.is_set))
        try:
            await open_dispute(env.system)
            [received] = await env.hook.wait_for(1)
            await until(lambda: _webhook_delivered(env.system))
        finally:
            stop.set()
            await running_task
        assert looked_up == ["hooks.rebind.test"]
        assert received.headers["host"] == f"hooks.rebind.test:{port}"
        Webhook(env.secret).verify(received.body, received.headers)


async def test_history_replayed_into_a_new_read_model_is_not_sent_but_can_be(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Max age 0: every delivery looks like old history the moment it is folded (as when a
    # new database replays an old log). Nothing is sent until an admin asks for it.
    async with _env(request, tmp_path, notification_max_age_seconds=0) as env:
        await open_dispute(env.system)

        async def stale() -> bool:
            found = await deliveries(env.system)
            return bool(found) and all(d["status"] == "stale" for d in found)
        await until(stale)
        await asyncio.sleep(0.3)
        assert env.hook.requests == [] and env.mail == []
        [hook] = [d for d in await deliveries(env.system, status="stale")
                  if d["channel"] == "webhook"]
        assert "DEALREG_NOTIFICATION_MAX_AGE_SECONDS" in hook["last_error"]
        queued = await (await env.system.queries("admin")).post(
            f"/v1/deliveries/{hook['id']}/redeliver")
        assert queued.status_code == 202
        [sent] = await env.hook.wait_for(1)
        assert sent.headers["webhook-id"] == hook["id"]


@pytest.mark.parametrize("backend", ["embedded", "distributed"])
async def test_an_idle_sender_claims_only_when_woken_or_due(
        request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> None:
    """With a long poll interval the delivery worker is still prompt (woken by the
    projection worker that queued the delivery, a retry claimed at its due time), and
    idle it issues no claim (issue 16: it queried every 0.2 s with nothing to send)."""
    async with _env(request, tmp_path, backend, notification_poll_seconds=30) as env:
        sender = env.system.query_app.state.runtime.notification_sender
        claims = 0
        claim = sender.claim

        async def counted(limit: int) -> list[dict[str, Any]]:
            nonlocal claims
            claims += 1
            return await claim(limit)
        sender.claim = counted
        env.hook.replies = [Reply(500)]  # the retry is due 0.2 s later
        await open_dispute(env.system)
        requests = await env.hook.wait_for(2, timeout=3.0)
        assert len({r.headers["webhook-id"] for r in requests}) == 1

        async def delivered() -> bool:
            return {d["status"] for d in await deliveries(env.system)} == {"delivered"}
        await until(delivered)
        await asyncio.sleep(0.5)  # the last outcomes' wake-ups
        before = claims
        await asyncio.sleep(2.0)
        assert claims == before, f"{claims - before} claims in 2 s with nothing due"
