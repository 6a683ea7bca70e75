"""The authorization and redaction matrix, generated from the OpenAPI document (issue 13).

Every operation of `/openapi.json` x every role (no key, admin, integration, channel
manager, a partner, another partner, a rep, the assigned escalation owner, another owner) x
the caller's own objects and someone else's is requested against the real app (embedded
backend, every component in one process, real local webhook receivers). Two things are
asserted:

1. the status of every cell is the one in `TABLE` below. An operation in `/openapi.json`
   without a row fails the test, so a new endpoint cannot skip the matrix;
2. nothing a partner receives (response bodies and headers of every cell, and every webhook
   delivered to it) contains another party's registration id, claim id or partner id, the
   external reference of another partner's registration (seeded as `MARKER-<partner>-n`),
   another partner's dispute reason (`MARKER-REASON-...`), an internal resolution note
   (`MARKER-NOTE-...`), a resolution's `partner_note` (`MARKER-PNOTE-...`) of a dispute it
   is not party to, or the id of such a dispute. The raw bytes are
   searched; a value the caller itself sent in that request (an echo) is not a leak.
   Callers without a key must receive none of it at all.

World: partners P1, P2, P3 (and P4, which has no key), rep R1, owners cm-1 (level 1 of the
policy, so assigned every new dispute) and cm-2. The policy has a zero tie window, so of
two registrations of one customer the later is rejected (`first_submitted`) and may be
contested, and extensions are accepted any time while approved. Objects that an admitted
call would change are made fresh for its cell.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from dealreg.app import create_app
from dealreg.runtime import Component
from shared.api.auth import Authenticator
from shared.settings import Settings
from tests.support.receivers import HttpReceiver, Received
from tests.support.servers import ServerHandle, create_database

ADMIN = "matrix-admin-token"

P1, P2, P3, P4 = "pmk-one", "pmk-two", "pmk-three", "pmk-four"
REP, OTHER_REP = "repmk-one", "repmk-two"
OWNER, OTHER_OWNER = "cm-1", "cm-2"

# role name → (role of the key, subject); "anonymous" sends no key, "admin" the admin token.
ROLES: dict[str, tuple[str, str | None]] = {
    "anonymous": ("", None),
    "admin": ("admin", None),
    "integration": ("integration", None),
    "channel_manager": ("channel_manager", None),
    "partner": ("partner", P1),
    "other_partner": ("partner", P2),
    "rep": ("rep", REP),
    "owner": ("owner", OWNER),
    "other_owner": ("owner", OTHER_OWNER),
}
PARTNER_ROLES = {"partner": P1, "other_partner": P2}
OWN, OTHER, ANY, CLAIM = "own", "other", "-", "claim"


# --- the expected statuses ------------------------------------------------------------------

def cells(default: int, **statuses: int) -> dict[str, int]:
    """Every role's status: `default` unless named; no key is always 401."""
    table = {role: default for role in ROLES}
    table.update(statuses)
    table["anonymous"] = 401
    return table


READ_ALL = cells(200)


def admin_only(ok: int) -> dict[str, int]:
    return cells(403, admin=ok)


def lifecycle(ok: int, *admitted: str) -> dict[str, dict[str, int]]:
    """A command on one registration: on P1's, the admitted roles act and P2 (a
    partner naming another partner's registration) gets 404; on P3's, P1 gets 404 too."""
    own = cells(403, other_partner=404, **{r: ok for r in admitted})
    return {OWN: own, OTHER: {**own, "partner": 404}}


