"""The front door's routing table sends every operation to the service that serves it, and
its document is the union of the services' documents (no process runs here)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dealreg.app import create_app
from dealreg.gateway import SERVICES, RouteTable, whole_document
from shared.settings import Settings

METHODS = {"get", "put", "post", "delete", "patch"}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x-1", path)


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in METHODS}


@pytest.fixture(scope="module")
def served() -> dict[str, set[tuple[str, str]]]:
    return {upstream: operations(create_app(Settings(backend="distributed"),
                                            frozenset({service})).openapi())  # type: ignore[arg-type]
            for upstream, service in SERVICES.items()}


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return RouteTable.build()


def test_every_operation_goes_to_the_service_that_serves_it(
        served: dict[str, set[tuple[str, str]]], table: RouteTable) -> None:
    checked = 0
    for upstream, ops in served.items():
        for method, path in ops:
            if path in ("/healthz", "/readyz"):
                continue  # the gateway answers these itself
            assert table.upstream(method, concrete(path)) == upstream, (method, path)
            checked += 1
    assert checked >= 28
    assert not [p for _, p in table.both if p.startswith("/v1")], table.both


def test_one_path_two_services_by_method(table: RouteTable) -> None:
    assert table.upstream("POST", "/v1/registrations") == "commands"
    assert table.upstream("GET", "/v1/registrations") == "queries"
    assert table.upstream("HEAD", "/v1/registrations") == "queries"
    assert table.upstream("GET", "/v1/registrations/reg_1") == "queries"
    assert table.upstream("POST", "/v1/registrations/reg_1/withdraw") == "commands"
    assert table.upstream("GET", "/v1/owners/cm-1") == "commands"
    assert table.upstream("GET", "/v1/owners/cm-1/deliveries") == "queries"
    assert table.upstream("POST", "/v1/disputes/d-1/resolve") == "commands"
    assert table.upstream("GET", "/v1/disputes/d-1") == "queries"
    # Unknown: queries read, commands write (authentication answers both).
    assert table.upstream("GET", "/v1/nothing") == "queries"
    assert table.upstream("DELETE", "/v1/nothing") == "commands"


def test_the_front_door_document_describes_every_service(
        served: dict[str, set[tuple[str, str]]]) -> None:
    whole = operations(whole_document())
    assert whole == served["commands"] | served["queries"]
    assert ("POST", "/v1/registrations") in whole and ("GET", "/v1/registrations") in whole


async def test_the_gateway_stays_ready_while_one_service_answers() -> None:
    """One service down leaves the other half of the API usable: the door stays open."""
    import asyncio

    import httpx

    from dealreg.gateway import Gateway
    from tests.support.processes import free_port

    async def healthy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(healthy, "127.0.0.1", 0)
    up = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    down = f"http://127.0.0.1:{free_port()}"
    try:
        for commands, queries, status, state in ((up, down, 200, "degraded"),
                                                 (up, up, 200, "ok"),
                                                 (down, down, 503, "down")):
            gateway = Gateway(commands, queries, table=RouteTable([]), document={})
            gateway.client = httpx.AsyncClient(timeout=2)  # what its lifespan creates
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway),
                                         base_url="http://door") as client:
                ready = await client.get("/readyz")
            await gateway.client.aclose()
            assert (ready.status_code, ready.json()["status"]) == (status, state)
    finally:
        server.close()
