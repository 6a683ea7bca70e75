"""One front door: `dealreg gateway` in front of real `dealreg serve` processes on real
Kafka and PostgreSQL. One base URL serves the whole API (GET and POST of one path go to
different services), one `/openapi.json` describes it, and a missing or silent upstream
is a 502 or 504 problem."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO

import httpx
import pytest

from tests.e2e.test_registration_slice import registration
from tests.support.processes import free_port, stop, wait_ready
from tests.support.servers import ServerHandle, create_database

ADMIN = "gateway-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@contextmanager
def dealreg(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m dealreg ARGS` as a real process, stopped (SIGTERM, then SIGKILL) after. Its
    output goes to a file (a pipe nobody reads would fill and block it); the tail is kept in
    `proc.args`' log for the failure message of `started`."""
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen([sys.executable, "-m", "dealreg", *args], env=env,
                                stdout=output, stderr=subprocess.STDOUT)
        LOGS[proc.pid] = output
        try:
            yield proc
        finally:
            stop(proc)
            LOGS.pop(proc.pid, None)


LOGS: dict[int, IO[bytes]] = {}


async def started(proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    """Wait for `url`/readyz; on a timeout, fail with the process's last output."""
    try:
        await wait_ready(url, timeout=timeout)
    except TimeoutError:
        log = LOGS[proc.pid]
        log.seek(0)
        lines = [line for line in log.read().decode(errors="replace").splitlines()
                 if '"http_request"' not in line]  # the access log of our polling
        tail = "\n".join(lines)[-3000:]
        raise AssertionError(f"{proc.args} not ready at {url} (exit {proc.poll()}):\n{tail}"
                             ) from None


@dataclass
class Stack:
    front: str
    commands: str
    queries: str


@pytest.fixture(scope="module")
async def stack(kafka_server: ServerHandle, postgres_server: ServerHandle
                ) -> AsyncIterator[Stack]:
    unique = uuid.uuid4().hex[:10]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env.update({
        "DEALREG_ADMIN_TOKEN": ADMIN, "DEALREG_KAFKA_BOOTSTRAP_SERVERS": kafka_server.url,
        "DEALREG_DATABASE_URL": await create_database(postgres_server.url, f"gw_{unique}"),
        "DEALREG_TOPIC_PREFIX": f"gw-{unique}", "DEALREG_TOPIC_PARTITIONS": "3",
        "DEALREG_ADJUDICATOR_GROUP": f"adj-{unique}",
        "DEALREG_PROJECTIONS_GROUP": f"proj-{unique}", "DEALREG_LOG_LEVEL": "WARNING",
        # The services believe the gateway's X-Forwarded-For (it runs on loopback), the
        # gateway nobody's; a small failed-authentication burst, slow refill.
        "DEALREG_FORWARDED_ALLOW_IPS": "127.0.0.1",
        "DEALREG_AUTH_FAILURE_BURST": "3", "DEALREG_AUTH_FAILURE_LIMIT_PER_SECOND": "0.01",
    })
    ports = {name: free_port() for name in ("projections", "registration", "adjudication",
                                            "gateway")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    with ExitStack() as processes:
        # All at once, as a deployment starts them: the services that migrate the schema
        # take turns under its advisory lock, and the start-ups overlap.
        procs = {service: processes.enter_context(dealreg(
            ["serve", service, "--port", str(ports[service])], env))
            for service in ("projections", "registration", "adjudication")}
        procs["gateway"] = processes.enter_context(dealreg(
            ["gateway", "--port", str(ports["gateway"])],
            {**env, "DEALREG_FORWARDED_ALLOW_IPS": "",
             "DEALREG_GATEWAY_COMMANDS_URL": urls["registration"],
             "DEALREG_GATEWAY_QUERIES_URL": urls["projections"]}))
        await asyncio.gather(*(started(proc, urls[name], timeout=90)
                               for name, proc in procs.items()))
        yield Stack(urls["gateway"], urls["registration"], urls["projections"])


async def test_one_base_url_serves_commands_and_queries_of_the_same_path(stack: Stack
                                                                         ) -> None:
    async with httpx.AsyncClient(base_url=stack.front, headers=AUTH, timeout=30) as front:
        submitted = await front.post("/v1/registrations", json=registration(
            "p-gw", "gateway-one.com"), headers={"Prefer": "wait=15",
                                                  "X-Request-ID": "req-through-the-door"})
        assert submitted.status_code == 201, submitted.text
        assert submitted.json()["status"] == "approved"
        # Headers pass both ways: the command service saw our request id and echoed it.
        assert submitted.headers["x-request-id"] == "req-through-the-door"
        assert submitted.headers["x-log-position"]
        registration_id = submitted.json()["id"]
        assert submitted.headers["location"] == f"/v1/registrations/{registration_id}"
        read = await front.get(f"/v1/registrations/{registration_id}",
                               params={"min_position": submitted.headers["x-log-position"]})
        assert read.status_code == 200 and read.json()["id"] == registration_id
        listed = await front.get("/v1/registrations", params={"partner_id": "p-gw"})
        assert registration_id in [r["id"] for r in listed.json()["items"]]
        owner = await front.get("/v1/ownership", params={"domain": "gateway-one.com"})
        assert owner.status_code == 200 and owner.json()["owners"]
        # A commands path and a queries path under one prefix.
        put = await front.put("/v1/owners/cm-gw", json={"name": "Gateway owner"})
        assert put.status_code == 201, put.text
        assert (await front.get("/v1/owners/cm-gw")).json()["name"] == "Gateway owner"
        deliveries = await front.get("/v1/owners/cm-gw/deliveries")
        assert deliveries.status_code == 200, deliveries.text
        # Authentication is the services': no token is their 401 problem.
        bare = await front.get("/v1/registrations", headers={"Authorization": ""})
        assert bare.status_code == 401
        assert bare.headers["content-type"] == "application/problem+json"
        assert bare.headers["www-authenticate"].startswith("Bearer")


def _from(address: str, base_url: str) -> httpx.AsyncClient:
    """A client whose connections leave from `address` (any of 127.0.0.0/8 on Linux)."""
    return httpx.AsyncClient(base_url=base_url, timeout=30,
                             transport=httpx.AsyncHTTPTransport(local_address=address))


async def test_a_key_guesser_behind_the_gateway_locks_out_only_itself(stack: Stack) -> None:
    """Behind the gateway every request reaches the services from the gateway's address;
    the failed-authentication limit must still count each client, or one guesser locks
    every partner out. Nor may a client pick its address with `X-Forwarded-For`, through
    the gateway or straight to a service."""
    bad = {"Authorization": "Bearer drk.key_nobody.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
    async with _from("127.0.0.2", stack.front) as guesser, \
            _from("127.0.0.3", stack.front) as partner, \
            _from("127.0.0.2", stack.queries) as guesser_direct:
        answers = [(await guesser.get("/v1/registrations", headers=bad)).status_code
                   for _ in range(4)]
        assert answers == [401, 401, 401, 429], answers
        locked = await guesser.get("/v1/registrations", headers=AUTH)
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
        # Claiming another address through the gateway: the gateway appends the peer it
        # saw, and that is the address the service counts.
        spoofed = await guesser.get("/v1/registrations",
                                    headers={**AUTH, "X-Forwarded-For": "127.0.0.9"})
        assert spoofed.status_code == 429
        # Straight to the service: a peer that is not a trusted proxy is its own address.
        direct = await guesser_direct.get("/v1/registrations",
                                          headers={**AUTH, "X-Forwarded-For": "127.0.0.9"})
        assert direct.status_code == 429
        # Another client behind the same gateway is not locked out.
        ok = await partner.get("/v1/registrations", headers=AUTH)
        assert ok.status_code == 200, ok.text
        assert (await partner.get("/v1/registrations", headers=bad)).status_code == 401


async def test_one_document_describes_the_whole_api_and_docs_work_offline(stack: Stack
                                                                          ) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        whole = (await client.get(f"{stack.front}/openapi.json")).json()
        halves = [(await client.get(f"{url}/openapi.json")).json()
                  for url in (stack.commands, stack.queries)]
        ops = {(m, p) for p, item in whole["paths"].items() for m in item}
        parts = {(m, p) for half in halves for p, item in half["paths"].items() for m in item}
        assert ops == parts
        assert {("post", "/v1/registrations"), ("get", "/v1/registrations")} <= ops
        page = await client.get(f"{stack.front}/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text
        assert not re.search(r"https?://", page.text)
        for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert (await client.get(stack.front + asset)).status_code == 200, asset


async def test_bodies_stream_through_to_the_service_and_its_limits(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.front, headers=AUTH, timeout=30) as front:
        body = registration("p-gw", "gateway-two.com")
        padded = ('{"partner_id": "p-gw",' + " " * 900_000 + str(
            httpx.Request("POST", "/", json=body).content.decode())[1:])
        ok = await front.post("/v1/registrations", content=padded.encode(),
                              headers={"content-type": "application/json"})
        assert ok.status_code in (201, 202), ok.text

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b" " * 50_000  # 2 MB without a Content-Length

        too_big = await front.post("/v1/registrations", content=chunks(),
                                   headers={"content-type": "application/json"})
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/problem+json"


async def test_an_unreachable_upstream_is_502_and_a_silent_one_504() -> None:
    hold: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hold.append(writer)  # accepts, reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    silent_port = server.sockets[0].getsockname()[1]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env.update({"DEALREG_GATEWAY_COMMANDS_URL": f"http://127.0.0.1:{free_port()}",
                "DEALREG_GATEWAY_QUERIES_URL": f"http://127.0.0.1:{silent_port}",
                "DEALREG_GATEWAY_TIMEOUT_SECONDS": "1", "DEALREG_LOG_LEVEL": "ERROR"})
    base = f"http://127.0.0.1:{port}"
    try:
        with dealreg(["gateway", "--port", str(port)], env):
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                await wait_ready(base, 60, path="/healthz")
                down = await client.post("/v1/registrations", json={}, headers=AUTH)
                assert down.status_code == 502
                assert down.headers["content-type"] == "application/problem+json"
                assert down.json()["status"] == 502 and "registration" in down.json()["detail"]
                assert down.headers["retry-after"] == "1"
                slow = await client.get("/v1/registrations", headers=AUTH)
                assert slow.status_code == 504
                assert slow.json()["title"] == "Gateway timeout"
                ready = await client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["status"] == "down"
                assert ready.json()["detail"]["commands"].startswith("unreachable")
    finally:
        server.close()
        for writer in hold:
            writer.close()
