"""dealreg's three components in one process on the embedded backend, driven step by step.

The same objects `dealreg dev` runs (the registration `Commands`, the `Adjudicator` worker,
the `ProjectionWorker`, the embedded event log and SQLite read model), without their
background loops: `pump()` does what the loops do, deterministically, until nothing is left
to do: the adjudicator decides every new intake record exactly as its transactional loop
does (`prepare` + `process`, outputs appended), timers due on the simulated clock are
appended by `tick` and decided, then the projection worker folds the new intake and
decision records; then every post-decision re-report the decisions woke
(`Commands._re_report`, run by the registration service's `ReReporter`) is run to its end
and what it appended is decided and projected in turn: the projection worker hands its
committed rows to the registration service's waiter as the co-located one does
(`on_applied`), so the re-report runs at a fixed point of every step, never by a wall-clock
wait (the re-reporter's periodic sweep is not started: `Commands.start` sweeps once, to
resume what a stopped process left). `restart()` throws the in-memory state of the
adjudicator and the registration service away and rebuilds it from the log and read
model, as a new process would: the adjudicator from its newest state snapshot (taken
every few events, in the embedded backend's real snapshot files) plus the tail of the log.

Time is simulated: `SimClock` replaces the wall clock of the command handlers, the
reference data and the adjudicator's timer loop, so a test can move weeks ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from dealreg.runtime import Runtime
from services.adjudication import worker as worker_module
from services.adjudication.snapshots import store_for
from services.adjudication.worker import Adjudicator
from services.projections.domain.batch import MODELS
from services.projections.worker import ProjectionWorker
from services.registration import handlers as handlers_module
from services.registration.adapters import reference as reference_module
from services.registration.handlers import Commands
from shared.api.auth import Principal
from shared.eventlog import Record, TopicPartition
from shared.events import DomainEvent, Envelope
from shared.events.codec import decode
from shared.readmodel.store import migrate
from shared.settings import Settings

ADMIN = Principal("admin")
SNAPSHOT_EVERY = 5
"""Events between the adjudicator's state snapshots: small, so restarts recover from one."""
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class SimClock:
    def __init__(self, start: datetime = EPOCH) -> None:
        self.now = start

    def advance(self, delta: timedelta) -> None:
        self.now += delta

    def __call__(self) -> datetime:
        return self.now