TABLE: dict[str, dict[str, dict[str, int]]] = {
    # commands
    "POST /v1/registrations": {
        OWN: cells(403, admin=201, integration=201, partner=201),   # for P1
        OTHER: cells(403, admin=201, integration=201),              # for P3
    },
    "POST /v1/registrations/{registration_id}/withdraw": lifecycle(
        202, "admin", "integration", "partner"),
    "POST /v1/registrations/{registration_id}/extend": lifecycle(
        202, "admin", "integration", "partner"),
    "POST /v1/registrations/{registration_id}/close": {
        OWN: cells(403, admin=202, integration=202),
        OTHER: cells(403, admin=202, integration=202),
    },
    "POST /v1/registrations/{registration_id}/disputes": lifecycle(
        201, "admin", "integration", "partner"),
    "POST /v1/claims": {
        OWN: cells(403, admin=201, integration=201, rep=201),       # for the rep itself
        OTHER: cells(403, admin=201, integration=201),              # for another rep
    },
    # A claim (OWN: the rep's, OTHER: another rep's) given up; to another rep it does not
    # exist.
    "POST /v1/claims/{claim_id}/release": {
        OWN: cells(403, admin=202, integration=202, rep=202),
        OTHER: cells(403, admin=202, integration=202, rep=404),
    },
    # The assigned owner acts; to an owner it was never assigned to, the dispute does not
    # exist (as when read).
    "POST /v1/disputes/{dispute_id}/acknowledge": {
        OWN: cells(403, admin=202, owner=202, other_owner=404),     # P1 is a party
        OTHER: cells(403, admin=202, owner=202, other_owner=404),   # P1 is not
    },
    "POST /v1/disputes/{dispute_id}/resolve": {
        OWN: cells(403, admin=202, owner=202, other_owner=404),
        OTHER: cells(403, admin=202, owner=202, other_owner=404),
    },
    "POST /v1/events": {ANY: cells(403, admin=202, integration=202)},
    # keys and reference data
    "POST /v1/api-keys": {ANY: admin_only(201)},
    "DELETE /v1/api-keys/{key_id}": {OWN: admin_only(204), OTHER: admin_only(204)},
    "PUT /v1/partners/{partner_id}": {
        OWN: cells(403, admin=200, integration=200), OTHER: cells(403, admin=200,
                                                                  integration=200)},
    "GET /v1/partners/{partner_id}": {   # another partner does not exist for a partner
        OWN: cells(403, admin=200, integration=200, channel_manager=200, owner=200,
                   other_owner=200, partner=200, other_partner=404),
        OTHER: cells(403, admin=200, integration=200, channel_manager=200, owner=200,
                     other_owner=200, partner=404, other_partner=404),
    },
    "PUT /v1/owners/{owner_id}": {OWN: admin_only(200), OTHER: admin_only(200)},
    "GET /v1/owners/{owner_id}": {OWN: admin_only(200), OTHER: admin_only(200)},
    "GET /v1/policy": {ANY: READ_ALL},
    "PUT /v1/policy": {ANY: admin_only(200)},  # the current document again: no new version
    "GET /v1/policy/{version}": {OWN: READ_ALL, OTHER: cells(404)},
    # Directory lists (no secrets in any): partners for the vendor's roles, owners for
    # admins and channel managers, keys for admins; policy versions and diffs for all.
    "GET /v1/partners": {ANY: cells(403, admin=200, integration=200, channel_manager=200)},
    "GET /v1/owners": {ANY: cells(403, admin=200, channel_manager=200)},
    "GET /v1/api-keys": {ANY: admin_only(200)},
    "GET /v1/policy/versions": {ANY: READ_ALL},
    "GET /v1/policy/diff": {ANY: READ_ALL},
    # queries
    # Lists filtered by partner (OWN: P1, OTHER: P3): a partner lists only its own.
    "GET /v1/registrations": {
        OWN: cells(200, other_partner=403), OTHER: cells(200, partner=403, other_partner=403)},
    # A registration (OWN: P1's, OTHER: P3's) or a direct claim read by its id (a claim
    # is not a registration; its timeline is served).
    "GET /v1/registrations/{registration_id}": {
        OWN: cells(200, other_partner=404), OTHER: cells(200, partner=404, other_partner=404),
        CLAIM: cells(404)},
    "GET /v1/registrations/{registration_id}/timeline": {
        OWN: cells(200, other_partner=404), OTHER: cells(200, partner=404, other_partner=404),
        CLAIM: cells(200, partner=404, other_partner=404)},
    "GET /v1/ownership": {OWN: READ_ALL, OTHER: READ_ALL},
    # Queues (OWN: cm-1's, OTHER: cm-2's): an owner lists only its own; parties see theirs.
    "GET /v1/disputes": {OWN: cells(200, other_owner=403), OTHER: cells(200, owner=403)},
    # Parties (P1 and P2 in the own one) and the owners it was assigned to read a dispute;
    # to everyone else of those roles it does not exist.
    "GET /v1/disputes/{dispute_id}": {
        OWN: cells(200, rep=404, other_owner=404),
        OTHER: cells(200, partner=404, other_partner=404, rep=404, other_owner=404)},
    "GET /v1/pipeline": {
        OWN: cells(200, other_partner=403), OTHER: cells(200, partner=403, other_partner=403)},
    "GET /v1/metrics/program": {ANY: cells(403, admin=200, integration=200,
                                            channel_manager=200, owner=200, other_owner=200)},
    # The program leader's series: channel managers and admins only.
    "GET /v1/program/metrics": {ANY: cells(403, admin=200, channel_manager=200)},
    "GET /v1/program/metrics/{series}": {ANY: cells(403, admin=200, channel_manager=200)},
    # notifications
    "GET /v1/owners/{owner_id}/deliveries": {
        OWN: cells(403, admin=200, owner=200), OTHER: cells(403, admin=200, other_owner=200)},
    # A partner's log (OWN: P1's, OTHER: P3's): another partner's does not exist for it.
    "GET /v1/partners/{partner_id}/deliveries": {
        OWN: cells(403, admin=200, partner=200, other_partner=404),
        OTHER: cells(403, admin=200, partner=404, other_partner=404)},
    "POST /v1/deliveries/{delivery_id}/redeliver": {
        OWN: admin_only(202), OTHER: admin_only(202)},
    # operations (open; the detail of /readyz needs the ops token, see test_auth_first)
    "GET /healthz": {ANY: {role: 200 for role in ROLES}},
    "GET /readyz": {ANY: {role: 200 for role in ROLES}},
    # Not in the document (`include_in_schema=False`), so listed in UNDOCUMENTED: the ops
    # token or an admin credential (required by default).
    "GET /metrics": {ANY: cells(401, admin=200)},
}
UNDOCUMENTED = {"GET /metrics"}


