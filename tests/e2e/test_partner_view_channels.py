"""A hostile partner's view through the channels beside the REST bodies (session 29): what
reaches it in a webhook's headers, and what a dispute's fields tell it of rivals that
arrived after it. Both backends, two or more partners each; unique markers are searched in
the raw bytes received.

- A partner's `dispute.resolved` webhook carried the W3C trace context of the request that
  caused the resolution: when a rival's withdrawal ended the dispute, the rival's own
  `traceparent` (its trace id) and `tracestate` (free text its systems put there: a
  user, a tenant, a deal) reached the partner (`partner_view.WEBHOOK_HEADERS`).
- A partner in a `possible_duplicate` review read its dispute's `reason` turn into a
  collision's (`tie`) when a rival's registration joined it: the rival's arrival, which
  its timeline hides (`partner_view.dispute`, the reason as of its entry).
- The loser of a three-way tie read the settlement's sentence as "rejected: <its id>,
  another party": a second rival had lost beside it (`partner_view._MEMBER_LIST`).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.integration.projections.system_support import (
    Running,
    registration,
    running,
    submit,
)
from tests.support.receivers import HttpReceiver, Received, http_receiver


@pytest.fixture(scope="module")
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module", params=["embedded", "distributed"])
async def system(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 hook: HttpReceiver) -> AsyncIterator[Running]:
    async with running(request.param, request, tmp_path_factory.mktemp("pchan"),
                       webhook_allowed_networks=["127.0.0.0/8"],
                       notification_schedule_seconds=[0, 0.2, 0.2], notification_jitter=0,
                       notification_poll_seconds=0.05) as system:
        yield system


def fresh(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def _wire(request: Received) -> bytes:
    head = "".join(f"{k}: {v}\n" for k, v in request.headers.items()).encode()
    return head + b"\n" + request.body


async def _resolved_for(hook: HttpReceiver, dispute: str, timeout: float = 20.0) -> Received:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        for request in list(hook.requests):
            body = orjson.loads(request.body)
            if body.get("type") == "dispute.resolved" \
                    and body["data"]["dispute"]["id"] == dispute:
                return request
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no dispute.resolved webhook for {dispute}")


async def test_a_partners_webhook_does_not_carry_the_trace_context_of_a_rivals_request(
        system: Running, hook: HttpReceiver) -> None:
    """A rival's withdrawal ends the tie it was in (`moot`): the partner left in it hears
    `dispute.resolved`. The rival sent its withdrawal with its own trace context; the
    partner's webhook carries none of it (not its trace id, not its `tracestate`)."""
    mine, rival = fresh("p1"), fresh("p2")
    put = await system.admin.put(f"/v1/partners/{mine}", json={
        "name": "Mine", "type": "reseller", "tier": "gold", "status": "active",
        "webhook_url": hook.url})
    assert put.status_code in (200, 201), put.text
    await system.admin.put(f"/v1/partners/{rival}", json={
        "name": "Rival", "type": "reseller", "tier": "gold", "status": "active"})
    domain = f"{fresh('trace')}.com"
    first = await submit(system.admin, registration(mine, domain))
    assert first["status"] == "approved", first
    theirs = await submit((await system.as_("partner", rival))[0], registration(None, domain))
    assert theirs["status"] == "in_review", theirs
    dispute = theirs["dispute_id"]
    await system.settle()
    trace_id = secrets.token_hex(16)
    state = f"rivalprm=MARKER-{uuid.uuid4().hex[:8]}-deal-owner-jane"
    withdrawn = await (await system.as_("partner", rival))[0].post(
        f"/v1/registrations/{theirs['id']}/withdraw",
        headers={"Prefer": "wait=15", "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
                 "tracestate": state})
    assert withdrawn.status_code == 200, withdrawn.text
    received = await _resolved_for(hook, dispute)
    body = orjson.loads(received.body)
    assert [r["id"] for r in body["data"]["registrations"]] == [first["id"]], body
    wire = _wire(received)
    leaked = [s for s in (trace_id, state, "MARKER-", rival, theirs["id"]) if s.encode() in wire]
    assert leaked == [], wire.decode()


def _letters() -> str:
    return uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))


