"""A rejected filing's names leave the directory read model too (session 29, migration
0016): after a restart the registration service warms its account index from the
directory, and `GET /v1/ownership?name=` reads it, so a rival's rejected "B dba A" kept
there still made A a name of B's customer on both backends (the embedded one on SQLite,
the distributed one on Kafka and PostgreSQL) although the adjudicator had taken it back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from dealreg.app import create_app
from dealreg.runtime import Component
from shared.settings import Settings
from tests.e2e.conftest import ADMIN, _serve
from tests.e2e.test_rival_fairness import companies, submit, weighed
from tests.support.servers import ServerHandle, create_database


@pytest.fixture(params=["embedded", "distributed"])
async def settings(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Settings:
    if request.param == "embedded":
        return Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN)
    kafka: ServerHandle = request.getfixturevalue("kafka_server")
    postgres: ServerHandle = request.getfixturevalue("postgres_server")
    return Settings(
        backend="distributed", admin_token=ADMIN, kafka_bootstrap_servers=kafka.url,
        database_url=await create_database(postgres.url, f"e2e_{unique}"),
        topic_prefix=f"e2e-{unique}", topic_partitions=3,
        adjudicator_group=f"adj-{unique}", projections_group=f"proj-{unique}")


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient,
                                                              httpx.AsyncClient]]:
    """(commands, queries) of a started system; stopped on exit (a restart: start again)."""
    async with AsyncExitStack() as stack:
        if settings.backend == "embedded":
            client = await _serve(stack, create_app(settings))
            yield client, client
            return
        clients: dict[Component, httpx.AsyncClient] = {}
        for component in ("projections", "adjudication", "registration"):
            clients[component] = await _serve(stack, create_app(settings,
                                                                frozenset({component})))
        yield clients["registration"], clients["projections"]


async def _owner_keys(queries: httpx.AsyncClient, name: str, country: str) -> list[str]:
    answer = await queries.get("/v1/ownership", params={"name": name, "country": country})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    keys = [body["account_key"], *(body.get("linked_keys") or [])]
    keys += [o.get("account_key") for o in body.get("owners") or []]
    return [k for k in keys if k]


async def test_a_rejected_trade_name_is_not_filed_after_a_restart(settings: Settings) -> None:
    """p-2 holds B by its domain and files "B dba A" with B's domain (A: p-1's customer):
    rejected as p-2's own duplicate; the adjudicator takes A back from B's key. After a
    restart, p-3's name-only filing of A is weighed against A's holder alone (the edge,
    warmed from the directory, reported B's holder as a possible duplicate too), and the
    ownership look-up by A's name answers A's key, not B's."""
    first, second = companies(2, seed=61)
    country = first.country
    async with running(settings) as (client, _):
        a_holder = await submit(client, "p-1", {"name": first.name, "country": country,
                                                "domain": first.domains[0]})
        b_holder = await submit(client, "p-2", {"name": second.name, "country": country,
                                                "domain": second.domains[0]})
        assert a_holder["status"] == b_holder["status"] == "approved", (a_holder, b_holder)
        rejected = await submit(client, "p-2", {"name": f"{second.name} dba {first.name}",
                                                "country": country,
                                                "domain": second.domains[0]})
        assert (rejected["status"], rejected["decision"]["rule"]) == (
            "rejected", "duplicate"), rejected["decision"]
    async with running(settings) as (client, queries):
        owners = await _owner_keys(queries, first.name, country)
        assert a_holder["account_key"] in owners, owners
        assert b_holder["account_key"] not in owners, owners
        newcomer = await submit(client, "p-3", {"name": first.name, "country": country})
        assert a_holder["id"] in weighed(newcomer), newcomer["decision"]
        assert b_holder["id"] not in weighed(newcomer), newcomer["decision"]
        # B keeps its own name.
        assert b_holder["account_key"] in await _owner_keys(queries, second.name, country)
