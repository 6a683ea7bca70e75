"""A running dealreg for the command-side tests: an app on either backend, an admin client,
and API keys per role. Shared by tests/integration/registration and tests/e2e/test_commands_*.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI

from dealreg.app import create_app
from dealreg.runtime import Component, Runtime
from shared.settings import Settings

ADMIN = "test-admin-token"
T = TypeVar("T")


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def token(self, role: str, subject_id: str | None = None) -> str:
        """An API key for `role` (bound to `subject_id`), minted once per harness."""
        name = f"{role}:{subject_id}" if subject_id else role
        if name == "admin":
            return ADMIN
        if name not in self.tokens:
            response = await self.client.post("/v1/api-keys", json={
                "role": role, "subject_id": subject_id, "name": f"test {name}"},
                headers={"Authorization": f"Bearer {ADMIN}"})
            assert response.status_code == 201, response.text
            self.tokens[name] = response.json()["token"]
        return self.tokens[name]

    async def as_(self, role: str, subject_id: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(role, subject_id)}"}


@asynccontextmanager
async def serve(settings: Settings, components: frozenset[Component] | None = None
                ) -> AsyncIterator[Harness]:
    app = create_app(settings, components) if components else create_app(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dealreg",
            headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30))
        yield Harness(app, client)


def registration(partner: str | None = "p-1", domain: str = "acme.com",
                 **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partner_id": partner,
        # Names differ per domain: one name in one country is one account (fuzzy match).
        "account": {"name": f"{domain.split('.')[0].title()} Corp", "domain": domain,
                    "country": "US"},
        "opportunity": {"title": "Analytics rollout", "products": ["analytics"],
                        "amount": {"value": "120000.00", "currency": "USD"},
                        "expected_close": "2027-03-31"},
        "motion": "resell",
        "external_ref": f"PRM-{domain}",
    }
    if partner is None:
        del body["partner_id"]
    body.update(overrides)
    return body


async def eventually(fetch: Callable[[], Awaitable[T | None]], timeout: float = 15.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await fetch()
        if found is not None:
            return found
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def log_size(harness: Harness, topic: str) -> int:
    ends = await harness.runtime.eventlog.end_positions(topic)
    return sum(ends.values())