# --- the deployment ----------------------------------------------------------------------------

class Deployment:
    """The running service: one app (embedded) or the registration and projections apps
    (distributed). Requests go to the app whose OpenAPI document has the operation."""

    def __init__(self, apps: dict[str, FastAPI], clients: dict[str, httpx.AsyncClient]
                 ) -> None:
        self.apps = apps
        self.clients = clients
        self.routes: list[tuple[str, re.Pattern[str], str]] = []
        self.paths: dict[str, Any] = {}

    async def load(self) -> None:
        """Reads `/openapi.json` of every app: the operations, and where each is served."""
        for name, client in self.clients.items():
            document = (await client.get("/openapi.json")).json()
            for path, item in document["paths"].items():
                pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
                self.routes += [(method.upper(), pattern, name) for method in item]
                self.paths.setdefault(path, {}).update(item)

    @property
    def engine(self) -> Any:
        return self.apps["projections"].state.runtime.engine

    @property
    def authenticator(self) -> Authenticator:
        authenticator: Authenticator = self.apps["registration"].state.authenticator
        return authenticator

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        name = next((n for m, pattern, n in self.routes
                     if m == method.upper() and pattern.match(path)), "projections")
        return await self.clients[name].request(method, path, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def as_(self, role: str, subject: str | None) -> dict[str, str]:
        if role == "admin":
            return {"Authorization": f"Bearer {ADMIN}"}
        minted = await self.authenticator.mint(role, subject, f"matrix {role}")  # type: ignore[arg-type]
        return {"Authorization": f"Bearer {minted.token}"}


@asynccontextmanager
async def deploy(backend: str, request: pytest.FixtureRequest, directory: Path
                 ) -> AsyncIterator[Deployment]:
    common: dict[str, Any] = {
        "admin_token": ADMIN, "webhook_allowed_networks": ["127.0.0.0/8"],
        "notification_schedule_seconds": [0, 0.2, 0.2], "notification_jitter": 0,
        "notification_poll_seconds": 0.05, "log_level": "WARNING"}
    async with AsyncExitStack() as stack:
        if backend == "embedded":
            settings = Settings(backend="embedded", data_dir=directory, **common)
            layout: dict[str, frozenset[Component] | None] = {"projections": None}
        else:
            kafka: ServerHandle = request.getfixturevalue("kafka_server")
            postgres: ServerHandle = request.getfixturevalue("postgres_server")
            unique = uuid.uuid4().hex[:10]
            settings = Settings(
                backend="distributed", kafka_bootstrap_servers=kafka.url,
                database_url=await create_database(postgres.url, f"matrix_{unique}"),
                topic_prefix=f"matrix-{unique}", topic_partitions=3,
                adjudicator_group=f"adj-{unique}", projections_group=f"proj-{unique}",
                **common)
            layout = {name: frozenset({name}) for name in ("projections", "adjudication",
                                                            "registration")}
        apps: dict[str, FastAPI] = {}
        clients: dict[str, httpx.AsyncClient] = {}
        for name, components in layout.items():
            app = create_app(settings, components) if components else create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            apps[name] = app
            clients[name] = await stack.enter_async_context(httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://dealreg",
                headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30))
        if backend == "embedded":
            apps["registration"], clients["registration"] = apps["projections"], \
                clients["projections"]
        apps.pop("adjudication", None)
        clients.pop("adjudication", None)
        deployment = Deployment(apps, clients)
        await deployment.load()
        yield deployment


# --- the world --------------------------------------------------------------------------------

