"""A running dealreg behind an HTTP client, on either backend.

`embedded`: one app with every component (what `dealreg dev` serves).
`distributed`: three separate runtimes (registration, adjudication, projections) against a
real Kafka broker and a real PostgreSQL database, as `dealreg serve X` runs them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from dealreg.app import create_app
from dealreg.runtime import Component
from shared.settings import Settings
from tests.support.servers import ServerHandle, create_database

ADMIN = "test-admin-token"


@dataclass
class System:
    backend: str
    settings: Settings
    commands: httpx.AsyncClient
    queries: httpx.AsyncClient


async def _serve(stack: AsyncExitStack, app: FastAPI) -> httpx.AsyncClient:
    await stack.enter_async_context(app.router.lifespan_context(app))
    return await stack.enter_async_context(httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dealreg",
        headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30,
    ))


@pytest.fixture(params=["embedded", "distributed"])
async def system(
    request: pytest.FixtureRequest, tmp_path: Path, unique: str
) -> AsyncIterator[System]:
    async with AsyncExitStack() as stack:
        if request.param == "embedded":
            settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN)
            client = await _serve(stack, create_app(settings))
            yield System("embedded", settings, client, client)
            return
        kafka: ServerHandle = request.getfixturevalue("kafka_server")
        postgres: ServerHandle = request.getfixturevalue("postgres_server")
        database = await create_database(postgres.url, f"e2e_{unique}")
        settings = Settings(
            backend="distributed", admin_token=ADMIN, kafka_bootstrap_servers=kafka.url,
            database_url=database, topic_prefix=f"e2e-{unique}", topic_partitions=3,
            adjudicator_group=f"adj-{unique}", projections_group=f"proj-{unique}",
        )
        clients: dict[Component, httpx.AsyncClient] = {}
        for component in ("projections", "adjudication", "registration"):
            clients[component] = await _serve(stack, create_app(settings,
                                                                frozenset({component})))
        yield System("distributed", settings, clients["registration"], clients["projections"])
