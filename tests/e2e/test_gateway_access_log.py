"""`dealreg gateway` writes the services' access line (`http_request`, JSON): request id,
route template, status, duration, the upstream that answered and the trace id the service
continues; never the token, never the query string. A real gateway process in front of a
real (minimal) HTTP upstream."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import httpx

from tests.support.processes import free_port, stop, wait_ready

TOKEN = "gw-log-secret-token"


async def upstream() -> tuple[asyncio.Server, list[dict[str, str]]]:
    """An HTTP/1.1 server answering every request 201 with a small JSON body; it keeps
    each request's headers."""
    seen: list[dict[str, str]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)
                   if k}
        seen.append(headers)
        length = int(headers.get("content-length", "0"))
        if length:
            await reader.readexactly(length)
        body = b'{"ok":true}'
        writer.write(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                     b"content-length: " + str(len(body)).encode() + b"\r\n"
                     b"connection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0), seen


@contextmanager
def gateway(port: int, env: dict[str, str], output: IO[bytes]) -> Iterator[None]:
    """`dealreg gateway` as a real process writing to `output`, stopped with SIGTERM after."""
    proc = subprocess.Popen([sys.executable, "-m", "dealreg", "gateway", "--port", str(port)],
                            env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        stop(proc)


def access_lines(output: bytes) -> list[dict[str, Any]]:
    out = []
    for line in output.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "http_request":
            out.append(record)
    return out


async def test_the_gateway_writes_one_access_line_per_request_without_secrets() -> None:
    server, seen = await upstream()
    port = server.sockets[0].getsockname()[1]
    gateway_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env.update({"DEALREG_GATEWAY_COMMANDS_URL": f"http://127.0.0.1:{port}",
                "DEALREG_GATEWAY_QUERIES_URL": f"http://127.0.0.1:{free_port()}",
                "DEALREG_LOG_FORMAT": "json", "DEALREG_LOG_LEVEL": "INFO"})
    base = f"http://127.0.0.1:{gateway_port}"
    with tempfile.TemporaryFile() as output:
        with gateway(gateway_port, env, output):
            try:
                async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                    await wait_ready(base, 60, path="/healthz")
                    made = await client.post(
                        "/v1/registrations/reg_x1/withdraw?token=query-secret", json={},
                        headers={"Authorization": f"Bearer {TOKEN}",
                                 "X-Request-ID": "req-gw-1"})
                    assert made.status_code == 201
                    down = await client.get("/v1/registrations?cursor=abc",
                                            headers={"Authorization": f"Bearer {TOKEN}"})
                    assert down.status_code == 502
            finally:
                server.close()
        output.seek(0)
        text = output.read()
    lines = access_lines(text)
    by_path = {line["path"]: line for line in lines}
    proxied = by_path["/v1/registrations/reg_x1/withdraw"]
    assert proxied["request_id"] == "req-gw-1"
    assert proxied["route"] == "/v1/registrations/{registration_id}/withdraw"
    assert proxied["method"] == "POST" and proxied["status"] == 201
    assert proxied["upstream"] == "registration"
    assert isinstance(proxied["duration_ms"], float | int) and proxied["duration_ms"] >= 0
    # The service continues the gateway's trace: one trace id end to end.
    [forwarded] = seen
    assert forwarded["traceparent"].split("-")[1] == proxied["trace_id"]
    assert forwarded["x-request-id"] == "req-gw-1"
    failed = by_path["/v1/registrations"]
    assert failed["status"] == 502 and failed["upstream"] == "projections"
    assert failed["level"] == "error" and failed["request_id"].startswith("req_")
    logged = text.decode(errors="replace")
    assert TOKEN not in logged and "query-secret" not in logged and "cursor=abc" not in logged
