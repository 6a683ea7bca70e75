"""One process's wiring: the event log, the read-model store, and the workers it runs.

`dealreg dev` runs every component in one process on the embedded backend; `dealreg serve X`
runs one component against Kafka and PostgreSQL. Nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.adjudication.worker import run_adjudicator
from services.projections.domain.batch import MODELS, NOTIFICATIONS
from services.projections.notifications import NotificationSender
from services.projections.worker import ProjectionWorker
from shared import metrics
from shared.api.auth import Authenticator
from shared.eventlog import EventLog, TopicPartition
from shared.eventlog.embedded import CLOSE_GRACE_SECONDS, EmbeddedEventLog
from shared.eventlog.kafka import KafkaEventLog
from shared.eventlog.topics import Topics
from shared.logging import get_logger
from shared.readmodel.store import create_engine, migrate
from shared.readmodel.waiter import DecisionListener, DecisionWaiter
from shared.settings import Settings

log = get_logger(__name__)

Component = Literal["registration", "adjudication", "projections"]
ALL: frozenset[Component] = frozenset({"registration", "adjudication", "projections"})


@dataclass
class Backoff:
    """Exponential back-off with jitter for restarting a crashed worker: the n-th crash in
    a row waits a random time in [d/2, d], d = min(maximum, initial * 2**(n-1)); a run
    that lasted `healthy_after` seconds or more starts the sequence again."""

    initial: float
    maximum: float
    healthy_after: float
    attempt: int = 0

    def next_delay(self, ran_for: float, rand: Callable[[], float] = random.random) -> float:
        if ran_for >= self.healthy_after:
            self.attempt = 0
        ceiling = min(self.maximum, self.initial * float(2 ** min(self.attempt, 60)))
        self.attempt += 1
        return ceiling / 2 + rand() * ceiling / 2


@dataclass
class WorkerHealth:
    """What `/readyz` and `/metrics` know about one supervised worker."""

    name: str
    backoff: Backoff
    state: Literal["starting", "running", "backoff", "stopped"] = "starting"
    restarts: int = 0
    started_at: float = 0.0
    last_error: str | None = None
    next_start_at: float | None = None
    crashes: deque[float] = field(default_factory=lambda: deque(maxlen=100))

    def running(self) -> None:
        self.state = "running"
        self.started_at = time.monotonic()
        self.next_start_at = None
        metrics.WORKER_UP.labels(self.name).set(1)
        metrics.WORKER_BACKOFF.labels(self.name).set(0)

    def crashed(self, exc: BaseException) -> float:
        """Record a crash; the seconds to wait before the next start."""
        now = time.monotonic()
        delay = self.backoff.next_delay(now - self.started_at)
        self.state = "backoff"
        self.restarts += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        self.next_start_at = now + delay
        self.crashes.append(now)
        metrics.WORKER_RESTARTS.labels(self.name).inc()
        metrics.WORKER_UP.labels(self.name).set(0)
        metrics.WORKER_BACKOFF.labels(self.name).set(delay)
        return delay

    def stopped(self) -> None:
        self.state = "stopped"
        metrics.WORKER_UP.labels(self.name).set(0)

    def problem(self, now: float, crash_limit: int) -> str | None:
        """Why this worker makes the process unready: it is waiting to restart after a
        crash, or it crashed `crash_limit` times within the healthy period (crash-looping)."""
        if self.state == "backoff":
            return "restarting"
        window = self.backoff.healthy_after
        recent = sum(1 for at in self.crashes if now - at <= window)
        if recent >= crash_limit:
            return "crash-looping"
        return None

    def detail(self, now: float) -> dict[str, object]:
        return {"state": self.state, "restarts": self.restarts, "last_error": self.last_error,
                "restarting_in_seconds": (round(max(0.0, self.next_start_at - now), 3)
                                          if self.next_start_at is not None else None)}


class DependencyChecks:
    """Cheap, time-bounded checks of the event log and the database, cached briefly, and
    the gauges measured when `/metrics` is scraped (adjudicator lag, outbox depth)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.lock = asyncio.Lock()
        self.checked_at: float | None = None
        self.results: dict[str, str | None] = {}
        self.measured_at: float | None = None

    def _wanted(self) -> list[str]:
        wanted = ["eventlog"]
        if self.runtime.components & {"registration", "projections"}:
            wanted.append("database")
        return wanted

    async def dependencies(self) -> dict[str, str | None]:
        """Each dependency: None when it answered, else what went wrong."""
        settings = self.runtime.settings
        async with self.lock:
            now = time.monotonic()
            if (self.checked_at is not None
                    and now - self.checked_at < settings.readiness_cache_seconds):
                return self.results
            names = self._wanted()
            found = await asyncio.gather(*(self._check(name) for name in names))
            results = dict(zip(names, found, strict=True))
            self.results, self.checked_at = results, time.monotonic()
            return results

    async def _check(self, name: str) -> str | None:
        """None when `name` answered in time, else what went wrong (and where)."""
        timeout = self.runtime.settings.readiness_timeout_seconds
        probe = self._eventlog if name == "eventlog" else self._database
        try:
            await asyncio.wait_for(probe(), timeout)
            why = None
        except TimeoutError:
            why = f"no answer within {timeout:g} s ({self._target(name)})"
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            why = f"{type(exc).__name__}: {first} ({self._target(name)})"
        metrics.DEPENDENCY_UP.labels(name).set(0 if why else 1)
        return why

    def _target(self, name: str) -> str:
        s = self.runtime.settings
        if name == "eventlog":
            return (f"Kafka {s.kafka_bootstrap_servers}" if s.backend == "distributed"
                    else f"embedded log {s.embedded_log_path}")
        return ("the read-model store" if s.backend == "embedded"
                else f"PostgreSQL {self.runtime.engine.url.render_as_string(hide_password=True)}")

    async def _eventlog(self) -> None:
        await self.runtime.eventlog.end_positions(self.runtime.topics.intake)

    async def _database(self) -> None:
        async with self.runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def measure(self) -> None:
        """Refresh the scrape-time gauges (each part bounded and failing alone)."""
        runtime, settings = self.runtime, self.runtime.settings
        await self.dependencies()
        now = time.monotonic()
        fresh = settings.readiness_cache_seconds
        if self.measured_at is not None and now - self.measured_at < fresh:
            return
        self.measured_at = now
        timeout = settings.readiness_timeout_seconds
        if "adjudication" in runtime.components:
            try:
                await asyncio.wait_for(self._adjudicator_lag(), timeout)
            except Exception as exc:
                log.warning("metric_unavailable", metric="adjudicator_lag", error=repr(exc))
        if runtime.notification_sender is not None:
            try:
                await asyncio.wait_for(self._outbox(), timeout)
            except Exception as exc:
                log.warning("metric_unavailable", metric="notification_outbox",
                            error=repr(exc))

    async def _adjudicator_lag(self) -> None:
        runtime = self.runtime
        metrics.set_adjudicator_lag(await adjudicator_lag(
            runtime.eventlog, runtime.topics.intake, runtime.settings.adjudicator_group,
            runtime.adjudicator_partitions))

    async def _outbox(self) -> None:
        async with self.runtime.engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT status, count(*) FROM notification_outbox GROUP BY status"))).all()
        metrics.set_outbox({str(status): int(n) for status, n in rows})