@dataclass
class World:
    deployment: Deployment
    hooks: dict[str, HttpReceiver]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    owner_of: dict[str, str] = field(default_factory=dict)         # registration → partner
    claims: set[str] = field(default_factory=set)
    dispute_parties: dict[str, set[str]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)              # marker → partner
    reasons: dict[str, str] = field(default_factory=dict)           # marker → partner
    notes: set[str] = field(default_factory=set)
    partner_notes: dict[str, set[str]] = field(default_factory=dict)  # marker → its readers
    named: dict[str, str] = field(default_factory=dict)             # well-known objects
    policy: dict[str, Any] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def admin(self) -> Deployment:
        return self.deployment

    def n(self) -> int:
        return next(self.counter)

    async def register(self, partner: str, domain: str | None = None) -> dict[str, Any]:
        domain = domain or fresh_domain()
        ref = f"MARKER-{partner}-{self.n()}"
        self.refs[ref] = partner
        response = await self.admin.post("/v1/registrations", headers={"Prefer": "wait=15"},
                                         json=body_for(partner, domain, ref))
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        self.owner_of[created["id"]] = partner
        return created

    async def contest(self, registration_id: str) -> str:
        """Files a dispute for the (rejected) registration's partner; the dispute id."""
        partner = self.owner_of[registration_id]
        reason = f"MARKER-REASON-{partner}-{self.n()}"
        self.reasons[reason] = partner
        response = await self.admin.post(f"/v1/registrations/{registration_id}/disputes",
                                         headers={"Prefer": "wait=15"},
                                         json={"reason": reason})
        assert response.status_code == 201, response.text
        return await self.learn_dispute(registration_id)

    async def learn_dispute(self, registration_id: str) -> str:
        for _ in range(400):
            row = await self.admin.get(f"/v1/registrations/{registration_id}")
            dispute = row.json().get("dispute_id")
            if dispute:
                seen = await self.admin.get(f"/v1/disputes/{dispute}")
                if seen.status_code == 200:
                    ids = seen.json()["registration_ids"]
                    self.dispute_parties[dispute] = {self.owner_of[i] for i in ids
                                                     if i in self.owner_of}
                    return str(dispute)
            await asyncio.sleep(0.025)
        raise TimeoutError(f"no dispute for {registration_id}")

    async def rivalry(self, first: str, second: str) -> tuple[str, str, str]:
        """`first` holds a fresh customer, `second` is rejected and contests: the ids of
        both registrations and of the dispute (assigned to cm-1)."""
        domain = fresh_domain()
        won = await self.register(first, domain)
        lost = await self.register(second, domain)
        assert lost["status"] == "rejected", lost
        return won["id"], lost["id"], await self.contest(lost["id"])

    def resolution_notes(self, dispute: str) -> tuple[str, str]:
        """An internal note (no partner may read it) and a note for the involved partners
        (only they may)."""
        note, partner_note = f"MARKER-NOTE-{self.n()}", f"MARKER-PNOTE-{self.n()}"
        self.notes.add(note)
        self.partner_notes[partner_note] = set(self.dispute_parties[dispute])
        return note, partner_note

    async def claim(self, rep: str, domain: str | None = None) -> str:
        response = await self.admin.post("/v1/claims", headers={"Prefer": "wait=15"}, json={
            "kind": "named_account", "rep_id": rep,
            "account": {"name": f"Claimed {self.n()}", "domain": domain or fresh_domain(),
                        "country": "US"}})
        assert response.status_code == 201, response.text
        claim_id = str(response.json()["id"])
        self.claims.add(claim_id)
        return claim_id


def fresh_domain() -> str:
    return f"mk{uuid.uuid4().hex[:12]}.com"


def body_for(partner: str | None, domain: str, ref: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account": {"name": f"{domain.split('.')[0].title()} Corp", "domain": domain,
                    "country": "US"},
        "opportunity": {"title": "Rollout", "products": ["analytics"],
                        "amount": {"value": "1000.00", "currency": "USD"}},
        "motion": "resell", "external_ref": ref,
    }
    if partner is not None:
        body["partner_id"] = partner
    return body


def partner_body(hook: HttpReceiver | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Marker Partner", "type": "reseller", "tier": "gold",
                            "status": "active"}
    if hook is not None:
        body["webhook_url"] = hook.url
    return body


