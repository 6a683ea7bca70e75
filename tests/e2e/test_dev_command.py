"""`dealreg dev`, the README's first command, as a user runs it: a real process over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.e2e.test_registration_slice import registration
from tests.support.processes import free_port, stop, wait_ready


@contextmanager
def dealreg_dev(data_dir: Path, port: int, token: str | None) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    if token:
        env["DEALREG_ADMIN_TOKEN"] = token
    env["COLUMNS"] = "200"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dealreg", "dev", "--port", str(port), "--data-dir",
         str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        yield proc
    finally:
        stop(proc)


async def _post(base: str, token: str, partner: str) -> httpx.Response:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        return await client.post(f"{base}/v1/registrations", json=registration(partner),
                                 headers={"Prefer": "wait=10"}, timeout=20)


async def test_dev_serves_decisions_and_remembers_them_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with dealreg_dev(tmp_path, port, token="given-token") as proc:
        await wait_ready(base)
        first = await _post(base, "given-token", "p-1")
        assert first.status_code == 201 and first.json()["status"] == "approved"
        # A first look points webhooks at a local receiver: dev allows loopback targets.
        async with httpx.AsyncClient(headers={"Authorization": "Bearer given-token"}) as c:
            owner = await c.put(f"{base}/v1/owners/cm-local", json={
                "name": "Local", "webhook_url": "http://127.0.0.1:9999/hook"}, timeout=20)
            assert owner.status_code == 201, owner.text
            metadata = await c.put(f"{base}/v1/owners/cm-local", json={
                "name": "Local", "webhook_url": "http://169.254.169.254/"}, timeout=20)
            assert metadata.status_code == 422, metadata.text
        assert proc.poll() is None
        # `dev` leaves the operations endpoints open by default (`serve` requires a token).
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/metrics")).status_code == 200
            assert "projections" in (await client.get(f"{base}/readyz")).json()["detail"]

    # No token in the environment: one is generated and printed once.
    with dealreg_dev(tmp_path, port, token=None) as proc:
        await wait_ready(base)
        assert proc.stdout is not None
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0]
    match = re.search(r"Admin token \(shown once\):\s*(\S+)", output)
    assert match, output
    assert "Webhooks may target loopback addresses: yes" in output, output

    with dealreg_dev(tmp_path, port, token=match.group(1)):
        await wait_ready(base)
        # The adjudicator rebuilt its state from the log: the account is still taken.
        rival = await _post(base, match.group(1), "p-2")
        assert rival.status_code == 201
        assert rival.json()["status"] == "in_review"
        assert rival.json()["decision"]["rule"] == "tie"
        assert rival.json()["decision"]["conflicts"][0]["registration_id"] == first.json()["id"]
