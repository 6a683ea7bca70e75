"""Real Kafka and PostgreSQL for the fault suite, started by the deploy/ scripts in state
directories this module owns, so it can restart them in place (same ports, same data).

Loopback only: the scripts bind 127.0.0.1. Every wait is bounded."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _script(kind: str, verb: str, state: Path, timeout: float) -> str:
    # A loaded machine starts a JVM slowly: the broker gets most of `timeout` to be ready.
    env = {**os.environ, "KAFKA_READY_TIMEOUT": str(int(timeout * 0.8))}
    proc = subprocess.run(["bash", str(DEPLOY / f"{kind}.sh"), verb, str(state)],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind}.sh {verb} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def _env_value(path: Path, key: str) -> str:
    for line in path.read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError(f"{path} has no {key}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive.
    with contextlib.suppress(OSError):
        if "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
            return False
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


class Kafka:
    """One KRaft broker (deploy/kafka.sh); `restart` stops it and starts the same JVM
    command again (same port, same log directory)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.bootstrap = ""
        self._children: list[subprocess.Popen[bytes]] = []

    def start(self) -> str:
        # deploy/kafka.sh picks two free ports and the JVM binds them seconds later: on a
        # busy machine another process can take one in between (a full suite's run once
        # failed here with BindException). A start that lost its port starts again afresh.
        for attempt in range(3):
            try:
                _script("kafka", "start", self.state, timeout=240)
                break
            except RuntimeError as exc:
                if "Address already in use" not in str(exc) or attempt == 2:
                    raise
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    _script("kafka", "stop", self.state, timeout=60)
                shutil.rmtree(self.state, ignore_errors=True)
                self.state.mkdir(parents=True)
        self.bootstrap = _env_value(self.state / "kafka.env",
                                    "DEALREG_TEST_KAFKA_BOOTSTRAP_SERVERS")
        return self.bootstrap

    def restart(self, hard: bool = False, ready_timeout: float = 180.0) -> None:
        pidfile = self.state / "kafka" / "pid"
        pid = int(pidfile.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
        if not _wait_gone(pid, 60):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 20)
        with open(self.state / "kafka" / "stdout.log", "ab") as out:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=child.wait, daemon=True).start()  # reap it when it exits
        self._children.append(child)
        pidfile.write_text(f"{child.pid}\n")
        deadline = time.monotonic() + ready_timeout
        while True:
            status = subprocess.run(["bash", str(DEPLOY / "kafka.sh"), "status",
                                     str(self.state)], capture_output=True, timeout=60,
                                    stdin=subprocess.DEVNULL, check=False)
            if status.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"kafka not ready {ready_timeout:.0f} s after a restart")
            time.sleep(0.5)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            _script("kafka", "stop", self.state, timeout=90)


class Postgres:
    """One PostgreSQL cluster (deploy/postgres.sh); `restart` is `pg_ctl restart -m fast`
    (every connection is closed), on the same port and data directory."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.url = ""

    def start(self) -> str:
        _script("postgres", "start", self.state, timeout=180)
        self.url = _env_value(self.state / "postgres.env", "DEALREG_TEST_DATABASE_URL")
        return self.url

    def restart(self, timeout: float = 120.0) -> None:
        data = self.state / "pg" / "data"
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        bindir = Path(os.readlink(f"/proc/{pid}/exe")).parent
        command = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t",
                   str(int(timeout)), "-l", str(self.state / "pg" / "postgres.log"), "restart"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 30,
                              stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed: {proc.stdout}\n{proc.stderr}")
        deadline = time.monotonic() + timeout
        while subprocess.run(["bash", str(DEPLOY / "postgres.sh"), "status", str(self.state)],
                             capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                             check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise TimeoutError("postgres not ready after a restart")
            time.sleep(0.25)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            _script("postgres", "stop", self.state, timeout=90)
