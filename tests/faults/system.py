"""The system under fault: real `dealreg serve` processes (registration, projections, two
adjudicators) on the fault suite's own Kafka and PostgreSQL, a real webhook receiver, and a
steady load of realistic registrations (tests/support/companies.py) sent the way a careful
client sends them: every command carries an `Idempotency-Key` and is retried with the same
key after a 5xx, a 409 "in progress", a 429 or a connection error."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.companies import Registration, generate
from tests.support.processes import free_port

ADMIN = "faults-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
PARTITIONS = 4
SESSION_TIMEOUT_SECONDS = 10.0
"""The consumer session timeout the campaign's processes run with
(`DEALREG_KAFKA_SESSION_TIMEOUT_MS`; shorter than the default so a paused member is
evicted quickly)."""


class Service:
    """One `dealreg serve KIND` process; its stderr goes to a log file."""

    def __init__(self, name: str, kind: str, env: dict[str, str], logs: Path) -> None:
        self.name, self.kind, self.env = name, kind, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dealreg", "serve", self.kind, "--port", str(self.port)],
                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.starts += 1

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def service_env(bootstrap: str, database_url: str, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env.update({
        "DEALREG_ADMIN_TOKEN": ADMIN,
        "DEALREG_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DEALREG_DATABASE_URL": database_url,
        "DEALREG_TOPIC_PREFIX": prefix,
        "DEALREG_TOPIC_PARTITIONS": str(PARTITIONS),
        "DEALREG_KAFKA_SESSION_TIMEOUT_MS": str(int(SESSION_TIMEOUT_SECONDS * 1000)),
        "DEALREG_ADJUDICATOR_GROUP": f"{prefix}-adjudicator",
        "DEALREG_PROJECTIONS_GROUP": f"{prefix}-projections",
        "DEALREG_LOG_LEVEL": "WARNING",
        "DEALREG_LOG_FORMAT": "json",
        # A crashed worker (its broker or database went away) comes back within seconds.
        "DEALREG_WORKER_BACKOFF_MAX_SECONDS": "4",
        # A command whose process was killed mid-request may be retried after 5 s.
        "DEALREG_IDEMPOTENCY_LEASE_SECONDS": "5",
        # Snapshots often, so recoveries start from one and replay a tail.
        "DEALREG_SNAPSHOT_EVERY_EVENTS": "300",
        "DEALREG_SNAPSHOT_EVERY_SECONDS": "15",
        # The receiver is on loopback; retries span any outage the suite causes.
        "DEALREG_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        # Retries every few seconds for ten minutes: longer than any outage here, short
        # enough that the checker need not wait long for a delivery a fault postponed.
        "DEALREG_NOTIFICATION_SCHEDULE_SECONDS": json.dumps([0, 1, 2] + [4] * 150),
        "DEALREG_NOTIFICATION_JITTER": "0",
        "DEALREG_NOTIFICATION_POLL_SECONDS": "0.2",
        "DEALREG_RATE_LIMIT_PER_SECOND": "0",
    })
    return env


async def ready(service: Service, timeout: float) -> None:
    """Until `/readyz` answers 200 (workers running, Kafka and the database reachable)."""
    deadline = time.monotonic() + timeout
    last = ""
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < deadline:
            if service.proc is not None and service.proc.poll() is not None:
                raise RuntimeError(f"{service.name} exited ({service.proc.returncode}):\n"
                                   f"{service.tail()}")
            try:
                got = await client.get(f"{service.url}/readyz")
                if got.status_code == 200:
                    return
                last = got.text[:500]
            except httpx.TransportError as exc:
                last = repr(exc)
            await asyncio.sleep(0.25)
    raise TimeoutError(f"{service.name} not ready within {timeout:.0f} s ({last}):\n"
                       f"{service.tail()}")


@dataclass
class Outcome:
    seq: int
    status: int | None = None
    """The final HTTP status (None: never answered definitively)."""
    registration_id: str | None = None
    attempts: int = 0


@dataclass
class Load:
    """Registrations at a steady rate, each retried with its Idempotency-Key."""

    url: str
    run_id: str
    rate: float
    concurrency: int = 16
    give_up_seconds: float = 240.0
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    retried_by: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    _workload: list[Registration] = field(default_factory=list)

    def title(self, seq: int) -> str:
        return f"{self.run_id} #{seq}"

    async def run(self, stop: asyncio.Event, count: int, seed: int = 15) -> None:
        self._workload = list(generate(seed, registrations=count).registrations)
        gate = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        limits = httpx.Limits(max_connections=self.concurrency,
                              max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, headers=AUTH, timeout=30,
                                     limits=limits) as client:
            for seq, registration in enumerate(self._workload):
                if stop.is_set():
                    break
                # The k-th command is due at k / rate (open loop, not "after the last").
                delay = started + seq / self.rate - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    if stop.is_set():
                        break
                await gate.acquire()
                task = asyncio.create_task(self._send(client, seq, registration, gate))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                self.sent += 1
            if tasks:
                await asyncio.gather(*tasks)

    async def _send(self, client: httpx.AsyncClient, seq: int, registration: Registration,
                    gate: asyncio.Semaphore) -> None:
        outcome = self.outcomes[seq] = Outcome(seq)
        body = registration.request(title=self.title(seq))
        headers = {"Idempotency-Key": f"{self.run_id}-{seq}"}
        deadline = time.monotonic() + self.give_up_seconds
        try:
            while time.monotonic() < deadline:
                outcome.attempts += 1
                try:
                    response = await client.post("/v1/registrations", json=body,
                                                 headers=headers)
                except httpx.TransportError as exc:
                    self.retried_by[type(exc).__name__] += 1
                else:
                    if response.status_code < 300:
                        outcome.status = response.status_code
                        outcome.registration_id = response.json()["id"]
                        return
                    if response.status_code < 500 and response.status_code not in (409, 429):
                        outcome.status = response.status_code  # refused: final
                        return
                    self.retried_by[str(response.status_code)] += 1
                await asyncio.sleep(min(0.25 * 2 ** min(outcome.attempts, 4), 3.0))
        finally:
            gate.release()

    def summary(self) -> dict[str, Any]:
        statuses = Counter(o.status for o in self.outcomes.values())
        return {"sent": self.sent, "accepted": sum(n for s, n in statuses.items()
                                                   if s is not None and s < 300),
                "refused": sum(n for s, n in statuses.items() if s is not None and s >= 300),
                "unanswered": statuses.get(None, 0),
                "retried_commands": sum(o.attempts > 1 for o in self.outcomes.values()),
                "retries_by_cause": dict(self.retried_by)}
