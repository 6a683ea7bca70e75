"""An overloaded process sheds load with 503 + `Retry-After` (RFC 9457 body), never 500:
a real `dealreg dev` driven past its in-flight limit by the bench's load generator."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from tests.bench import loadgen
from tests.support.companies import generate
from tests.support.processes import free_port, wait_ready

TOKEN = "backpressure-admin"


def answer(_k: int, status: int, body: bytes) -> tuple[int, str, int, str] | None:
    if status < 500:
        return None
    problem = orjson.loads(body)
    return status, problem["title"], problem["status"], problem.get("detail") or ""


async def test_dev_past_its_limit_answers_503_with_retry_after_and_never_500(tmp_path: Path):
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")},
           "DEALREG_ADMIN_TOKEN": TOKEN, "DEALREG_LOG_LEVEL": "WARNING",
           "DEALREG_MAX_IN_FLIGHT_REQUESTS": "8", "DEALREG_OVERLOAD_RETRY_AFTER_SECONDS": "2",
           "DEALREG_RATE_LIMIT_PER_SECOND": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "dealreg", "dev", "--port", str(port),  # noqa: ASYNC220
                             "--data-dir", str(tmp_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, timeout=60)
        workload = generate(7, 400, collision_share=0.3)
        requests = [loadgen.Request("POST", "/v1/registrations",
                                    orjson.dumps(r.request(title="Deal")))
                    for r in workload.registrations]
        # 400 registrations in one second, each waiting up to 3 s for its decision: far more
        # than 8 in flight.
        plan = loadgen.Plan(url, requests, rate=400, seconds=1, processes=1, concurrency=200,
                            timeout=30, extract=answer,
                            headers=(("Authorization", f"Bearer {TOKEN}"),
                                     ("Prefer", "wait=3")))
        result = await asyncio.to_thread(loadgen.run, plan)
        # The process is alive and ready throughout: operations endpoints are never shed.
        await wait_ready(url, timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert result.completed == 400 and result.errors == 0 and result.timeouts == 0
    assert not any(status >= 500 and status != 503 for status in result.statuses), \
        result.statuses
    shed = result.statuses.get(503, 0)
    assert shed > 0, result.statuses
    assert result.retry_after == shed  # every 503 says when to come back
    assert result.statuses.get(201, 0) + result.statuses.get(202, 0) > 0  # and work got done
    problems = set(result.extracts.values())
    assert {(p[0], p[1], p[2]) for p in problems} == {(503, "Service unavailable", 503)}
    assert all("in flight" in p[3] for p in problems)