async def test_a_rival_joining_a_partners_review_does_not_change_the_reason_it_reads(
        system: Running) -> None:
    """p2's name-only registration of p1's customer (p1 filed it with a domain) is a
    `possible_duplicate` review (`match.name_only: review`). p3 then registers the same
    name only: a confident collision with p2, so it joins that review, which becomes a
    `tie` for the staff. p1 hears nothing of p3 in its timeline (a rival's joining counts
    rivals); its dispute's `reason` told it all the same, in the read and the list. p1
    reads the reason its registration entered with."""
    p1, p2, p3 = fresh("p1"), fresh("p2"), fresh("p3")
    for partner in (p1, p2, p3):
        await system.admin.put(f"/v1/partners/{partner}", json={
            "name": "P", "type": "reseller", "tier": "gold", "status": "active"})
    name = f"Quorvex {_letters().title()} Corp"
    held = await submit(system.admin, registration(p1, f"{fresh('quorvex')}.com", name=name))
    assert held["status"] == "approved", held
    name_only = {**registration(None, "x.com", name=name),
                 "account": {"name": name, "country": "US"}}
    review = await submit((await system.as_("partner", p2))[0], name_only)
    assert (review["status"], review["decision"]["rule"]) == (
        "in_review", "possible_duplicate"), review
    dispute = review["dispute_id"]
    await system.settle()
    queries = await system.queries("partner", p1)
    before = (await queries.get(f"/v1/disputes/{dispute}")).json()
    assert before["reason"] == "possible_duplicate", before
    joined = await submit((await system.as_("partner", p3))[0], name_only)
    assert joined["dispute_id"] == dispute, joined
    await system.settle()
    staff = (await (await system.queries("channel_manager", "cm")).get(
        f"/v1/disputes/{dispute}")).json()
    assert staff["reason"] == "tie", staff  # the staff read the collision
    after = (await queries.get(f"/v1/disputes/{dispute}")).json()
    listed = [d for d in (await queries.get("/v1/disputes")).json()["items"]
              if d["id"] == dispute]
    assert (after["reason"], [d["reason"] for d in listed]) == (
        "possible_duplicate", ["possible_duplicate"]), (after, listed)
    assert after == before, (before, after)


async def _settled_reads(system: Running, partners: list[str], domain: str
                         ) -> tuple[list[dict[str, object]], str]:
    """Each of `partners` registers `domain` in turn (the first is approved, the others
    tie with it); the dispute's owner awards the first. Returns what the second partner
    reads of the settlement (its dispute, its timeline's `dispute.resolved` entry, its
    webhook body) with its own ids written as placeholders, and the dispute's id."""
    regs = [await submit(system.admin, registration(partner, domain)) for partner in partners]
    assert regs[0]["status"] == "approved", regs[0]
    dispute = regs[1]["dispute_id"]
    assert dispute and all(r["dispute_id"] == dispute for r in regs[1:]), regs
    await system.settle()
    staff = (await (await system.queries("channel_manager", "cm")).get(
        f"/v1/disputes/{dispute}")).json()
    owner = (await system.as_("owner", staff["owner_id"]))[0]
    settled = await owner.post(f"/v1/disputes/{dispute}/resolve", headers={"Prefer": "wait=15"},
                               json={"outcome": "award", "registration_id": regs[0]["id"]})
    assert settled.status_code == 200, settled.text
    await system.settle()
    queries = await system.queries("partner", partners[1])
    mine = regs[1]["id"]
    read = (await queries.get(f"/v1/disputes/{dispute}")).json()
    timeline = (await queries.get(f"/v1/registrations/{mine}/timeline")).json()["entries"]
    entry = next(e for e in timeline if e["type"] == "dealreg.dispute.resolved.v1")

    def placeholders(text: str) -> str:
        return text.replace(mine, "<mine>").replace(dispute, "<dispute>")

    return [{"read": placeholders(read["resolution"]["explanation"]),
             "timeline": placeholders(entry["data"]["explanation"])}], dispute


async def test_a_settlements_sentence_does_not_tell_a_partner_how_many_rivals_it_had(
        system: Running) -> None:
    """A settlement's sentence lists the approved and the rejected members ("approved:
    reg_a; rejected: reg_b, reg_c"). A partner reads another's id as "another party", a run
    of them as one: so the loser p2 of a three-way tie read "rejected: <its id>, another
    party", and knew that a third registration (p3's, which joined after it and which
    nothing else shows it) had lost beside it. It reads what it reads in a two-way tie."""
    for partner in (p1 := fresh("p1"), p2 := fresh("p2"), p3 := fresh("p3"),
                    q1 := fresh("q1"), q2 := fresh("q2")):
        await system.admin.put(f"/v1/partners/{partner}", json={
            "name": "P", "type": "reseller", "tier": "gold", "status": "active"})
    three, _ = await _settled_reads(system, [p1, p2, p3], f"{fresh('three')}.com")
    two, _ = await _settled_reads(system, [q1, q2], f"{fresh('two')}.com")
    assert three == two, (three, two)
    assert "<mine>" in three[0]["read"], three  # its own result it reads
