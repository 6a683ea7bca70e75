"""One process's wiring: the event log, the read-model store, and the workers it runs.

`dealreg dev` runs every component in one process on the embedded backend; `dealreg serve X`
runs one component against Kafka and PostgreSQL. Nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from services.adjudication.worker import run_adjudicator
from services.projections.domain.batch import MODELS, NOTIFICATIONS
from services.projections.notifications import NotificationSender
from services.projections.worker import ProjectionWorker
from shared.api.auth import Authenticator
from shared.eventlog import EventLog
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.kafka import KafkaEventLog
from shared.eventlog.topics import Topics
from shared.logging import get_logger
from shared.readmodel.store import create_engine, migrate
from shared.readmodel.waiter import DecisionWaiter
from shared.settings import Settings

log = get_logger(__name__)

Component = Literal["registration", "adjudication", "projections"]
ALL: frozenset[Component] = frozenset({"registration", "adjudication", "projections"})


def build_eventlog(settings: Settings) -> EventLog:
    if settings.backend == "embedded":
        return EmbeddedEventLog(settings.embedded_log_path,
                                synchronous=settings.embedded_synchronous)
    return KafkaEventLog(
        settings.kafka_bootstrap_servers,
        replication_factor=settings.kafka_replication_factor,
        transaction_timeout_ms=settings.kafka_transaction_timeout_ms,
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
    notification_sender: NotificationSender | None = None
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    ready: bool = False
    _stopping: bool = False

    @classmethod
    def build(cls, settings: Settings, components: frozenset[Component] = ALL) -> Runtime:
        engine = create_engine(settings.readmodel_url)
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
            )
            runtime.notification_sender = NotificationSender(engine, settings)
        return runtime

    def stopping(self) -> bool:
        return self._stopping

    async def start(self) -> None:
        await self.eventlog.start()
        await self.eventlog.create_topics(self.topics.specs(self.settings.topic_partitions))
        if self.components & {"registration", "projections"}:
            await migrate(self.engine, on_wait=lambda: log.info(
                "migration_waiting", detail="another process is upgrading the schema"))
        if "adjudication" in self.components:
            self._supervise("adjudicator", lambda: run_adjudicator(
                self.eventlog, self.topics, group_id=self.settings.adjudicator_group,
                source=f"{self.settings.source}/adjudication", stopping=self.stopping,
                snapshot_every_events=self.settings.snapshot_every_events,
                snapshot_every_seconds=self.settings.snapshot_every_seconds,
            ))
        if self.projection_worker is not None:
            worker = self.projection_worker
            self._supervise("projections", lambda: worker.run(self.stopping))
        if self.notification_sender is not None:
            sender = self.notification_sender
            self._supervise("notifications", lambda: sender.run(self.stopping))
        self.ready = True
        log.info("runtime_started", backend=self.settings.backend,
                 components=sorted(self.components))

    def _supervise(self, name: str, make: Callable[[], Awaitable[None]]) -> None:
        async def loop() -> None:
            while not self._stopping:
                try:
                    await make()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Crash-only: state is rebuilt from the log on the next run.
                    log.exception("worker_crashed_restarting", worker=name)
                    await asyncio.sleep(1.0)

        self.tasks[name] = asyncio.create_task(loop(), name=name)

    async def stop(self) -> None:
        self._stopping = True
        self.ready = False
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks.values(), timeout=10)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.eventlog.close()
        await self.engine.dispose()
