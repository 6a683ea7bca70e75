"""`dealreg dev` stopped (SIGTERM) while its disk stalls in a commit: the process used to
hang forever. It must end within its bounds, say what was not flushed, exit 1, and keep
what it acknowledged. The stall is our own commit seam (`EmbeddedEventLog._commit`)
blocking for good once a flag file exists, in a real `dealreg dev` process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_registration_slice import registration
from tests.support.processes import free_port, stop, wait_ready

REPO = Path(__file__).resolve().parents[2]

RUNNER = """
import sys, threading, pathlib
from shared.eventlog import embedded
flag = pathlib.Path(sys.argv[1])
commit = embedded.EmbeddedEventLog._commit
def stalling(self, conn):
    if flag.exists():
        threading.Event().wait()  # the disk never answers this fsync
    commit(self, conn)
embedded.EmbeddedEventLog._commit = stalling
from dealreg.cli import app
sys.argv = ["dealreg", *sys.argv[2:]]
app()
"""


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


async def test_dev_ends_with_exit_1_and_says_what_was_not_flushed_when_the_disk_stalls(
        tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    flag = tmp_path / "stall"
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env.update(DEALREG_ADMIN_TOKEN="t0ken", DEALREG_SHUTDOWN_TIMEOUT_SECONDS="3",
               PYTHONPATH=str(REPO), COLUMNS="250")
    proc = _start([sys.executable, "-c", RUNNER, str(flag), "dev", "--port", str(port),
                   "--data-dir", str(data)], env)
    try:
        await wait_ready(base, timeout=60)
        async with httpx.AsyncClient(headers={"Authorization": "Bearer t0ken"}) as client:
            acked = await client.post(f"{base}/v1/registrations", json=registration("p-1"),
                                      timeout=20)
            assert acked.status_code in (201, 202), acked.text
            flag.touch()  # from now on every commit stalls in its fsync
            try:
                await client.post(f"{base}/v1/registrations", json=registration("p-2"),
                                  timeout=1.5)
                raise AssertionError("an append on a stalled disk was answered")
            except httpx.ReadTimeout:
                pass
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # HTTP drain (10 s) + the shutdown timeout (3 s) + a start-up's slack, not forever.
        output = proc.communicate(timeout=40)[0]
        took = time.monotonic() - began
    finally:
        if proc.poll() is None:
            stop(proc, timeout=5)
    assert proc.returncode == 1, (proc.returncode, output[-3000:])
    assert took < 30, took
    assert "shutdown_incomplete" in output, output[-3000:]
    assert ("error: shutdown incomplete after 3 s (DEALREG_SHUTDOWN_TIMEOUT_SECONDS)"
            in " ".join(output.split())), output[-3000:]
    assert "in a commit the disk did not finish" in output, output[-3000:]
    assert "never came back" in output, output[-3000:]
    # What was acknowledged is in the log.
    reader = sqlite3.connect(data / "eventlog.sqlite3")
    try:
        found = reader.execute("SELECT COUNT(*) FROM records WHERE instr(value, ?) > 0",
                               (acked.json()["id"].encode(),)).fetchone()[0]
    finally:
        reader.close()
    assert found >= 1
