"""The adjudicator process: the pure core driven by the log's transactional loop.

- Per-partition state lives in memory. On assignment a partition's state is rebuilt by
  re-deciding its intake history up to the committed position (decisions discarded):
  `decide` is deterministic, so that reproduces exactly the state the previous owner had.
  With a snapshot store (snapshots.py) it starts from the newest snapshot at or before that
  position and re-decides only the tail; partitions recover concurrently. A snapshot is
  taken every `snapshot_every_events` events or `snapshot_every_seconds` seconds of a
  partition (whichever first), never more often than 20 times its own cost.
- Policies come from the reference topic: every version ever stamped on an event is there
  (the registration service appends a version before it stamps it). Before a batch is
  decided, `prepare` makes sure every version it names is known, re-reading the topic if
  needed and failing loudly if a version never appears.
- Each decision is keyed by its own account key (a deadline passed while deciding one
  account's event may concern another account of the partition); its envelope id derives
  from the input event id, so a decision is recognisable wherever it is computed.
- A settlement that decides copies of registrations owned by another partition yields a
  `SettlementRelayed` per copy key: it is appended to the intake log under that key, in the
  same transaction as the batch's decisions (domain/relay.py).
- Time: when the wall clock passes a deadline the state holds, a `TimerFired` is appended to
  the intake log (in the same transaction as the batch, or on a periodic tick for a quiet
  partition) and decided like any other event. Lateness (firing time - deadline) is exported.
- Recovery from a snapshot checks itself: the tail's re-decided decisions must equal the
  ones the log holds for those inputs (`_check_tail`). On a difference (a corrupt snapshot,
  a build that decides otherwise) it says so (`recovery_mismatch` at error level,
  `dealreg_adjudicator_recovery_mismatches_total`), rebuilds the partition from its whole
  history and checks the tail again: equal, it goes on from the rebuilt state (the snapshot
  was wrong); still different, it refuses to go on (`RecoveryMismatch`: this build decides
  the log otherwise; DESIGN.md, Determinism).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

from services.adjudication import snapshots as snapshot_codec
from services.adjudication.domain import (
    AdjudicationState,
    DecisionContext,
    decide,
    decide_relaying,
    due_timers,
    policy_version_of,
)
from services.adjudication.snapshots import SnapshotStore
from shared import metrics, tracing
from shared.eventlog import EventLog, OutgoingRecord, Record, TopicPartition
from shared.eventlog.deadletter import dead_letter
from shared.eventlog.partitioner import partition_for
from shared.eventlog.topics import Topics
from shared.events import (
    CopiesInReview,
    DomainEvent,
    Envelope,
    HomeEndRelayed,
    SettlementRelayed,
    TimerFired,
    encode,
    new_envelope,
)
from shared.events.codec import decode, decode_envelope, encode_event
from shared.events.reference import PolicyPublished
from shared.ids import new_id
from shared.logging import get_logger
from shared.policy import Policy

log = get_logger(__name__)

EVENTS = Counter("dealreg_adjudicator_events_total", "Intake events decided")
DECISIONS = Counter("dealreg_adjudicator_decisions_total", "Decision events written")
TIMERS = Counter("dealreg_adjudicator_timers_fired_total", "Timer firings appended")
LATENESS = Histogram("dealreg_timer_lateness_seconds",
                     "Wall-clock time a timer firing was appended after its deadline",
                     buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
RECOVERY = Gauge("dealreg_adjudicator_recovery_seconds",
                 "Time the last state rebuild of a partition took", ["partition"])
REPLAYED = Gauge("dealreg_adjudicator_recovery_replayed_events",
                 "Events the last state rebuild of a partition re-decided", ["partition"])
SNAPSHOTS = Counter("dealreg_adjudicator_snapshots_total", "State snapshots taken")
SNAPSHOT_BYTES = Gauge("dealreg_adjudicator_snapshot_bytes",
                       "Size of the last state snapshot of a partition", ["partition"])

RECOVERY_MISMATCHES = Counter(
    "dealreg_adjudicator_recovery_mismatches_total",
    "Recoveries whose re-decided decisions differ from the logged ones (source: the state "
    "they started from, snapshot or history)", ["partition", "source"])

CHECK_SKEW_MS = 60_000
"""A recovery's check reads the decisions appended since its tail's first input was, less
this much (clock skew between the process that appended the input and the one that decided
it); a decision not found there is looked for in the partition's whole history before it
counts as missing."""

_DECISION_ID = re.compile(r"(.+)\.d[0-9]+")
_ID_HEAD = b'{"specversion":"1.0","id":"'


class RecoveryMismatch(RuntimeError):
    """Re-deciding a partition's logged inputs from its whole history gives other decisions
    than the log holds: this build decides them otherwise. The adjudicator refuses to go
    on (the worker restarts and refuses again) rather than decide on a state the log's
    decisions do not describe."""


SNAPSHOT_COST_SHARE = 20
"""A snapshot is taken at most once per this many times its own cost (time), so a large
state is snapshotted less often instead of slowing the drain."""

YIELD_EVERY_SECONDS = 0.02
"""Deciding a batch (or replaying history) hands the event loop back at least this often,
so the consumer's heartbeats, the group protocol and the other partitions' I/O keep going
while one member decides a long batch: a busy member is not dropped from its group."""

_CHECK_EVERY = 32
"""Events decided between two looks at the clock (a clock read costs more than a check)."""


GC_THRESHOLDS = (200_000, 20, 10)
"""The cyclic garbage collector's thresholds in an adjudicator process. The state is a
large heap of long-lived objects (entries, index postings, disputes) and deciding
allocates many short-lived ones (events, decisions, matches), so with CPython's defaults
(700, 10, 10) the collector ran ~50 times per 1,000 events and re-scanned the growing
state: 40 % of the drain's CPU, measured (20,000-event backlog: 4.0 s of CPU with the
defaults, 2.4 s with these; gc.disable() 2.5 s). Reference counting frees nearly all of
it anyway; the collector still runs, just on larger young generations. Each young pass
also scans what a batch holds in flight (its records, outputs, the embedded log's tail):
50,000 -> 200,000 cut the collector's CPU in a 30,000-event drain from ~0.21 s (5 passes)
to ~0.10 s (1 pass), measured with gc.callbacks (README, Performance)."""


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Raise the collector's thresholds to `thresholds` (never lower one already set
    higher: the process may hold other components with their own needs)."""
    current = gc.get_threshold()
    gc.set_threshold(*(max(have, want) for have, want in zip(current, thresholds, strict=True)))


class _Slicer:
    """Cooperative time slices for a long CPU-bound loop inside a coroutine."""

    __slots__ = ("_n", "_seconds", "_until")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._until = time.perf_counter() + seconds
        self._n = 0

    def due(self) -> bool:
        """True when the slice is used up (then `await asyncio.sleep(0)` and go on)."""
        self._n += 1
        if self._n % _CHECK_EVERY or time.perf_counter() < self._until:
            return False
        self._until = time.perf_counter() + self._seconds
        return True


class UnknownPolicyVersion(RuntimeError):
    """An event names a policy version the reference topic does not hold."""


class PolicyBook:
    """Every published policy version, read from the reference topic."""

    def __init__(self, eventlog: EventLog, topic: str) -> None:
        self.eventlog = eventlog
        self.topic = topic
        self.versions: dict[int, Policy] = {}
        self._position = 0

    async def refresh(self) -> None:
        tp = TopicPartition(self.topic, 0)
        end = (await self.eventlog.end_positions(self.topic))[tp]
        async for batch in self.eventlog.read(tp, self._position, end):
            for record in batch:
                try:
                    _, event = decode(record.value)
                except ValueError:
                    continue  # a reference event of a type this build does not know
                if isinstance(event, PolicyPublished):
                    self.versions[event.version] = Policy.from_published(event.document)
        self._position = end

    async def require(self, version: int, attempts: int = 20) -> None:
        for attempt in range(attempts):
            if version in self.versions:
                return
            await self.refresh()
            if version in self.versions:
                return
            if version == 1:
                # Version 1 is the built-in defaults until someone publishes otherwise.
                self.versions[1] = Policy.default(1)
                return
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        raise UnknownPolicyVersion(
            f"policy version {version} is stamped on an event but not on {self.topic}"
        )

    def get(self, version: int | None) -> Policy | None:
        return None if version is None else self.versions[version]


class Adjudicator:
    """Implements `shared.eventlog.Processor` over the pure `decide`."""

    def __init__(
        self,
        eventlog: EventLog,
        topics: Topics,
        source: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timer_interval: float = 0.25,
        *,
        snapshots: SnapshotStore | None = None,
        snapshot_every_events: int = 20_000,
        snapshot_every_seconds: float = 60.0,
        group_id: str = "",
        yield_every_seconds: float = YIELD_EVERY_SECONDS,
        assignment: set[TopicPartition] | None = None,
    ) -> None:
        self.eventlog = eventlog
        self.yield_every_seconds = yield_every_seconds
        self.group_id = group_id
        # The partitions this member holds (shared with the runtime: per-replica lag).
        self.assignment: set[TopicPartition] = assignment if assignment is not None else set()
        self.topics = topics
        self.source = source
        self.clock = clock
        self.policies = PolicyBook(eventlog, topics.reference)
        self.states: dict[TopicPartition, AdjudicationState] = {}
        self.recovery_seconds: dict[TopicPartition, float] = {}
        # Decided in `prepare` (a coroutine, so a long batch can yield to the event loop),
        # handed over by `process`: (records decided, their outputs, the dead letters of
        # undecodable records first).
        self._decided: dict[TopicPartition, tuple[int, list[OutgoingRecord]]] = {}
        # Decisions of the batches being decided, by (kind, rule): counted once per batch.
        self._counts: dict[tuple[str, str], int] = {}
        # Timer ids appended and not yet seen back, so a deadline is appended once.
        self._pending_timers: dict[TopicPartition, set[str]] = {}
        # Looking for due deadlines walks every due item, so a partition looks at most once
        # per interval, however many batches it decides in between.
        self.timer_interval = timer_interval
        self._looked: dict[TopicPartition, float] = {}
        self.snapshots = snapshots
        self.snapshot_every_events = snapshot_every_events
        self.snapshot_every_seconds = snapshot_every_seconds
        # Per partition: events decided since the last snapshot, when it was taken
        # (monotonic), and the earliest time the next one may be (its cost budget).
        self._since_snapshot: dict[TopicPartition, int] = {}
        self._snapshot_at: dict[TopicPartition, float] = {}
        self._snapshot_not_before: dict[TopicPartition, float] = {}
        self.replayed: dict[TopicPartition, int] = {}
        self.recovered_from: dict[TopicPartition, int | None] = {}
        # Per partition: decisions the last recovery compared with the log (0: unchecked).
        self.checked: dict[TopicPartition, int] = {}

    # lifecycle ---------------------------------------------------------------------------

    async def assigned(self, positions: Mapping[TopicPartition, int]) -> None:
        self.assignment.update(positions)  # lagging while it recovers, too
        await self.policies.refresh()
        # Every partition recovers (and says what it found) before a failure is raised.
        results = await asyncio.gather(*(self._recover(tp, position)
                                         for tp, position in positions.items()),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _recover(self, tp: TopicPartition, position: int) -> None:
        started = time.perf_counter()
        found = None
        if self.snapshots is not None:
            found = await self.snapshots.load(tp, position)
        if found is None:
            # The whole history, unchecked: nothing older to compare a difference with
            # (an upgrade's state-schema bump comes this way on purpose: its rules may
            # decide old inputs otherwise, and the log's decisions stand).
            state, replayed, tail = await self._replay(tp, AdjudicationState(), 0, position)
        else:
            state, covers = found
            state, replayed, tail = await self._replay(tp, state, covers, position, covers)
            differences = await self._check_tail(tp, tail)
            if differences:
                self._mismatch(tp, "snapshot", covers, position, differences)
                state, replayed, tail = await self._replay(
                    tp, AdjudicationState(), 0, position, covers)
                differences = await self._check_tail(tp, tail)
                if differences:
                    self._mismatch(tp, "history", covers, position, differences)
                    raise RecoveryMismatch(
                        f"{tp.topic}[{tp.partition}]: re-deciding [{covers}, {position}) "
                        f"from the whole history gives other decisions than the log holds "
                        f"({len(differences)}; first: {differences[0]}): this build decides "
                        "the log otherwise; refusing to go on")
                log.error("snapshot_disagreed_rebuilt_from_history", topic=tp.topic,
                          partition=tp.partition, covers=covers, position=position)
                found = None
        start = found[1] if found is not None else 0
        self.states[tp] = state
        self._pending_timers[tp] = set()
        self._since_snapshot[tp] = replayed
        self._snapshot_at[tp] = time.monotonic()
        seconds = time.perf_counter() - started
        self.recovery_seconds[tp] = seconds
        self.replayed[tp] = replayed
        self.recovered_from[tp] = start if found is not None else None
        self.checked[tp] = len(tail.decided)
        RECOVERY.labels(str(tp.partition)).set(seconds)
        REPLAYED.labels(str(tp.partition)).set(replayed)
        log.info("partition_recovered", topic=tp.topic, partition=tp.partition,
                 position=position, snapshot=start if found is not None else None,
                 replayed=replayed, checked=len(tail.decided), seconds=round(seconds, 3))

    async def _replay(self, tp: TopicPartition, state: AdjudicationState, start: int,
                      position: int, check_from: int | None = None
                      ) -> tuple[AdjudicationState, int, _Tail]:
        """Re-decide `tp`'s records `[start, position)` into `state`: the state, the records
        read, and (from `check_from` on, if given) what they decided, to check."""
        replayed = 0
        tail = _Tail()
        slicer = _Slicer(self.yield_every_seconds)
        versions = self.policies.versions
        decisions_topic = self.topics.decisions
        async for batch in self.eventlog.read(tp, start, position):
            for record in batch:
                decoded = self._decode(record)
                if decoded is None:
                    continue
                envelope, event, version = decoded
                policy = None if version is None else versions.get(version)
                if policy is None and version is not None:
                    policy = await self._load_policy(version)
                if check_from is not None and record.offset >= check_from:
                    tail.inputs.add(envelope.id)
                    if tail.since_ms is None or record.timestamp_ms < tail.since_ms:
                        tail.since_ms = record.timestamp_ms
                    for output in self._decide(state, record, envelope, event, policy):
                        if output.topic == decisions_topic:  # (relays are intake records)
                            tail.decided[_envelope_id(output.value) or ""] = output
                else:
                    decide(state, event, DecisionContext(envelope.id, envelope.time, policy))
                if slicer.due():
                    await asyncio.sleep(0)  # other partitions recover meanwhile
            replayed += len(batch)
        return state, replayed, tail

    async def _check_tail(self, tp: TopicPartition, tail: _Tail) -> list[str]:
        """How the decisions re-decided for the tail's inputs differ from those the log
        holds for them (none: equal). Read from the decisions partitions they are keyed
        to and `tp`'s own, since the tail's first input was appended (`CHECK_SKEW_MS`);
        a re-decided decision not found there is looked for from the beginning."""
        if not tail.inputs or tail.since_ms is None:
            return []
        topic = self.topics.decisions
        count = await self.eventlog.partitions(topic)
        wanted = {partition_for(output.key, count) for output in tail.decided.values()}
        if tp.partition < count:
            wanted.add(tp.partition)
        ends = await self.eventlog.end_positions(topic)
        starts = await self.eventlog.offsets_for_time(topic, tail.since_ms - CHECK_SKEW_MS)
        logged: dict[str, Record] = {}
        for partition in sorted(wanted):
            dtp = TopicPartition(topic, partition)
            await self._read_logged(dtp, starts.get(dtp, 0), ends.get(dtp, 0), tail, logged)
        missing = {partition_for(output.key, count) for id_, output in tail.decided.items()
                   if id_ not in logged}
        for partition in sorted(missing):  # clocks further apart than assumed: look back
            dtp = TopicPartition(topic, partition)
            await self._read_logged(dtp, 0, starts.get(dtp, 0), tail, logged)
        differences = []
        for id_ in sorted(tail.decided.keys() | logged.keys()):
            output, record = tail.decided.get(id_), logged.get(id_)
            if record is None:
                differences.append(f"{id_}: re-decided, not in the log")
            elif output is None:
                differences.append(f"{id_}: in the log, not re-decided")
            elif not _same_decision(output, record):
                differences.append(f"{id_}: decided otherwise than logged")
        return differences

    async def _read_logged(self, dtp: TopicPartition, start: int, end: int, tail: _Tail,
                           logged: dict[str, Record]) -> None:
        """The decisions in `dtp`'s `[start, end)` derived from the tail's inputs."""
        inputs = tail.inputs
        async for batch in self.eventlog.read(dtp, start, end):
            for record in batch:
                id_ = _envelope_id(record.value)
                found = _DECISION_ID.fullmatch(id_) if id_ is not None else None
                if found is not None and found.group(1) in inputs:
                    logged[found.group(0)] = record
            await asyncio.sleep(0)

    def _mismatch(self, tp: TopicPartition, source: str, covers: int, position: int,
                  differences: list[str]) -> None:
        RECOVERY_MISMATCHES.labels(str(tp.partition), source).inc()
        log.error("recovery_mismatch", topic=tp.topic, partition=tp.partition, source=source,
                  covers=covers, position=position, differences=len(differences),
                  first=differences[:5],
                  action="rebuilding from history" if source == "snapshot"
                  else "refusing to go on")

    async def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self.assignment.difference_update(partitions)
        for tp in partitions:
            self.states.pop(tp, None)
            self._decided.pop(tp, None)
            self._pending_timers.pop(tp, None)
            self._looked.pop(tp, None)
            self._since_snapshot.pop(tp, None)
            self._snapshot_at.pop(tp, None)
            self._snapshot_not_before.pop(tp, None)

    # the loop ----------------------------------------------------------------------------

    async def prepare(self, tp: TopicPartition, records: Sequence[Record]) -> None:
        """Decode and decide one partition's batch; `process` hands the outputs over.
        The work is here, in a coroutine, so that it yields to the event loop every
        `yield_every_seconds` (heartbeats, rebalances, other partitions' I/O). Both
        transactional loops call `process` right after `prepare` for the same batch; a
        batch that never commits leaves a state ahead of the log, and the member then
        restarts and rebuilds it, as after any failed batch."""
        state = self.states.setdefault(tp, AdjudicationState())
        pending = self._pending_timers.setdefault(tp, set())
        # Poison records' dead letters commit with the batch's offset (eventlog/deadletter.py),
        # ahead of the batch's decisions.
        dead: list[OutgoingRecord] = []
        outputs: list[OutgoingRecord] = []
        slicer = _Slicer(self.yield_every_seconds)
        # Each record is decoded right before it is decided, not the whole batch first: a
        # decoded event then dies with its decision instead of living through the batch
        # (a batch of 5,000 decoded events was what filled the collector's young
        # generation, and every one of its passes scanned them all; README, Performance).
        # No await per record: a record is decoded in place, and only one naming a policy
        # version not loaded yet waits for it (a coroutine per record cost ~1 us).
        versions = self.policies.versions
        decide_one = self._decide
        for record in records:
            decoded = self._decode(record, dead)
            if decoded is None:
                continue
            envelope, event, version = decoded
            policy = None if version is None else versions.get(version)
            if policy is None and version is not None:
                policy = await self._load_policy(version)
            if isinstance(event, TimerFired):
                pending.discard(event.timer_id)
            found = decide_one(state, record, envelope, event, policy, live=True)
            if found:
                outputs.extend(found)
            if slicer.due():
                await asyncio.sleep(0)
        if dead:
            dead.extend(outputs)
            outputs = dead
        self._decided[tp] = (len(records), outputs)

    def process(self, tp: TopicPartition, records: Sequence[Record]) -> list[OutgoingRecord]:
        decided = self._decided.pop(tp, None)
        if decided is None or decided[0] != len(records):
            raise RuntimeError("process() called without prepare() for this batch")
        state = self.states[tp]
        outputs = decided[1]
        EVENTS.inc(len(records))
        self._flush_counts()
        outputs.extend(self._due(tp, state))
        if records:
            outputs.extend(self._snapshot(tp, state, records[-1].offset + 1, len(records)))
        return outputs

    def tick(self, tp: TopicPartition) -> list[OutgoingRecord]:
        state = self.states.get(tp)
        return self._due(tp, state) if state is not None else []

    # helpers -----------------------------------------------------------------------------

    def _decode(
        self, record: Record, dead: list[OutgoingRecord] | None = None
    ) -> tuple[Envelope, DomainEvent, int | None] | None:
        """The record's envelope, event and policy version (None if it carries none), or
        None for an undecodable record. `dead`: where its dead letter goes (live batches; a
        recovery skips them silently, their dead letters were written when first seen)."""
        try:
            envelope, event = decode(record.value)
        except ValueError as exc:
            # The edge validates everything it appends, so this is a foreign or corrupt
            # record (or one from a newer build): it goes to the dead-letter topic and
            # the partition moves on (retrying it would stall every account behind it).
            if dead is not None and self.topics.dead_letters:
                dead.append(dead_letter(record, topic=self.topics.dead_letters,
                                        consumer="adjudicator", group=self.group_id,
                                        error=exc))
            return None
        return envelope, event, policy_version_of(event)

    async def _load_policy(self, version: int) -> Policy:
        """A policy version named by an event and not loaded yet (read from the reference
        topic, `PolicyBook.require`)."""
        await self.policies.require(version)
        return self.policies.versions[version]

    def _decide(
        self, state: AdjudicationState, record: Record, envelope: Envelope, event: DomainEvent,
        policy: Policy | None, live: bool = False,
    ) -> list[OutgoingRecord]:
        """`policy`: the one stamped on the event (loaded). `live`: decisions that will be
        written (counted in the metrics), not a replay."""
        context = DecisionContext(envelope.id, envelope.time, policy)
        if live and envelope.traceparent is not None and tracing.enabled():
            with _decide_span(record, envelope, event, live):
                decisions, relays = decide_relaying(state, event, context)
        else:  # no span, and no context manager entered per event
            decisions, relays = decide_relaying(state, event, context)
        if not decisions and not relays:
            return []  # (a notice answered at once relays with no decision of its own)
        if live:
            counts = self._counts
            for decision in decisions:
                kind = metrics.decision_labels(decision)
                counts[kind] = counts.get(kind, 0) + 1
        outputs = []
        topic, source, traceparent = self.topics.decisions, self.source, envelope.traceparent
        for i, decision in enumerate(decisions):
            key = getattr(decision, "account_key", None) or record.key
            outputs.append(OutgoingRecord(
                topic, key,
                encode_event(decision, id=f"{envelope.id}.d{i}", source=source,
                             subject=key, time=envelope.time,
                             # the input's trace, unchanged: replays stay identical
                             traceparent=traceparent,
                             tracestate=envelope.tracestate),
            ))
        if relays:
            outputs.extend(self._relay(envelope, relays))
        return outputs

    def _relay(self, envelope: Envelope,
               relays: Sequence[SettlementRelayed | CopiesInReview | HomeEndRelayed]
               ) -> list[OutgoingRecord]:
        """A settlement's word about copies, to the intake of their own keys; a review's
        notice that it holds copies, to theirs; a registration's end, to the reviews that
        hold its copies (relay.py):
        in this batch's transaction, with the decisions, so it is appended exactly once
        when they are. The id derives from the input's, like a decision's."""
        intake, source = self.topics.intake, self.source
        return [OutgoingRecord(intake, relay.account_key, encode_event(
            relay, id=f"{envelope.id}.r{i}", source=source, subject=relay.account_key,
            time=envelope.time, traceparent=envelope.traceparent,
            tracestate=envelope.tracestate)) for i, relay in enumerate(relays)]

    def _flush_counts(self) -> None:
        """The batch's decisions into the metrics, one increment per (kind, rule)."""
        if self._counts:
            DECISIONS.inc(sum(self._counts.values()))
            metrics.count_decision_labels(self._counts)
            self._counts = {}

    def _snapshot(self, tp: TopicPartition, state: AdjudicationState, position: int,
                  decided: int) -> list[OutgoingRecord]:
        """A snapshot of `state` (which covers `[0, position)`) when one is due: its records
        go into this batch's transaction (Kafka) or its file is written meanwhile (embedded)."""
        since = self._since_snapshot.get(tp, 0) + decided
        self._since_snapshot[tp] = since
        if self.snapshots is None:
            return []
        now = time.monotonic()
        due = (since >= self.snapshot_every_events
               or now - self._snapshot_at.setdefault(tp, now) >= self.snapshot_every_seconds)
        if not due or now < self._snapshot_not_before.get(tp, 0.0) or self.snapshots.busy(tp):
            return []
        started = time.perf_counter()
        blob = snapshot_codec.encode(state, tp, position)
        outputs = self.snapshots.save(tp, position, blob)
        cost = time.perf_counter() - started
        self._since_snapshot[tp] = 0
        self._snapshot_at[tp] = now
        self._snapshot_not_before[tp] = now + SNAPSHOT_COST_SHARE * cost
        SNAPSHOTS.inc()
        SNAPSHOT_BYTES.labels(str(tp.partition)).set(len(blob))
        return outputs

    def _due(self, tp: TopicPartition, state: AdjudicationState) -> list[OutgoingRecord]:
        looked = time.monotonic()
        if looked - self._looked.get(tp, 0.0) < self.timer_interval:
            return []
        self._looked[tp] = looked
        now = self.clock()
        pending = self._pending_timers.setdefault(tp, set())
        outputs = []
        for firing in due_timers(state, now):
            if firing.timer_id in pending:
                continue
            pending.add(firing.timer_id)
            LATENESS.observe(max(0.0, (now - firing.deadline).total_seconds()))
            TIMERS.inc()
            outputs.append(OutgoingRecord(
                self.topics.intake, firing.account_key,
                encode(new_envelope(firing, id=new_id("tmr"), source=self.source,
                                    subject=firing.account_key, time=now)),
            ))
        return outputs


class _Tail:
    """What a recovery re-decided for the inputs it checks: their ids, the earliest time
    one was appended, and the decisions, by id."""

    __slots__ = ("decided", "inputs", "since_ms")

    def __init__(self) -> None:
        self.inputs: set[str] = set()
        self.since_ms: int | None = None
        self.decided: dict[str, OutgoingRecord] = {}


def _envelope_id(value: bytes) -> str | None:
    """The envelope id of an encoded event (read off its head as `encode_event` writes it,
    else from the decoded envelope; None: not an event)."""
    if value.startswith(_ID_HEAD):
        end = value.find(b'"', len(_ID_HEAD))
        if end > 0 and b"\\" not in value[len(_ID_HEAD):end]:
            return value[len(_ID_HEAD):end].decode()
    try:
        return decode_envelope(value).id
    except ValueError:
        return None


def _same_decision(output: OutgoingRecord, record: Record) -> bool:
    """The same decision: the same bytes, or else the same key, type and data (a release
    may write an envelope otherwise, e.g. another `source`, or upcast an older event)."""
    if output.value == record.value:
        return output.key == record.key
    try:
        _, ours = decode(output.value)
        _, theirs = decode(record.value)
    except ValueError:
        return False
    return (output.key == record.key and ours.TYPE == theirs.TYPE
            and ours.to_data() == theirs.to_data())


def _decide_span(record: Record, envelope: Envelope, event: DomainEvent,
                 live: bool) -> contextlib.AbstractContextManager[object]:
    """An `adjudicator.decide` span, child of the event's trace, for a live decision when
    tracing is on (never for a recovery's replay; nothing to parse otherwise)."""
    if not live or not tracing.enabled() or envelope.traceparent is None:
        return contextlib.nullcontext()
    return tracing.span("adjudicator.decide",
                        tracing.TraceContext.parse(envelope.traceparent, envelope.tracestate),
                        "consumer", event_id=envelope.id, type=event.TYPE,
                        partition=record.partition, offset=record.offset)


async def run_adjudicator(
    eventlog: EventLog,
    topics: Topics,
    *,
    group_id: str,
    source: str,
    stopping: Callable[[], bool],
    max_records: int = 5000,
    snapshots: SnapshotStore | None = None,
    snapshot_every_events: int = 20_000,
    snapshot_every_seconds: float = 60.0,
    assignment: set[TopicPartition] | None = None,
) -> None:
    """The adjudicator's transactional loop. Snapshots go to the backend's store
    (`snapshots.store_for`) unless another is given; `snapshot_every_events=0` turns
    them off (recovery then replays the whole history). `assignment`, if given, is kept
    equal to the partitions this member holds (empty when it stops or crashed)."""
    if assignment is not None:
        assignment.clear()
    tune_gc()
    if snapshot_every_events <= 0:
        snapshots = None
    elif snapshots is None:
        snapshots = snapshot_codec.store_for(eventlog, topics)
    adjudicator = Adjudicator(eventlog, topics, source, snapshots=snapshots,
                              snapshot_every_events=snapshot_every_events,
                              snapshot_every_seconds=snapshot_every_seconds,
                              group_id=group_id, assignment=assignment)
    try:
        await eventlog.run_transactional(
            group_id, [topics.intake], adjudicator, max_records=max_records, stopping=stopping,
        )
    finally:
        adjudicator.assignment.clear()
        if snapshots is not None:
            await snapshots.close()
