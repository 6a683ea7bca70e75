"""Snapshots of one partition's adjudicator state, so recovery replays only the tail.

A snapshot is the `AdjudicationState` after deciding intake records `[0, covers)` of one
partition. Recovery on assignment loads the newest usable snapshot with `covers <= the
committed position` and re-decides only `[covers, position)`; with none usable it rebuilds
from offset 0, as before. `decide` is deterministic, so both paths reach the same state
(tests/unit/adjudication/test_snapshots.py and the integration and property tests check
the decisions that follow are identical).

Format (one blob, the same on both backends):

    DEALREG-ADJ-SNAPSHOT\\n
    {"format": 1, "schema": 1, "fingerprint": "...", "topic": ..., "partition": ...,
     "covers": N, "codec": "pickle5+zlib", "size": ..., "sha256": "..."}\\n
    <zlib(pickle(state))>

- `format` is this layout; `schema` is `STATE_SCHEMA_VERSION`, bumped by hand whenever what
  the state holds changes meaning; `fingerprint` hashes the field names and types of every
  class a state may hold (computed from the code, so a changed shape is caught even if
  nobody bumps the schema). A snapshot whose format, schema or fingerprint differ from this
  build's is rejected and the partition rebuilt from the log: never misread.
- The body is read by an unpickler that resolves only the state's own classes and a few
  standard value types (`_ALLOWED`): a snapshot cannot name any other callable.
- A snapshot is about the intake partition, not about a consumer group: the state after
  deciding `[0, covers)` is the same whoever decided it.

Stores:
- `KafkaSnapshots`: a compacted state topic (`Topics.state`), partition = the intake
  partition, records keyed `<intake topic>/<partition>/<chunk>`. The chunks are outputs of
  the batch whose new input position is `covers`, so they commit in that batch's
  transaction with the decisions and the offset (Kafka Streams' changelog, with the
  checkpoint folded into the record): an aborted batch leaves no snapshot behind.
- `FileSnapshots` (embedded): files `<topic>.<partition>.<covers>.snap` in the data dir,
  written to a temporary file, fsync'd and renamed (then the directory fsync'd). The two
  newest are kept. A file is written while its batch commits, so after a crash the newest
  may cover more than the committed position: it is ignored and the one before is used.

On both, a snapshot with `covers` past the committed position is never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import hashlib
import io
import os
import pickle
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import orjson

from services.adjudication.domain import AdjudicationState
from services.adjudication.domain import state as state_module
from shared import policy as policy_module
from shared.accounts import identity as identity_module
from shared.accounts import index as index_module
from shared.accounts import sameness as sameness_module
from shared.eventlog import EventLog, OutgoingRecord, TopicPartition
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.topics import Topics
from shared.logging import get_logger

log = get_logger(__name__)

MAGIC: Final = b"DEALREG-ADJ-SNAPSHOT\n"
FORMAT_VERSION: Final = 1
STATE_SCHEMA_VERSION: Final = 15
"""Bump when what `AdjudicationState` (or anything it holds) means changes without its
fields changing; a changed field list changes the fingerprint by itself. 3: the account
index files domains in key form (`dom:x`) and names by owner ordinal (session 22). 4: it
files a name without a country under the unknown country (session 27; a state of 3 lacks
those names, so a replay and a restore would disagree). 5: it files a name "X dba Y" under
both names, a non-Salesforce CRM id also under its `any_spelling` form, and names are
normalised with their place qualifiers (session 28; a state of 4 lacks those entries).
6: an entry keeps the edge's reports of copies' keys its decision consumed
(`Entry.reported`, session 28: a state of 5 lost them, so a settlement after a restore
named the copy otherwise than after a replay). 7: a chain naming more than two names
("A dba B dba C") is one name, no longer filed under each, and "Acme (NA)" in Namibia is
"acme" (session 28 rival review; a state of 6 holds the old forms). 8: the names a
filing rejected at its decision brought to its key are taken back (`match.rejected_names:
unfiled`, session 29; a state of 7 still holds them). 9: a mark in any spelling ("(TM)",
"Ⓡ", "ᵀᴹ") is no part of a name, and a name without a country drops a qualifier naming
any country or region (session 29 rival review), a dash qualifier on either name of a
"dba" pair is read, a full-width Salesforce id and a braced GUID are that id (session 29
`SpellingRules`); a state of 8 holds the old forms. 12: "t/a" and "aka" join a legal
name and a trade name as "dba" does (session 30; a state of 9 holds such a name as one
form; 10 and 11 are other session-30 branches'). 13: an entry in review keeps the name
forms it brought and loses those another live filing filed since
(`AdjudicationState.brought`), so a rejection after review takes them back (session 30,
s30-reviewreject: it held 10 on its branch; 13 once merged after 12; a state of 12 kept
none, so its reviews' rejections would take back nothing). 14: a promotion after an
expiry waits for the policy's `promotion_unit` (`AdjudicationState.releasing` and
`release_promotion` timers; session 30, s30-promotion: 11 on its branch, 14 once merged
after 13; a state of 13 promoted at the expiry). 15: a record of names brought keeps
the filings of its forms rejected since (`_Brought.void`), named on the rejection after
review (`unfiled_cofilers`; session 30 crfix; a state of 14 lacks them)."""
CODEC: Final = "pickle5+zlib"

_STATE_MODULES: Final = (state_module, identity_module, index_module, sameness_module,
                         policy_module)
_ALLOWED_VALUES: Final[dict[str, frozenset[str]]] = {
    "array": frozenset({"array", "_array_reconstructor"}),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
}


class SnapshotRejected(ValueError):
    """A snapshot this build must not use (another version, another partition, corrupt)."""


def _state_classes() -> list[type]:
    found = []
    for module in _STATE_MODULES:
        for _, value in sorted(vars(module).items()):
            if isinstance(value, type) and value.__module__ == module.__name__:
                found.append(value)
    return found


def _shape(cls: type) -> str:
    if dataclasses.is_dataclass(cls):
        fields = [f"{f.name}:{f.type}" for f in dataclasses.fields(cls)]
    elif hasattr(cls, "model_fields"):
        fields = [f"{name}:{info.annotation}" for name, info in cls.model_fields.items()]
    else:
        # A class compiled by mypyc (`make compiled`) keeps its attributes in
        # `__mypyc_attrs__`, not `__slots__`: its shape is still its fields. (Annotations
        # read differently there, so the two builds' fingerprints differ: a snapshot of
        # the other build is rebuilt from the log, never misread.)
        fields = list(getattr(cls, "__slots__", ())) or sorted(getattr(cls, "__mypyc_attrs__", ()))
    return f"{cls.__module__}.{cls.__qualname__}({','.join(fields)})"


@functools.cache
def fingerprint() -> str:
    """A hash of the shape of every class a state may hold, and the schema version."""
    text = "\n".join([str(STATE_SCHEMA_VERSION), *(_shape(c) for c in _state_classes())])
    # Validators in annotations print as "<function f at 0x7f...>": the address differs in
    # every process, which made every process refuse every other's snapshots.
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@functools.cache
def _allowed() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        (c.__module__, c.__qualname__): c for c in _state_classes()
    }
    for module, names in _ALLOWED_VALUES.items():
        imported = __import__(module)
        for name in names:
            allowed[(module, name)] = getattr(imported, name)
    return allowed


class _StateUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _allowed().get((module, name))
        if found is None:
            raise SnapshotRejected(f"snapshot names {module}.{name}, which a state never holds")
        return found


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Building or walking a few hundred thousand objects triggers the cyclic collector
    over and over for nothing (none of them is garbage yet): pause it meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- the blob -------------------------------------------------------------------------------


def encode(state: AdjudicationState, tp: TopicPartition, covers: int) -> bytes:
    """The snapshot of `state`, which has decided records `[0, covers)` of `tp`."""
    memo = state._indexed
    state._indexed = {}  # a bounded memo of the index: re-filing is a no-op, so not state
    try:
        with _no_gc():
            body = zlib.compress(pickle.dumps(state, protocol=5), 1)
    finally:
        state._indexed = memo
    header = {
        "format": FORMAT_VERSION, "schema": STATE_SCHEMA_VERSION, "fingerprint": fingerprint(),
        "topic": tp.topic, "partition": tp.partition, "covers": covers, "codec": CODEC,
        "size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
    }
    return MAGIC + orjson.dumps(header) + b"\n" + body


def read_header(blob: bytes) -> dict[str, Any]:
    if not blob.startswith(MAGIC):
        raise SnapshotRejected("not an adjudicator snapshot")
    end = blob.find(b"\n", len(MAGIC))
    if end < 0:
        raise SnapshotRejected("truncated snapshot header")
    try:
        header = orjson.loads(blob[len(MAGIC):end])
    except orjson.JSONDecodeError as exc:
        raise SnapshotRejected(f"unreadable snapshot header: {exc}") from None
    if not isinstance(header, dict):
        raise SnapshotRejected("unreadable snapshot header")
    header["_body"] = end + 1
    return header


def decode(blob: bytes, tp: TopicPartition, position: int) -> tuple[AdjudicationState, int]:
    """The state in `blob` and the position it covers, if this build may use it to recover
    `tp` up to `position`; else `SnapshotRejected` saying why."""
    header = read_header(blob)
    expected = {"format": FORMAT_VERSION, "schema": STATE_SCHEMA_VERSION,
                "fingerprint": fingerprint(), "codec": CODEC,
                "topic": tp.topic, "partition": tp.partition}
    for name, value in expected.items():
        if header.get(name) != value:
            raise SnapshotRejected(f"snapshot {name} is {header.get(name)!r}, not {value!r}")
    covers = header.get("covers")
    if not isinstance(covers, int) or covers < 0:
        raise SnapshotRejected("snapshot covers no position")
    if covers > position:
        raise SnapshotRejected(f"snapshot covers {covers}, past the committed {position}")
    body = blob[header["_body"]:]
    if len(body) != header.get("size") or hashlib.sha256(body).hexdigest() != header.get(
        "sha256"
    ):
        raise SnapshotRejected("snapshot body does not match its checksum")
    try:
        with _no_gc():
            state = _StateUnpickler(io.BytesIO(zlib.decompress(body))).load()
    except SnapshotRejected:
        raise
    except Exception as exc:  # a body that passed its checksum but not this build
        raise SnapshotRejected(f"unreadable snapshot body: {exc!r}") from None
    if not isinstance(state, AdjudicationState):
        raise SnapshotRejected("snapshot holds something else than a state")
    return state, covers


# --- where snapshots live -------------------------------------------------------------------


class SnapshotStore(Protocol):
    def save(self, tp: TopicPartition, covers: int, blob: bytes) -> list[OutgoingRecord]:
        """Store `blob`: the records to append in the transaction of the batch whose new
        position is `covers` (a store that writes elsewhere returns none)."""

    def busy(self, tp: TopicPartition) -> bool:
        """A snapshot of `tp` is still being written: skip taking another one."""

    async def load(self, tp: TopicPartition, position: int) -> tuple[AdjudicationState, int] | None:
        """The newest usable snapshot of `tp` with `covers <= position`, or None."""

    async def close(self) -> None: ...


def _usable(blobs: Sequence[bytes], tp: TopicPartition, position: int
            ) -> tuple[AdjudicationState, int] | None:
    for blob in blobs:
        try:
            return decode(blob, tp, position)
        except SnapshotRejected as exc:
            log.warning("snapshot_ignored", topic=tp.topic, partition=tp.partition,
                        reason=str(exc))
    return None


class FileSnapshots:
    """Snapshot files in a directory of the embedded backend's data dir."""

    KEEP: Final = 2

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._writing: dict[TopicPartition, asyncio.Task[None]] = {}

    def _name(self, tp: TopicPartition, covers: int) -> str:
        return f"{tp.topic}.{tp.partition}.{covers:020d}.snap"

    def _files(self, tp: TopicPartition) -> list[tuple[int, Path]]:
        """(covers, path) of `tp`'s snapshot files, newest first."""
        prefix = f"{tp.topic}.{tp.partition}."
        found = []
        with contextlib.suppress(OSError):  # no directory (yet), or not one: no snapshots
            for path in self.directory.iterdir():
                name = path.name
                if name.startswith(prefix) and name.endswith(".snap"):
                    middle = name[len(prefix):-len(".snap")]
                    if middle.isdigit():
                        found.append((int(middle), path))
        return sorted(found, reverse=True)

    def busy(self, tp: TopicPartition) -> bool:
        task = self._writing.get(tp)
        return task is not None and not task.done()

    def save(self, tp: TopicPartition, covers: int, blob: bytes) -> list[OutgoingRecord]:
        self._writing[tp] = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self._write, tp, covers, blob))
        return []

    def _write(self, tp: TopicPartition, covers: int, blob: bytes) -> None:
        try:
            self._write_file(tp, covers, blob)
        except OSError as exc:
            # A snapshot is an optimisation: a full disk must not stop deciding.
            log.warning("snapshot_not_written", topic=tp.topic, partition=tp.partition,
                        covers=covers, error=str(exc))

    def _write_file(self, tp: TopicPartition, covers: int, blob: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / self._name(tp, covers)
        temporary = self.directory / f".{final.name}.{os.getpid()}.tmp"
        with open(temporary, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, final)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for _, old in self._files(tp)[self.KEEP:]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()

    async def load(self, tp: TopicPartition, position: int) -> tuple[AdjudicationState, int] | None:
        await self._settle(tp)

        def read() -> list[bytes]:
            return [path.read_bytes() for covers, path in self._files(tp) if covers <= position]

        return _usable(await asyncio.to_thread(read), tp, position)

    async def _settle(self, tp: TopicPartition) -> None:
        task = self._writing.pop(tp, None)
        if task is not None:
            with contextlib.suppress(Exception):
                await task

    async def close(self) -> None:
        for tp in list(self._writing):
            await self._settle(tp)


_CHUNK: Final = struct.Struct(">QII")  # covers, chunk index, chunk count
_CHUNK_MAGIC: Final = b"DRSC"


class KafkaSnapshots:
    """Snapshot chunks on the compacted state topic, in the batch's transaction."""

    CHUNK_BYTES: Final = 512 * 1024

    def __init__(self, eventlog: EventLog, topic: str) -> None:
        self.eventlog = eventlog
        self.topic = topic
        self._partitions: int | None = None

    def busy(self, tp: TopicPartition) -> bool:
        return False

    def save(self, tp: TopicPartition, covers: int, blob: bytes) -> list[OutgoingRecord]:
        if self._partitions is None or tp.partition >= self._partitions:
            # A state topic with fewer partitions than the intake (created by hand): no
            # snapshot rather than a transaction that can never commit.
            log.warning("snapshot_skipped", topic=tp.topic, partition=tp.partition,
                        reason=f"{self.topic} has {self._partitions} partitions")
            return []
        size = self.CHUNK_BYTES
        count = max(1, -(-len(blob) // size))
        return [
            OutgoingRecord(
                self.topic, f"{tp.topic}/{tp.partition}/{i}",
                _CHUNK_MAGIC + _CHUNK.pack(covers, i, count) + blob[i * size:(i + 1) * size],
                partition=tp.partition,
            )
            for i in range(count)
        ]

    async def load(self, tp: TopicPartition, position: int) -> tuple[AdjudicationState, int] | None:
        self._partitions = await self.eventlog.partitions(self.topic)
        state_tp = TopicPartition(self.topic, tp.partition)
        end = (await self.eventlog.end_positions(self.topic)).get(state_tp, 0)
        prefix = f"{tp.topic}/{tp.partition}/"
        window = 64
        while True:
            # The newest snapshot is at the end of the partition (a compacted topic keeps
            # the latest record of every key): read a tail, widen it until a snapshot is whole.
            start = max(0, end - window)
            chunks: dict[int, dict[int, bytes]] = {}
            counts: dict[int, int] = {}
            async for batch in self.eventlog.read(state_tp, start, end):
                for record in batch:
                    if not record.key.startswith(prefix) or not record.value.startswith(
                        _CHUNK_MAGIC
                    ):
                        continue
                    head = len(_CHUNK_MAGIC)
                    covers, index, count = _CHUNK.unpack_from(record.value, head)
                    chunks.setdefault(covers, {})[index] = record.value[head + _CHUNK.size:]
                    counts[covers] = count
            whole = [
                b"".join(parts[i] for i in range(counts[covers]))
                for covers, parts in sorted(chunks.items(), reverse=True)
                if covers <= position and len(parts) == counts[covers]
            ]
            found = _usable(whole, tp, position)
            if found is not None or start == 0:
                return found
            window *= 4

    async def close(self) -> None:
        return None


def store_for(eventlog: EventLog, topics: Topics) -> SnapshotStore:
    """Files next to the embedded log; the state topic on Kafka."""
    if isinstance(eventlog, EmbeddedEventLog):
        return FileSnapshots(eventlog.path.parent / "snapshots")
    if not topics.state:
        raise ValueError("Topics.state names no state topic")
    return KafkaSnapshots(eventlog, topics.state)