async def build_world(deployment: Deployment, hooks: dict[str, HttpReceiver]) -> World:
    world = World(deployment, hooks)
    # A zero tie window (the later of two is rejected and may contest) and extensions at any
    # time while approved (so a fresh registration can be extended).
    policy = {"tie_window": "PT0S", "extension": {"window": None}}
    put = await world.admin.put("/v1/policy", json=policy)
    assert put.status_code == 201, put.text
    world.policy = policy
    for partner in (P1, P2, P3, P4):
        put = await world.admin.put(f"/v1/partners/{partner}",
                                    json=partner_body(hooks.get(partner)))
        assert put.status_code in (200, 201), put.text
    for owner in (OWNER, OTHER_OWNER):
        put = await world.admin.put(f"/v1/owners/{owner}", json=owner_body(world, owner))
        assert put.status_code in (200, 201), put.text
    for role, (kind, subject) in ROLES.items():
        if role == "anonymous":
            world.headers[role] = {"Authorization": ""}
        else:
            world.headers[role] = await deployment.as_(kind, subject)

    # P1 holds a customer; P2 and P3 come later, are rejected, and P2 contests: the issue's
    # observed case (the contest's answer listed the rivals' registrations).
    domain = fresh_domain()
    r1 = await world.register(P1, domain)
    r2 = await world.register(P2, domain)
    r3 = await world.register(P3, domain)
    assert r2["status"] == "rejected" and r3["status"] == "rejected", (r2, r3)
    d1 = await world.contest(r2["id"])
    # A contest P1 and P2 are not part of: P3 holds, P4 contests.
    r5, r6, d2 = await world.rivalry(P3, P4)
    # A direct claim beats P1 on another customer: P1 sees the claim only as a rival.
    claimed = fresh_domain()
    claim = await world.claim(REP, claimed)
    beaten = await world.register(P1, claimed)
    assert beaten["status"] == "rejected", beaten
    world.named.update(r1=r1["id"], r2=r2["id"], r3=r3["id"], d1=d1, r5=r5, r6=r6, d2=d2,
                       beaten=beaten["id"], claim=claim, domain_own=domain, domain_other="")
    world.named["domain_other"] = (await world.admin.get(f"/v1/registrations/{r5}")
                                   ).json()["account"]["domain"]
    # The owner settles the first contest with an internal note: every involved partner
    # hears the outcome by webhook, none may read the note.
    note, partner_note = world.resolution_notes(d1)
    resolved = await world.admin.post(f"/v1/disputes/{d1}/resolve",
                                      headers={"Prefer": "wait=15"},
                                      json={"outcome": "award", "registration_id": r1["id"],
                                            "note": note, "partner_note": partner_note})
    assert resolved.status_code in (200, 202), resolved.text
    return world


def owner_body(world: World, owner: str) -> dict[str, Any]:
    hook = world.hooks.get(owner)
    body: dict[str, Any] = {"name": f"Owner {owner}"}
    if hook is not None:
        body["webhook_url"] = hook.url
    return body


# --- one request per cell -----------------------------------------------------------------

@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Builder = Callable[[World, str, str], Awaitable[Call]]


def target_partner(target: str) -> str:
    return P1 if target == OWN else P3


async def _register(world: World, role: str, target: str) -> Call:
    # The customer is already held by another partner, so the answer carries evidence
    # about a rival: it must reach a partner redacted.
    domain = fresh_domain()
    await world.register(P2 if target == OWN else P1, domain)
    ref = f"MARKER-{target_partner(target)}-{world.n()}"
    world.refs[ref] = target_partner(target)
    return Call("POST", "/v1/registrations", json=body_for(target_partner(target), domain, ref),
                headers={"Prefer": "wait=15"})


async def _lifecycle(world: World, target: str, action: str, body: Any = None) -> Call:
    created = await world.register(target_partner(target))
    return Call("POST", f"/v1/registrations/{created['id']}/{action}", json=body)


async def _withdraw(world: World, role: str, target: str) -> Call:
    return await _lifecycle(world, target, "withdraw")


async def _extend(world: World, role: str, target: str) -> Call:
    return await _lifecycle(world, target, "extend")


async def _close(world: World, role: str, target: str) -> Call:
    return await _lifecycle(world, target, "close", {"outcome": "lost"})


async def _file_dispute(world: World, role: str, target: str) -> Call:
    # The target partner was rejected because another partner holds the customer.
    domain = fresh_domain()
    await world.register(P2 if target == OWN else P1, domain)
    lost = await world.register(target_partner(target), domain)
    reason = f"MARKER-REASON-{target_partner(target)}-{world.n()}"
    world.reasons[reason] = target_partner(target)
    call = Call("POST", f"/v1/registrations/{lost['id']}/disputes",
                json={"reason": reason}, headers={"Prefer": "wait=15"})
    return call


async def _claim(world: World, role: str, target: str) -> Call:
    return Call("POST", "/v1/claims", json={
        "kind": "opportunity", "rep_id": REP if target == OWN else OTHER_REP,
        "products": ["analytics"],
        "account": {"name": f"Claim {world.n()}", "domain": fresh_domain(), "country": "US"}})


async def _release(world: World, role: str, target: str) -> Call:
    claim = await world.claim(REP if target == OWN else OTHER_REP)
    return Call("POST", f"/v1/claims/{claim}/release")