async def adjudicator_lag(eventlog: EventLog, topic: str, group: str,
                          assigned: Collection[TopicPartition]) -> dict[int, int]:
    """Per partition this replica is assigned: intake offsets not decided yet (end -
    the group's committed offset). Each replica reports its own partitions, so the group's
    lag is the sum over replicas and a stuck replica shows as itself; a replica holding no
    partition (waiting, or more replicas than partitions) reports none."""
    if not assigned:
        return {}
    ends = await eventlog.end_positions(topic)
    done = await eventlog.committed(group, topic)
    return {tp.partition: max(0, end - done.get(tp, 0)) for tp, end in ends.items()
            if tp in assigned}


def projection_hold_seconds(settings: Settings) -> float:
    """How long the co-located projection worker holds a batch of intake events for its
    decision (`ProjectionWorker`'s `hold_seconds`): the backend's own setting."""
    return (settings.kafka_projections_hold_ms if settings.backend == "distributed"
            else settings.embedded_projections_hold_ms) / 1000


def build_eventlog(settings: Settings) -> EventLog:
    if settings.backend == "embedded":
        return EmbeddedEventLog(settings.embedded_log_path,
                                synchronous=settings.embedded_synchronous,
                                linger_seconds=settings.embedded_linger_ms / 1000)
    return KafkaEventLog(
        settings.kafka_bootstrap_servers,
        replication_factor=settings.kafka_replication_factor,
        transaction_timeout_ms=settings.kafka_transaction_timeout_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        retry_backoff_ms=settings.kafka_retry_backoff_ms,
        batch_linger_ms=settings.kafka_batch_linger_ms,
        batch_linger_from_records=settings.kafka_batch_linger_from_records,
    )