def _clocked(clock: SimClock) -> type[datetime]:
    class _Clocked(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return clock.now if tz is None else clock.now.astimezone(tz)

    return _Clocked


@contextlib.contextmanager
def simulated_time(clock: SimClock) -> Iterator[None]:
    """The edge's wall clock reads `clock` (command stamps, policy and partner updates), and
    ids are a counter instead of time + randomness (still ordered by creation), so a run
    is the same run every time: Hypothesis's derandomized examples take the same paths."""
    fake = _clocked(clock)
    counter = itertools.count(1)

    def new_id(prefix: str) -> str:
        return f"{prefix}_{next(counter):026d}"

    with mock.patch.object(handlers_module, "datetime", fake), \
            mock.patch.object(reference_module, "datetime", fake), \
            mock.patch.object(handlers_module, "new_id", new_id), \
            mock.patch.object(reference_module, "new_id", new_id), \
            mock.patch.object(worker_module, "new_id", new_id):
        yield


_TEMPLATE: dict[str, Path] = {}


async def _template_readmodel(root: Path) -> Path:
    """A migrated, empty read model, made once per process and copied per pipeline
    (migrations take most of a start-up)."""
    found = _TEMPLATE.get("readmodel")
    if found is not None and found.exists():
        return found
    directory = root / "template"
    directory.mkdir(parents=True, exist_ok=True)
    settings = Settings(backend="embedded", data_dir=directory, admin_token="t")
    runtime = Runtime.build(settings, frozenset({"projections"}))
    await migrate(runtime.engine)
    await runtime.engine.dispose()
    _TEMPLATE["readmodel"] = directory / "readmodel.sqlite3"
    return _TEMPLATE["readmodel"]


class Pipeline:
    """Registration handlers -> embedded intake log -> adjudicator -> decisions log ->
    projections, in one process, one step at a time."""

    def __init__(self, data_dir: Path, clock: SimClock, *, partitions: int = 3,
                 template_root: Path | None = None) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.template_root = template_root
        self.settings = Settings(backend="embedded", data_dir=data_dir, admin_token="t",
                                 topic_partitions=partitions, reference_cache_seconds=0,
                                 unknown_partners="accept")
        self.runtime = Runtime.build(self.settings)
        self.topics = self.runtime.topics
        self.eventlog = self.runtime.eventlog
        self.commands: Commands
        self.adjudicator: Adjudicator
        self.projections: ProjectionWorker
        self.adjudicated: dict[TopicPartition, int] = {}
        self.projected: dict[TopicPartition, int] = {}
        self.decisions_seen: dict[TopicPartition, int] = {}
        self.follow_ups = True
        """Run the re-reports at the end of every pump (False: the decisions wake no
        re-report, as if no registration process ever ran them)."""
        self.distributed = False
        """Every registration process's directory as the distributed deployment runs it
        (`complete=False`: files only what it appends, asks the directory tables for the
        rest), for machines that add processes (`other_edge`): one embedded-style process
        beside them would never learn the keys they file."""
        self.edges: list[Commands] = []
        """Other registration processes (`other_edge`), each with its own directory."""
        self.re_reports = 0
        """Re-reports run to their end that appended something (statistics)."""

    async def start(self) -> None:
        if self.template_root is not None:
            template = await _template_readmodel(self.template_root)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template, self.data_dir / "readmodel.sqlite3")
        await self.eventlog.start()
        await self.eventlog.create_topics(self.topics.specs(self.settings.topic_partitions))
        if self.template_root is None:
            await migrate(self.runtime.engine)
        self.projections = ProjectionWorker(self.eventlog, self.runtime.engine, self.topics,
                                            group_id="projections", models=MODELS,
                                            on_applied=self._decided)
        await self._start_edge()
        await self._start_adjudicator()

    async def _start_edge(self) -> None:
        self.commands = Commands(self.runtime)
        self.commands.directory.complete = not self.distributed
        await self.commands.start()

    async def _start_adjudicator(self) -> None:
        self.adjudicator = Adjudicator(self.eventlog, self.topics, "test/adjudication",
                                       clock=self.clock, timer_interval=0.0,
                                       snapshots=store_for(self.eventlog, self.topics),
                                       snapshot_every_events=SNAPSHOT_EVERY)
        ends = await self.eventlog.end_positions(self.topics.intake)
        positions = {tp: self.adjudicated.get(tp, 0) for tp in ends}
        await self.adjudicator.assigned(positions)

    async def other_edge(self) -> Commands:
        """A second registration process on the same log and read model, as the
        distributed deployment runs them: its directory is warmed from the read model now,
        keeps only what it appends itself and asks the directory tables for the rest
        (`complete=False`): two partners' requests reaching two processes, DESIGN.md "Two
        first registrations racing across partitions"."""
        edge = Commands(self.runtime)
        edge.directory.complete = False
        await edge.start()
        self.edges.append(edge)
        return edge

    async def drop_edge(self, edge: Commands) -> None:
        self.edges.remove(edge)
        await edge.stop()
        # Its pending re-reports are released: a surviving process's sweep takes them over.
        await self.commands.re_reporter.sweep()

    async def restart(self) -> None:
        """A new adjudicator (state rebuilt from the intake log up to its position) and a
        new registration service (directory re-warmed from the read model)."""
        await self.adjudicator.revoked(list(self.adjudicator.states))
        if self.adjudicator.snapshots is not None:
            await self.adjudicator.snapshots.close()
        await self.commands.stop()
        await self._start_edge()
        await self._start_adjudicator()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            for edge in (*self.edges, self.commands):
                await edge.stop()
        await self.eventlog.close()
        await self.runtime.engine.dispose()

    async def _read(self, tp: TopicPartition, start: int, end: int) -> list[Record]:
        out: list[Record] = []
        async for batch in self.eventlog.read(tp, start, end):
            out.extend(batch)
        return out

    def _decided(self, registration_ids: Any, rows: Any) -> None:
        if self.follow_ups:  # the co-located worker's hand-over (dealreg/runtime.py)
            self.runtime.waiter.notify(registration_ids, rows)

    async def pump(self, rounds: int = 50) -> None:
        """Decide everything appended (and every timer due now), then project it; then
        run the re-reports that follow registrations (`Commands._re_report`) to their end,
        and decide and project what they appended, until none is left."""
        for _ in range(rounds):
            await self._pump_once(rounds)
            if not self.follow_ups:
                return
            before = await self.eventlog.end_positions(self.topics.intake)
            for edge in (self.commands, *self.edges):
                await asyncio.wait_for(edge.re_reporter.settled(), 30)
            if await self.eventlog.end_positions(self.topics.intake) == before:
                return
            self.re_reports += 1
        raise AssertionError(f"the re-reports did not settle in {rounds} rounds")

    async def _pump_once(self, rounds: int) -> None:
        for _ in range(rounds):
            progressed = False
            ends = await self.eventlog.end_positions(self.topics.intake)
            for tp in sorted(ends):
                start = self.adjudicated.get(tp, 0)
                if start < ends[tp]:
                    records = await self._read(tp, start, ends[tp])
                    await self.adjudicator.prepare(tp, records)
                    outputs = self.adjudicator.process(tp, records)
                    self.adjudicated[tp] = ends[tp]
                else:
                    outputs = self.adjudicator.tick(tp)
                if outputs:
                    await self.eventlog.append(outputs)
                    progressed = True
                progressed = progressed or start < ends[tp]
            if not progressed:
                break
        else:
            raise AssertionError(f"the adjudicator did not settle in {rounds} rounds")
        for topic in (self.topics.intake, self.topics.decisions):
            await self.project(topic)

    async def project(self, topic: str) -> None:
        """Fold what `topic` holds beyond the projections' position (the intake alone: a
        registration's submitted row in the read model before its decision, as the
        projections' two consumers may have it)."""
        ends = await self.eventlog.end_positions(topic)
        for tp in sorted(ends):
            start = self.projected.get(tp, 0)
            if start < ends[tp]:
                await self.projections.apply(await self._read(tp, start, ends[tp]))
                self.projected[tp] = ends[tp]

    async def new_decisions(self) -> list[tuple[Envelope, DomainEvent]]:
        """Decision records appended since the last call, per partition in log order."""
        out: list[tuple[Envelope, DomainEvent]] = []
        ends = await self.eventlog.end_positions(self.topics.decisions)
        for tp in sorted(ends):
            start = self.decisions_seen.get(tp, 0)
            if start < ends[tp]:
                out.extend(decode(r.value) for r in await self._read(tp, start, ends[tp]))
                self.decisions_seen[tp] = ends[tp]
        return out

    async def all_records(self, topic: str) -> dict[TopicPartition, list[Record]]:
        ends = await self.eventlog.end_positions(topic)
        return {tp: await self._read(tp, 0, ends[tp]) for tp in sorted(ends)}