async def _contested(world: World, target: str) -> str:
    # OWN: P1 holds and P2 contests; OTHER: P3 holds and P4 contests.
    return (await world.rivalry(*((P1, P2) if target == OWN else (P3, P4))))[2]


async def _acknowledge(world: World, role: str, target: str) -> Call:
    return Call("POST", f"/v1/disputes/{await _contested(world, target)}/acknowledge")


async def _resolve(world: World, role: str, target: str) -> Call:
    dispute = await _contested(world, target)
    note, partner_note = world.resolution_notes(dispute)
    return Call("POST", f"/v1/disputes/{dispute}/resolve", json={
        "outcome": "reject_all", "note": note, "partner_note": partner_note})


async def _events(world: World, role: str, target: str) -> Call:
    return Call("POST", "/v1/events", headers={"content-type": "application/cloudevents+json"},
                json={"specversion": "1.0", "id": f"matrix-{world.n()}", "source": "urn:matrix",
                      "type": "dealreg.claim.filed.v1",
                      "data": {"kind": "named_account", "rep_id": REP,
                               "account": {"domain": fresh_domain()}}})


async def _api_key(world: World, role: str, target: str) -> Call:
    return Call("POST", "/v1/api-keys", json={"role": "channel_manager", "name": "matrix"})


async def _revoke(world: World, role: str, target: str) -> Call:
    minted = await world.deployment.authenticator.mint("partner", target_partner(target),
                                                       "matrix victim")
    return Call("DELETE", f"/v1/api-keys/{minted.id}")


async def _put_partner(world: World, role: str, target: str) -> Call:
    partner = target_partner(target)
    return Call("PUT", f"/v1/partners/{partner}", json=partner_body(world.hooks.get(partner)))


async def _get_partner(world: World, role: str, target: str) -> Call:
    return Call("GET", f"/v1/partners/{target_partner(target)}")


async def _put_owner(world: World, role: str, target: str) -> Call:
    owner = OWNER if target == OWN else OTHER_OWNER
    return Call("PUT", f"/v1/owners/{owner}", json=owner_body(world, owner))


async def _get_owner(world: World, role: str, target: str) -> Call:
    return Call("GET", f"/v1/owners/{OWNER if target == OWN else OTHER_OWNER}")


def simple(path: str, **params: str) -> Builder:
    async def build(world: World, role: str, target: str) -> Call:
        return Call("GET", path, params=dict(params))
    return build


async def _put_policy(world: World, role: str, target: str) -> Call:
    return Call("PUT", "/v1/policy", json=world.policy)


async def _policy_version(world: World, role: str, target: str) -> Call:
    return Call("GET", f"/v1/policy/{1 if target == OWN else 99999}")


def _registration(world: World, target: str) -> str:
    return world.named[{OWN: "r1", OTHER: "r5", CLAIM: "claim"}[target]]


async def _list_registrations(world: World, role: str, target: str) -> Call:
    return Call("GET", "/v1/registrations", params={"partner_id": target_partner(target)})


async def _pipeline(world: World, role: str, target: str) -> Call:
    return Call("GET", "/v1/pipeline", params={"group_by": "partner",
                                               "partner_id": target_partner(target)})


async def _list_disputes(world: World, role: str, target: str) -> Call:
    return Call("GET", "/v1/disputes",
                params={"owner_id": OWNER if target == OWN else OTHER_OWNER})


async def _read_registration(world: World, role: str, target: str) -> Call:
    return Call("GET", f"/v1/registrations/{_registration(world, target)}")


async def _timeline(world: World, role: str, target: str) -> Call:
    return Call("GET", f"/v1/registrations/{_registration(world, target)}/timeline")


async def _ownership(world: World, role: str, target: str) -> Call:
    return Call("GET", "/v1/ownership", params={
        "domain": world.named["domain_own" if target == OWN else "domain_other"]})


async def _read_dispute(world: World, role: str, target: str) -> Call:
    return Call("GET", f"/v1/disputes/{world.named['d1' if target == OWN else 'd2']}")


async def _deliveries(world: World, role: str, target: str) -> Call:
    return Call("GET", f"/v1/owners/{OWNER if target == OWN else OTHER_OWNER}/deliveries")


async def _partner_deliveries(world: World, role: str, target: str) -> Call:
    return Call("GET", f"/v1/partners/{target_partner(target)}/deliveries")


async def _redeliver(world: World, role: str, target: str) -> Call:
    kind, recipient = ("owner", OWNER) if target == OWN else ("partner", P1)
    async with world.deployment.engine.connect() as conn:
        delivery = (await conn.execute(text(
            "SELECT id FROM notification_outbox WHERE recipient_kind = :k AND "
            "recipient_id = :r ORDER BY created_at LIMIT 1"), {"k": kind, "r": recipient})
        ).scalar_one()
    return Call("POST", f"/v1/deliveries/{delivery}/redeliver")


