"""Logs as an operator sees them: `dealreg dev` as a real process, every request one access
line (4xx included), every library in the same format, JSON when asked, console by default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.processes import free_port, wait_ready

TOKEN = "logs-admin-token"


def _start(data_dir: Path, port: int, **env: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    clean.update({"DEALREG_ADMIN_TOKEN": TOKEN, **env})
    return subprocess.Popen(
        [sys.executable, "-m", "dealreg", "dev", "--port", str(port), "--data-dir",
         str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


async def _traffic(base: str) -> list[int]:
    """20 requests: 201s, 200s, 404s, 401s and a 422."""
    statuses = []
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        admin = {"Authorization": f"Bearer {TOKEN}"}
        for i in range(5):
            body = {"account": {"name": f"Logs {i} Corp", "domain": f"logs-{i}.com",
                                "country": "US"},
                    "opportunity": {"title": "Rollout", "products": ["analytics"]},
                    "motion": "resell", "partner_id": "p-1"}
            statuses.append((await client.post("/v1/registrations", json=body,
                                                headers=admin)).status_code)
        for _ in range(5):
            statuses.append((await client.get("/v1/registrations", headers=admin)).status_code)
        for _ in range(4):
            statuses.append((await client.get("/v1/registrations/reg_missing",
                                              headers=admin)).status_code)
        for _ in range(5):
            statuses.append((await client.get("/v1/registrations")).status_code)
        statuses.append((await client.post("/v1/registrations", json={"motion": "x"},
                                           headers=admin)).status_code)
    return statuses


async def test_json_logs_have_one_access_line_per_request_and_no_plain_text(
        tmp_path: Path) -> None:
    port = free_port()
    proc = _start(tmp_path, port, DEALREG_LOG_FORMAT="json")
    try:
        await wait_ready(f"http://127.0.0.1:{port}")
        statuses = await _traffic(f"http://127.0.0.1:{port}")
    finally:
        err = _stop(proc)
    assert {200, 401, 404, 422} <= set(statuses) <= {200, 201, 202, 401, 404, 422}
    assert len(statuses) == 20
    # The CLI's own banner (admin token, URLs) precedes the first log line; everything the
    # logging system writes after it is one JSON object per line.
    lines = err.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))
    records = [json.loads(line) for line in lines[first:] if line.strip()]
    loggers = {r.get("logger") for r in records}
    assert {"uvicorn.error", "alembic.runtime.migration"} <= loggers, loggers
    access = [r for r in records if r["event"] == "http_request"
              and r["path"].startswith("/v1/")]
    assert [r["status"] for r in access] == statuses
    for record in access:
        assert record["request_id"].startswith("req_")
        assert record["client"] == "127.0.0.1" and record["duration_ms"] >= 0
        assert len(record["trace_id"]) == 32
        assert record["route"] in ("/v1/registrations", "/v1/registrations/{registration_id}")
        assert record["role"] == ("admin" if record["status"] != 401 else None)
        assert record["level"] == "info" and record["timestamp"].endswith("Z")


async def test_dev_logs_for_a_person_by_default(tmp_path: Path) -> None:
    port = free_port()
    proc = _start(tmp_path, port)
    try:
        await wait_ready(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/v1/registrations")).status_code == 401
    finally:
        err = _stop(proc)
    lines = [line for line in err.splitlines() if line.strip()]
    assert not any(line.startswith("{") for line in lines), lines
    [access] = [line for line in lines if "http_request" in line]
    assert "status=401" in access and "route=/v1/registrations" in access
    assert any("Application startup complete" in line for line in lines)
