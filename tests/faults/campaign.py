"""A fault campaign: start everything, keep a steady load, inject faults one after the
other (each followed by a bounded wait until every service is ready again and some load
under the recovered system), stop the load, wait until the pipeline caught up, check.

Fault kinds:
- `kill-registration`, `kill-adjudication`, `kill-projections`: SIGKILL of one process of
  that kind, restarted at once (as an orchestrator would);
- `restart-kafka`: the broker stopped (SIGTERM) and started again on the same port and data;
- `restart-postgres`: `pg_ctl restart -m fast` (every connection closed);
- `pause-adjudicator`: one adjudicator SIGSTOPped past its consumer session timeout (the
  group rebalances its partitions to the other), then SIGCONTed;
- `poison`: a record no consumer can decode appended to an intake partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from shared.eventlog import OutgoingRecord, TopicPartition
from shared.eventlog.kafka import KafkaEventLog
from shared.eventlog.topics import Topics
from shared.readmodel.store import create_engine
from tests.faults import checker
from tests.faults.infra import Kafka, Postgres
from tests.faults.system import (
    AUTH,
    PARTITIONS,
    SESSION_TIMEOUT_SECONDS,
    Load,
    Service,
    ready,
    service_env,
)
from tests.support.receivers import HttpReceiver

KINDS = ("poison", "kill-registration", "kill-adjudication", "kill-projections",
         "pause-adjudicator", "restart-kafka", "restart-postgres")

POISONS: tuple[bytes, ...] = (
    b"\x00\xff not even JSON",
    orjson.dumps({"specversion": "1.0", "id": "evt_poison_type", "source": "urn:faults",
                  "type": "registration.teleported.v1", "time": "2026-11-26T12:00:00Z",
                  "subject": "dom:poison.example", "data": {}}),
    orjson.dumps({"specversion": "1.0", "id": "evt_poison_version", "source": "urn:faults",
                  "type": "registration.submitted.v97", "time": "2026-11-26T12:00:00Z",
                  "subject": "dom:poison.example", "data": {}}),
)


@dataclass
class Report:
    faults: Counter[str] = field(default_factory=Counter)
    load: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    discrepancies: list[str] = field(default_factory=list)
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"faults injected: {sum(self.faults.values())} "
               + " ".join(f"{k}={self.faults[k]}" for k in KINDS if self.faults[k])]
        out.append("commands: " + " ".join(f"{k}={v}" for k, v in self.load.items()
                                           if k != "retries_by_cause"))
        out.append(f"retries by cause: {self.load.get('retries_by_cause', {})}")
        out.append("checked: " + " ".join(f"{k}={v}" for k, v in self.counts.items()))
        out.append(f"discrepancies: {len(self.discrepancies)}")
        out += [f"  - {d}" for d in self.discrepancies[:50]]
        out.append(f"wall time: {self.seconds:.0f} s")
        return out


class Campaign:
    def __init__(self, *, rate: float, say: Callable[[str], None] = print,
                 ready_timeout: float = 240.0) -> None:
        self.rate = rate
        self.say = say
        self.ready_timeout = ready_timeout
        self.run_id = f"f{uuid.uuid4().hex[:8]}"
        self.root = Path(tempfile.mkdtemp(prefix="dealreg-faults-"))
        self.root.chmod(0o711)  # PostgreSQL runs as its own user and must reach its state
        self.kafka = Kafka(self.root / "kafka")
        self.postgres = Postgres(self.root / "postgres")
        self.topics = Topics.named(self.run_id)
        self.services: list[Service] = []
        self.hook = HttpReceiver()
        self.poison: list[tuple[TopicPartition, int]] = []
        self.report = Report()
        self.rng = random.Random(self.run_id)
        self._started = time.monotonic()

    def note(self, text: str) -> None:
        line = f"[{time.monotonic() - self._started:6.1f}s] {text}"
        self.report.log.append(line)
        self.say(line)

    # setup ---------------------------------------------------------------------------------

    async def start(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.note("starting Kafka and PostgreSQL (deploy/ scripts)")
        # Both finish (or fail) before anything else: `close` must find what started.
        started = await asyncio.gather(asyncio.to_thread(self.kafka.start),
                                       asyncio.to_thread(self.postgres.start),
                                       return_exceptions=True)
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        await self.hook.start()
        env = service_env(self.kafka.bootstrap, self.postgres.url, self.run_id)
        logs = self.root / "logs"
        self.services = [Service("projections", "projections", env, logs),
                         Service("registration", "registration", env, logs),
                         Service("adjudication-a", "adjudication", env, logs),
                         Service("adjudication-b", "adjudication", env, logs)]
        # The first migrates and creates the topics; the others then start together.
        self.services[0].start()
        await ready(self.services[0], self.ready_timeout)
        for service in self.services[1:]:
            service.start()
        await self.all_ready()
        self.note("services ready: " + ", ".join(f"{s.name}={s.url}" for s in self.services))
        async with httpx.AsyncClient(base_url=self.of("registration").url, headers=AUTH,
                                     timeout=30) as client:
            for owner in ("cm-1", "dir-1"):
                put = await client.put(f"/v1/owners/{owner}", json={
                    "name": f"Owner {owner}", "webhook_url": self.hook.url})
                assert put.status_code in (200, 201), put.text

    def of(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    async def all_ready(self) -> None:
        await asyncio.gather(*(ready(s, self.ready_timeout) for s in self.services))

    async def close(self, keep_logs: bool = False) -> None:
        for service in self.services:
            with contextlib.suppress(Exception):
                service.stop()
        await self.hook.stop()
        await asyncio.gather(asyncio.to_thread(self.kafka.stop),
                             asyncio.to_thread(self.postgres.stop))
        if keep_logs:  # the services' logs, for whoever investigates a failure
            kept = Path(tempfile.gettempdir()) / f"dealreg-faults-logs-{self.run_id}"
            shutil.copytree(self.root / "logs", kept, dirs_exist_ok=True)
            self.say(f"services' logs kept in {kept}")
        shutil.rmtree(self.root, ignore_errors=True)

    def logs_tail(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.tail(15)}" for s in self.services)

    # faults --------------------------------------------------------------------------------

    async def inject(self, kind: str) -> None:
        began = time.monotonic()
        if kind.startswith("kill-"):
            candidates = [s for s in self.services if s.kind == kind.removeprefix("kill-")]
            victim = self.rng.choice(candidates)
            victim.kill()
            victim.start()
            what = f"SIGKILL {victim.name}, restarted"
        elif kind == "pause-adjudicator":
            victim = self.rng.choice([s for s in self.services if s.kind == "adjudication"])
            victim.signal(signal.SIGSTOP)
            # The fault is the pause itself: longer than the session timeout, so the group
            # coordinator evicts the member and gives its partitions to the other one.
            await asyncio.sleep(SESSION_TIMEOUT_SECONDS * 1.5)
            victim.signal(signal.SIGCONT)
            what = f"SIGSTOP {victim.name} for {SESSION_TIMEOUT_SECONDS * 1.5:.0f} s, SIGCONT"
        elif kind == "restart-kafka":
            await asyncio.to_thread(self.kafka.restart)
            what = "broker stopped and started"
        elif kind == "restart-postgres":
            await asyncio.to_thread(self.postgres.restart)
            what = "pg_ctl restart -m fast"
        elif kind == "poison":
            what = await self._poison()
        else:
            raise ValueError(kind)
        await self.all_ready()
        self.report.faults[kind] += 1
        self.note(f"{kind}: {what}; all ready after {time.monotonic() - began:.1f} s")

    async def _poison(self) -> str:
        log = KafkaEventLog(self.kafka.bootstrap, client_id="faults-poison")
        await log.start()
        try:
            partition = self.rng.randrange(PARTITIONS)
            value = POISONS[len(self.poison) % len(POISONS)]
            [landed] = await log.append([OutgoingRecord(self.topics.intake, "poison", value,
                                                        partition=partition)])
        finally:
            await log.close()
        self.poison.append((TopicPartition(landed.topic, landed.partition), landed.offset))
        return f"{value[:30]!r} at intake {landed.partition}@{landed.offset}"

    # the run -------------------------------------------------------------------------------

    async def run(self, plan: Sequence[str], *, load_seconds_between: float,
                  duration: float | None = None, check_timeout: float = 300.0) -> Report:
        """Inject `plan` in order (with `duration`: loop over it, shuffled, until then)."""
        load = Load(self.of("registration").url, self.run_id, self.rate)
        stop = asyncio.Event()
        capacity = int(self.rate * ((duration or 0) + len(plan) * 120 + 600))
        loader = asyncio.create_task(load.run(stop, count=capacity))
        began = time.monotonic()
        try:
            await asyncio.sleep(load_seconds_between)  # the load runs; no fault yet
            round_ = 0
            while True:
                kinds = list(plan)
                if duration is not None and round_:
                    self.rng.shuffle(kinds)
                for kind in kinds:
                    if loader.done():
                        loader.result()
                    await self.inject(kind)
                    await asyncio.sleep(load_seconds_between * self.rng.uniform(0.7, 1.3))
                    if duration is not None and time.monotonic() - began > duration:
                        break
                round_ += 1
                if duration is None or time.monotonic() - began > duration:
                    break
        finally:
            stop.set()
            self.note("load stopping; waiting for unanswered commands' retries")
            await asyncio.wait_for(loader, load.give_up_seconds + 60)
        self.report.load = load.summary()
        # Retries that took over a reservation a killed process stranded after its append
        # and answered from the event found in the log (nothing appended again).
        self.report.load["recovered_from_log"] = sum(
            s.log_path.read_text(errors="replace").count('"command_recovered"')
            for s in self.services if s.kind == "registration" and s.log_path.exists())
        self.note(f"load: {self.report.load}")
        await self.check(load, check_timeout)
        return self.report

    async def check(self, load: Load, timeout: float) -> None:
        log = KafkaEventLog(self.kafka.bootstrap, client_id="faults-checker")
        await log.start()
        engine = create_engine(self.postgres.url)
        try:
            self.note("waiting for the adjudicator and the projections to catch up")
            await checker.quiesce(log, engine, self.topics, f"{self.run_id}-adjudicator",
                                  timeout)
            self.note("checking")
            verdict = await checker.check(
                log, engine, self.topics, server_url=self.postgres.url,
                fresh_name=f"rebuilt_{self.run_id}",
                titles={load.title(seq): seq for seq in load.outcomes},
                outcomes=load.outcomes, poison=self.poison, hook=self.hook)
        finally:
            await engine.dispose()
            await log.close()
        self.report.counts = verdict.counts
        self.report.discrepancies = verdict.discrepancies
        self.report.seconds = time.monotonic() - self._started