BUILDERS: dict[str, Builder] = {
    "POST /v1/registrations": _register,
    "POST /v1/registrations/{registration_id}/withdraw": _withdraw,
    "POST /v1/registrations/{registration_id}/extend": _extend,
    "POST /v1/registrations/{registration_id}/close": _close,
    "POST /v1/registrations/{registration_id}/disputes": _file_dispute,
    "POST /v1/claims": _claim,
    "POST /v1/claims/{claim_id}/release": _release,
    "POST /v1/disputes/{dispute_id}/acknowledge": _acknowledge,
    "POST /v1/disputes/{dispute_id}/resolve": _resolve,
    "POST /v1/events": _events,
    "POST /v1/api-keys": _api_key,
    "DELETE /v1/api-keys/{key_id}": _revoke,
    "PUT /v1/partners/{partner_id}": _put_partner,
    "GET /v1/partners/{partner_id}": _get_partner,
    "PUT /v1/owners/{owner_id}": _put_owner,
    "GET /v1/owners/{owner_id}": _get_owner,
    "GET /v1/policy": simple("/v1/policy"),
    "PUT /v1/policy": _put_policy,
    "GET /v1/policy/{version}": _policy_version,
    "GET /v1/partners": simple("/v1/partners"),
    "GET /v1/owners": simple("/v1/owners"),
    "GET /v1/api-keys": simple("/v1/api-keys", include_revoked="true"),
    "GET /v1/policy/versions": simple("/v1/policy/versions"),
    "GET /v1/policy/diff": simple("/v1/policy/diff"),
    "GET /v1/registrations": _list_registrations,
    "GET /v1/registrations/{registration_id}": _read_registration,
    "GET /v1/registrations/{registration_id}/timeline": _timeline,
    "GET /v1/ownership": _ownership,
    "GET /v1/disputes": _list_disputes,
    "GET /v1/disputes/{dispute_id}": _read_dispute,
    "GET /v1/pipeline": _pipeline,
    "GET /v1/metrics/program": simple("/v1/metrics/program"),
    "GET /v1/program/metrics": simple("/v1/program/metrics"),
    "GET /v1/program/metrics/{series}": simple("/v1/program/metrics/pipeline_by_partner",
                                               format="csv"),
    "GET /v1/owners/{owner_id}/deliveries": _deliveries,
    "GET /v1/partners/{partner_id}/deliveries": _partner_deliveries,
    "POST /v1/deliveries/{delivery_id}/redeliver": _redeliver,
    "GET /healthz": simple("/healthz"),
    "GET /readyz": simple("/readyz"),
    "GET /metrics": simple("/metrics"),
}


# --- running the matrix ------------------------------------------------------------------

@dataclass
class Cell:
    operation: str
    role: str
    target: str
    expected: int
    status: int
    sent: bytes
    received: bytes


@dataclass
class Run:
    world: World
    operations: set[str]
    cells: list[Cell]
    webhooks: dict[str, list[bytes]]


def forbidden_for(world: World, partner: str | None) -> dict[str, str]:
    """marker → why partner `partner` (None: a caller without a key) must never receive
    it."""
    out: dict[str, str] = {}
    for rid, owner in world.owner_of.items():
        if owner != partner:
            out[rid] = f"registration of {owner}"
    for cid in world.claims:
        out[cid] = "claim id"
    for other in (P1, P2, P3, P4):
        if other != partner:
            out[other] = "partner id"
    for ref, owner in world.refs.items():
        if owner != partner:
            out[ref] = f"external_ref of {owner}"
    for reason, owner in world.reasons.items():
        if owner != partner:
            out[reason] = f"dispute reason of {owner}"
    for note in world.notes:
        out[note] = "internal resolution note"
    for note, readers in world.partner_notes.items():
        if partner not in readers:
            out[note] = f"partner note for {sorted(readers)}"
    for dispute, parties in world.dispute_parties.items():
        if partner not in parties:
            out[dispute] = f"dispute of {sorted(parties)}"
    return out


def leaks(world: World, partner: str | None, received: bytes, sent: bytes = b"") -> list[str]:
    found = []
    for marker, why in forbidden_for(world, partner).items():
        needle = marker.encode()
        if needle in received and needle not in sent:
            found.append(f"{marker} ({why})")
    return found


def _wire(response: httpx.Response) -> bytes:
    head = b"".join(k + b": " + v + b"\n" for k, v in response.headers.raw)
    return head + b"\n" + response.content


