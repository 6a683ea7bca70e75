"""A running dealreg for the query tests, on either backend, with callers of every role.

`embedded`: one app with every component (what `dealreg dev` serves). `distributed`: three
apps (registration, adjudication, projections) against real Kafka and PostgreSQL, as
`dealreg serve X` runs them. API keys are minted through the authenticator directly, so the
tests need nothing of the command side beyond the public commands they exercise.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dealreg.app import create_app
from dealreg.runtime import Component
from services.projections.domain.batch import MODELS
from shared.eventlog import TopicPartition
from shared.settings import Settings
from tests.integration.projections.projection_support import positions
from tests.support.servers import ServerHandle, create_database

ADMIN = "test-admin-token"


@dataclass
class Running:
    backend: str
    settings: Settings
    command_app: FastAPI
    query_app: FastAPI
    stack: AsyncExitStack
    admin: httpx.AsyncClient
    clients: dict[tuple[str, str | None], tuple[httpx.AsyncClient, httpx.AsyncClient]] = (
        field(default_factory=dict))

    async def _client(self, app: FastAPI, token: str) -> httpx.AsyncClient:
        return await self.stack.enter_async_context(httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dealreg",
            headers={"Authorization": f"Bearer {token}"}, timeout=30))

    async def as_(self, role: str, subject: str | None = None
                  ) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        """(commands, queries) clients acting with a fresh API key of `role`/`subject`."""
        key = (role, subject)
        if key not in self.clients:
            minted = await self.query_app.state.authenticator.mint(role, subject, "test")
            self.clients[key] = (await self._client(self.command_app, minted.token),
                                 await self._client(self.query_app, minted.token))
        return self.clients[key]

    async def queries(self, role: str, subject: str | None = None) -> httpx.AsyncClient:
        return (await self.as_(role, subject))[1]

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until the adjudicator decided all intake and every read model applied
        everything on the log."""
        runtime = self.query_app.state.runtime
        log, topics, engine = runtime.eventlog, runtime.topics, runtime.engine
        marker = 1 if self.backend == "distributed" else 0
        deadline = asyncio.get_running_loop().time() + timeout
        def applied(stored: dict[tuple[str, str, int], int], tp: TopicPartition) -> int:
            return min(stored.get((m, tp.topic, tp.partition), 0) for m in MODELS)

        markers: dict[tuple[TopicPartition, int], bool] = {}

        async def reached(position: int, tp: TopicPartition, end: int) -> bool:
            """`position` is at the end, or one short of it where the last offset is a
            transaction marker: the adjudicator appends its relays (`SettlementRelayed`,
            `CopiesInReview`, `HomeEndRelayed`) to intake in its transactions, and no
            consumer ever receives a marker's offset. Exact: the last offset is read."""
            if position >= end:
                return True
            if position < end - 1 or not marker:
                return False
            if (tp, end) not in markers:
                markers[tp, end] = not [r async for batch in log.read(tp, end - 1, end)
                                        for r in batch]
            return markers[tp, end]

        while True:
            intake = await log.end_positions(topics.intake)
            decided = await log.committed(self.settings.adjudicator_group, topics.intake)
            decisions = await log.end_positions(topics.decisions)
            stored = await positions(engine)
            done = (all([await reached(decided.get(tp, 0), tp, end)
                         for tp, end in intake.items()])
                    and all([await reached(applied(stored, tp), tp, end)
                             for tp, end in intake.items()])
                    and all(applied(stored, tp) >= end - marker for tp, end in decisions.items()
                            if end > 0))
            if done:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the system did not settle")
            await asyncio.sleep(0.05)


async def _serve(stack: AsyncExitStack, app: FastAPI) -> httpx.AsyncClient:
    await stack.enter_async_context(app.router.lifespan_context(app))
    return await stack.enter_async_context(httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dealreg",
        headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30))


@asynccontextmanager
async def running(backend: str, request: pytest.FixtureRequest, directory: Path,
                  **overrides: Any) -> AsyncIterator[Running]:
    unique = uuid.uuid4().hex[:10]
    async with AsyncExitStack() as stack:
        if backend == "embedded":
            settings = Settings(backend="embedded", data_dir=directory, admin_token=ADMIN,
                                **overrides)
            app = create_app(settings)
            client = await _serve(stack, app)
            yield Running("embedded", settings, app, app, stack, client)
            return
        kafka: ServerHandle = request.getfixturevalue("kafka_server")
        postgres: ServerHandle = request.getfixturevalue("postgres_server")
        database = await create_database(postgres.url, f"q_{unique}")
        settings = Settings(
            backend="distributed", admin_token=ADMIN, kafka_bootstrap_servers=kafka.url,
            database_url=database, topic_prefix=f"q-{unique}", topic_partitions=3,
            adjudicator_group=f"adj-{unique}", projections_group=f"proj-{unique}",
            **overrides,
        )
        apps: dict[Component, FastAPI] = {}
        clients: dict[Component, httpx.AsyncClient] = {}
        for component in ("projections", "adjudication", "registration"):
            apps[component] = create_app(settings, frozenset({component}))
            clients[component] = await _serve(stack, apps[component])
        yield Running("distributed", settings, apps["registration"], apps["projections"],
                      stack, clients["registration"])


def registration(partner: str | None, domain: str, *, name: str | None = None,
                 country: str = "US", products: tuple[str, ...] = ("analytics",),
                 motion: str = "resell", amount: str | None = "1000.00",
                 currency: str = "USD", crm: str | None = None) -> dict[str, Any]:
    # Each test account gets its own name: the adjudicator also matches accounts by name.
    name = name or domain.split(".")[0].replace("-", " ").title() + " Corp"
    body: dict[str, Any] = {
        "account": {"name": name, "domain": domain, "country": country,
                    "crm_account_id": crm},
        "opportunity": {"title": "Rollout", "products": list(products),
                        "amount": {"value": amount, "currency": currency} if amount else None},
        "motion": motion,
    }
    if partner is not None:
        body["partner_id"] = partner
    return body


async def submit(client: httpx.AsyncClient, body: dict[str, Any], wait: int = 15
                 ) -> dict[str, Any]:
    response = await client.post("/v1/registrations", json=body,
                                  headers={"Prefer": f"wait={wait}"})
    assert response.status_code in (201, 202), response.text
    result: dict[str, Any] = response.json()
    return result


async def restore_policy(admin: httpx.AsyncClient, document: dict[str, Any]) -> None:
    """Publish `document` (a `GET /v1/policy` answer) again, so a test that changed the
    policy leaves the one it found: a `PUT` body merges onto the current version, so `{}`
    would change nothing."""
    body = {field: value for field, value in document.items() if field != "version"}
    restored = await admin.put("/v1/policy", json=body)
    assert restored.status_code in (200, 201), restored.text