@dataclass
class Runtime:
    settings: Settings
    components: frozenset[Component]
    eventlog: EventLog
    engine: AsyncEngine
    waiter: DecisionWaiter
    authenticator: Authenticator
    topics: Topics
    projection_worker: ProjectionWorker | None = None
    # The intake partitions this process's adjudicator holds (kept by the adjudicator).
    adjudicator_partitions: set[TopicPartition] = field(default_factory=set)
    notification_sender: NotificationSender | None = None
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    workers: dict[str, WorkerHealth] = field(default_factory=dict)
    ready: bool = False
    _stopping: bool = False
    _checks: DependencyChecks | None = None
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)
    shutdown_problem: str | None = None
    """After stop(): what did not end cleanly (None: it did)."""
    shutdown_stuck: bool = False
    """After stop(): a thread never came back; the process must exit without joining it."""

    @classmethod
    def build(cls, settings: Settings, components: frozenset[Component] = ALL) -> Runtime:
        engine = create_engine(settings.readmodel_url, pool_size=settings.db_pool_size,
                               max_overflow=settings.db_pool_max_overflow,
                               pool_timeout=settings.db_pool_timeout_seconds)
        eventlog = build_eventlog(settings)
        co_located = "projections" in components
        runtime = cls(
            settings=settings,
            components=components,
            eventlog=eventlog,
            engine=engine,
            waiter=DecisionWaiter(engine, in_process=co_located),
            authenticator=Authenticator(settings.admin_token, engine,
                                        cache_seconds=settings.api_key_cache_seconds),
            topics=Topics.named(settings.topic_prefix),
        )
        if co_located:
            runtime.projection_worker = ProjectionWorker(
                eventlog, engine, runtime.topics, group_id=settings.projections_group,
                on_applied=runtime.waiter.notify, models=(*MODELS, NOTIFICATIONS),
                linger_seconds=(settings.kafka_projections_linger_ms / 1000
                                if settings.backend == "distributed" else 0.0),
                linger_from=settings.kafka_projections_linger_from_records,
                hold_seconds=projection_hold_seconds(settings),
            )
            runtime.notification_sender = NotificationSender(engine, settings)
            runtime.projection_worker.on_outbox = runtime.notification_sender.wake.set
        return runtime

    def stopping(self) -> bool:
        return self._stopping

    async def start(self) -> None:
        await self.eventlog.start()
        await self.eventlog.create_topics(self.topics.specs(self.settings.topic_partitions))
        if self.components & {"registration", "projections"}:
            await migrate(self.engine, on_wait=lambda: log.info(
                "migration_waiting", detail="another process is upgrading the schema"))
        if self.projection_worker is not None:
            await self._replay_outdated_models()
        if "adjudication" in self.components:
            self._supervise("adjudicator", lambda: run_adjudicator(
                self.eventlog, self.topics, group_id=self.settings.adjudicator_group,
                source=f"{self.settings.source}/adjudication", stopping=self.stopping,
                snapshot_every_events=self.settings.snapshot_every_events,
                snapshot_every_seconds=self.settings.snapshot_every_seconds,
                assignment=self.adjudicator_partitions,
                max_records=self.settings.adjudicator_max_records,
            ))
        if ("registration" in self.components and not self.waiter.in_process
                and self.engine.dialect.name == "postgresql"):
            # `Prefer: wait` is woken by the projections' NOTIFY, holding no connection.
            listener = DecisionListener(self.settings.database_url, self.waiter)
            self._supervise("decision_listener", lambda: listener.run(self.stopping))
        if self.projection_worker is not None:
            worker = self.projection_worker
            self._supervise("projections", lambda: worker.run(self.stopping))
        if self.notification_sender is not None:
            sender = self.notification_sender
            self._supervise("notifications", lambda: sender.run(self.stopping))
        self.ready = True
        log.info("runtime_started", backend=self.settings.backend,
                 components=sorted(self.components))

    async def _replay_outdated_models(self) -> None:
        """A read model folded by an older release lacks rows this one files
        (`repository.MODEL_VERSIONS`; session 28: the directory's country-less names, which
        a registration service warmed from it forgot, approving a rival unseen). Embedded:
        replayed here, before the registration service warms from it and before the
        projection worker starts (one process owns the store). Distributed: several
        projection processes may start together, so the operator replays it once
        (`dealreg projections rebuild --model NAME`; `dealreg db upgrade` names it too)."""
        from services.projections.adapters import repository
        from services.projections.adapters.rebuild import rebuild

        async with self.engine.begin() as conn:
            outdated = await repository.outdated_models(
                conn, self.projection_worker.models if self.projection_worker else ())
        if not outdated:
            return
        if self.settings.backend != "embedded":
            log.error("read_model_outdated", models=outdated,
                      action="run `dealreg projections rebuild "
                             + " ".join(f"--model {m}" for m in outdated) + "`")
            return
        log.warning("read_model_outdated_replaying", models=outdated)
        started = time.perf_counter()
        result = await rebuild(self.eventlog, self.engine, self.topics, outdated)
        log.info("read_model_replayed", models=outdated, events=result.events,
                 seconds=round(time.perf_counter() - started, 3))

    def supervise(self, name: str, make: Callable[[], Awaitable[None]]) -> None:
        """Run `make()` as a background worker: restarted with back-off when it crashes
        (or returns before the runtime stops), its health on `/readyz` and `/metrics`."""
        self._supervise(name, make)

    def _supervise(self, name: str, make: Callable[[], Awaitable[None]]) -> None:
        s = self.settings
        health = self.workers[name] = WorkerHealth(name, Backoff(
            s.worker_backoff_initial_seconds, s.worker_backoff_max_seconds,
            s.worker_healthy_seconds))

        async def loop() -> None:
            while not self._stopping:
                health.running()
                try:
                    await make()
                    if self._stopping:
                        break
                    raise RuntimeError("the worker returned while the runtime runs")
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if self._stopping or (task is not None and task.cancelling()):
                        raise
                    # Not our cancellation: a client library cancelled a future the worker
                    # awaited (aiokafka does when its sender dies with the broker). That is
                    # a crash like any other; propagating it ended the worker for good.
                    delay = health.crashed(RuntimeError("cancelled from inside the worker"))
                    log.error("worker_crashed_restarting", worker=name, error="cancelled",
                              restarts=health.restarts, backoff_seconds=round(delay, 3))
                    await self._sleep_unless_stopping(delay)
                except Exception as exc:
                    # Crash-only: state is rebuilt from the log on the next run.
                    delay = health.crashed(exc)
                    log.exception("worker_crashed_restarting", worker=name,
                                  restarts=health.restarts, backoff_seconds=round(delay, 3))
                    await self._sleep_unless_stopping(delay)
            health.stopped()

        self.tasks[name] = asyncio.create_task(loop(), name=name)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    # --- readiness and measured metrics ------------------------------------------------

    @property
    def checks(self) -> DependencyChecks:
        if self._checks is None:
            self._checks = DependencyChecks(self)
        return self._checks

    def unhealthy_workers(self) -> dict[str, str]:
        """Workers that make the process unready, with why (crash-looping or stopped)."""
        now = time.monotonic()
        found = {}
        for name, health in self.workers.items():
            why = health.problem(now, self.settings.worker_crash_limit)
            task = self.tasks.get(name)
            if why is None and task is not None and task.done() and not self._stopping:
                why = "stopped"
            if why is not None:
                found[name] = why
        return found

    async def stop(self) -> None:
        """Stop the workers, flush and close the event log, close the store: all within
        `DEALREG_SHUTDOWN_TIMEOUT_SECONDS` whatever the disk or the servers do. What did not
        end cleanly (appends not flushed, a step that timed out) is logged as
        `shutdown_incomplete` and kept in `shutdown_problem` for the command's exit code."""
        loop = asyncio.get_running_loop()
        budget = self.settings.shutdown_timeout_seconds
        deadline = loop.time() + budget
        problems: list[str] = []
        stuck = False
        self._stopping = True
        self._stopped.set()
        self.ready = False
        if self.notification_sender is not None:
            # The idle sender sleeps up to `notification_poll_seconds`: it ends now, not
            # then (every stop took those 5 s: the suite's app fixtures 12 -> 18.6 min).
            self.notification_sender.wake.set()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks.values(), timeout=min(10.0, budget / 3))
            for task in pending:
                task.cancel()
            if pending:
                _, still = await asyncio.wait(pending, timeout=min(5.0, budget / 6))
                for task in pending - still:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        task.result()
                if still:
                    names = sorted(n for n, t in self.tasks.items() if t in still)
                    problems.append(f"worker(s) {', '.join(names)} did not stop")
                    stuck = True
        remaining = max(0.5, deadline - loop.time())
        if isinstance(self.eventlog, EmbeddedEventLog):  # bounded itself: let it report
            grace = min(CLOSE_GRACE_SECONDS, 0.4 * remaining)
            closing: Awaitable[None] = self.eventlog.close(
                flush_timeout=remaining - grace, grace=grace)
            remaining += 1.0
        else:
            closing = self.eventlog.close()
        why = await _within(closing, remaining)
        if why is not None:
            problems.append(f"the event log did not close: {why}; appends not yet "
                            "acknowledged were not flushed")
            stuck = True
        if self.eventlog.unflushed:
            problems.append(f"event log: {self.eventlog.unflushed}")
        if self.eventlog.stuck:
            problems.append("a thread of the event log never came back (the disk does not "
                            "answer); the data directory stays locked until this process ends")
            stuck = True
        why = await _within(self.engine.dispose(), max(0.5, deadline - loop.time()))
        if why is not None:
            problems.append(f"the read-model store did not close: {why}")
            stuck = True
        self.shutdown_stuck = stuck
        self.shutdown_problem = "; ".join(problems) or None
        if self.shutdown_problem is not None:
            log.error("shutdown_incomplete", problem=self.shutdown_problem,
                      shutdown_timeout_seconds=budget, threads_stuck=stuck)


async def _within(work: Awaitable[None], seconds: float) -> str | None:
    """Run `work` for at most `seconds`: None when it finished, else why not."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        return f"no end within {seconds:.1f} s"
    try:
        task.result()
    except Exception as exc:  # reported; the shutdown goes on
        return f"{type(exc).__name__}: {exc}"
    return None