async def run_matrix(world: World) -> Run:
    operations = {f"{method.upper()} {path}" for path, item in world.deployment.paths.items()
                  for method in item} | UNDOCUMENTED
    done: list[Cell] = []
    for operation in sorted(operations & TABLE.keys() & BUILDERS.keys()):
        for target, statuses in TABLE[operation].items():
            for role in ROLES:
                call = await BUILDERS[operation](world, role, target)
                headers = {**call.headers, **world.headers[role]}
                response = await world.admin.request(call.method, call.path, params=call.params,
                                                     json=call.json, headers=headers)
                sent = (call.path + str(call.params)).encode() + orjson.dumps(call.json)
                done.append(Cell(operation, role, target, statuses[role],
                                 response.status_code, sent, _wire(response)))
    await _drain_deliveries(world)
    webhooks = {partner: [_received(r) for r in hook.requests]
                for partner, hook in world.hooks.items()}
    return Run(world, operations, done, webhooks)


def body_of(wire: bytes) -> bytes:
    return wire.partition(b"\n\n")[2]


def _received(request: Received) -> bytes:
    head = "".join(f"{k}: {v}\n" for k, v in request.headers.items()).encode()
    return head + b"\n" + request.body


async def _drain_deliveries(world: World) -> None:
    engine = world.deployment.engine
    for _ in range(600):
        async with engine.connect() as conn:
            pending = (await conn.execute(text(
                "SELECT count(*) FROM notification_outbox WHERE status = 'pending'")
            )).scalar_one()
        if not pending:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("deliveries still pending")


@pytest.fixture(scope="module", params=["embedded", "distributed"])
async def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[Run]:
    hooks = {name: HttpReceiver() for name in (P1, P2, P3, OWNER)}
    for hook in hooks.values():
        await hook.start()
    try:
        async with deploy(request.param, request, tmp_path_factory.mktemp("matrix")
                          ) as deployment:
            world = await build_world(deployment, hooks)
            yield await run_matrix(world)
    finally:
        for hook in hooks.values():
            await hook.stop()


# --- the assertions ---------------------------------------------------------------------------

def test_every_operation_of_the_openapi_document_has_a_row(run: Run) -> None:
    assert run.operations - TABLE.keys() == set(), "operations without a row in TABLE"
    assert TABLE.keys() - run.operations == set(), "rows for operations that do not exist"
    assert TABLE.keys() == BUILDERS.keys()
    for operation, targets in TABLE.items():
        for statuses in targets.values():
            assert set(statuses) == set(ROLES), operation


def test_every_cell_answers_the_status_of_the_table(run: Run) -> None:
    wrong = [f"{c.operation} [{c.target}] as {c.role}: expected {c.expected}, got {c.status}: "
             f"{body_of(c.received)[:200]!r}" for c in run.cells if c.status != c.expected]
    assert len(run.cells) == sum(len(t) * len(ROLES) for t in TABLE.values())
    assert wrong == [], "\n".join(wrong)


def test_no_response_to_a_partner_or_stranger_carries_another_partys_data(run: Run) -> None:
    found = []
    for cell in run.cells:
        if cell.role in PARTNER_ROLES or cell.role == "anonymous":
            partner = PARTNER_ROLES.get(cell.role)
            for leak in leaks(run.world, partner, cell.received, cell.sent):
                found.append(f"{cell.operation} [{cell.target}] as {cell.role} "
                             f"({cell.status}): {leak}")
    assert found == [], "\n".join(found)


def test_no_webhook_to_a_partner_carries_another_partys_data(run: Run) -> None:
    found = []
    for partner, bodies in run.webhooks.items():
        if partner == OWNER:
            continue
        assert bodies, f"{partner} received no webhook: the check would be vacuous"
        for body in bodies:
            found += [f"webhook to {partner}: {leak}"
                      for leak in leaks(run.world, partner, body)]
    assert found == [], "\n".join(found)


def test_the_markers_are_where_they_belong(run: Run) -> None:
    """The search can find what it looks for: vendor roles do see the markers."""
    seen = b"".join(c.received for c in run.cells if c.role in ("admin", "integration"))
    assert any(ref.encode() in seen for ref in run.world.refs)
    assert any(note.encode() in seen for note in run.world.notes)
    assert any(cid.encode() in seen for cid in run.world.claims)
    mine = b"".join(c.received for c in run.cells if c.role == "partner")
    assert any(ref.encode() in mine for ref, p in run.world.refs.items() if p == P1)
    # The note written for the involved partners reaches them, by API and by webhook.
    for_p1 = [n.encode() for n, readers in run.world.partner_notes.items() if P1 in readers]
    assert any(n in mine for n in for_p1)
    assert any(n in body for n in for_p1 for body in run.webhooks[P1])
