"""`dealreg dev`, the README's first command, as a user runs it: a real process over HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

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


# --- stopping: one line, an exit code, no stack trace, nothing lost ---------------------------


class _Output:
    """The process's merged output, read by a thread as it comes (to act on a line)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.text()[-3000:]}"
            time.sleep(0.05)

    def text(self) -> str:
        return "".join(self.lines)


def _assert_stopped_cleanly(proc: subprocess.Popen[str], output: str, code: int,
                            data_dir: Path, registration_id: str) -> None:
    assert proc.returncode == code, (proc.returncode, output[-4000:])
    assert "Traceback" not in output, output[-6000:]
    assert "CancelledError" not in output, output[-6000:]
    stopped = [line for line in output.splitlines() if "stopped" in line.split()]
    assert len(stopped) == 1 and f"exit_code={code}" in stopped[0], output[-3000:]
    # Nothing lost: the app's own shutdown ran to its end (the log flushed and closed, the
    # registration service's re-report leases released for the next process to take).
    assert "Application shutdown complete" in output, output[-3000:]
    log = sqlite3.connect(data_dir / "eventlog.sqlite3")
    try:
        found = log.execute("SELECT COUNT(*) FROM records WHERE instr(value, ?) > 0",
                            (registration_id.encode(),)).fetchone()[0]
    finally:
        log.close()
    assert found >= 2  # submitted, decided
    store = sqlite3.connect(data_dir / "readmodel.sqlite3")
    try:
        leased = store.execute("SELECT COUNT(*) FROM re_reports WHERE lease_until > ?",
                               (datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),)).fetchone()[0]
    finally:
        store.close()
    assert leased == 0


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)],
                         ids=["sigint", "sigterm"])
async def test_dev_stops_on_ctrl_c_and_sigterm_with_one_line_and_no_stack_trace(
        tmp_path: Path, sig: signal.Signals, code: int) -> None:
    """Ctrl-C (SIGINT: exit 130, the shell's convention) and SIGTERM (exit 0): one `stopped`
    line, no traceback, what was acknowledged durable."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with dealreg_dev(tmp_path, port, token="given-token") as proc:
        await wait_ready(base)
        answer = await _post(base, "given-token", "p-1")
        assert answer.status_code == 201, answer.text
        proc.send_signal(sig)
        output = proc.communicate(timeout=60)[0]
    _assert_stopped_cleanly(proc, output, code, tmp_path, answer.json()["id"])


def _half_sent_request(port: int, token: str) -> socket.socket:
    """A client in the middle of sending its body: the request stays in flight."""
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(b"POST /v1/registrations HTTP/1.1\r\nHost: dealreg\r\n"
                   b"Authorization: Bearer " + token.encode() + b"\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{")
    return client


async def test_a_second_ctrl_c_cuts_the_drain_short_but_never_the_flush(tmp_path: Path) -> None:
    """The operator's second Ctrl-C while `dev` waits for a request still in flight ("CTRL+C
    to force quit"): uvicorn then skipped the application's shutdown, and the loop's end
    cancelled the waiting lifespan and the request, each logged with a CancelledError's
    stack trace (the lifespan's through FastAPI's telemetry wrapper of `receive`); the
    runtime's stop ran inside that cancelled task, if at all. Now the drain ends, the
    request is answered 503 (Retry-After), and the shutdown (flush, leases) still runs."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with dealreg_dev(tmp_path, port, token="given-token") as proc:
        output = _Output(proc)
        await wait_ready(base)
        answer = await _post(base, "given-token", "p-1")
        assert answer.status_code == 201, answer.text
        client = _half_sent_request(port, "given-token")
        try:
            output.wait_for("http_request")  # the POST's access line: the server is idle
            proc.send_signal(signal.SIGINT)
            output.wait_for("Waiting for connections to close")
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
            output.thread.join(timeout=10)
            client.settimeout(10)
            reply = client.recv(65536).decode()
        finally:
            client.close()
    _assert_stopped_cleanly(proc, output.text(), 130, tmp_path, answer.json()["id"])
    assert reply.startswith("HTTP/1.1 503"), reply
    assert "retry-after:" in reply.lower() and "application/problem+json" in reply, reply
