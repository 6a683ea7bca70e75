"""Moving an embedded program: export / import of its data directory, and its history
copied into Kafka + PostgreSQL when a team outgrows one machine.

- **Export** holds the data directory's lock (no `dealreg dev` may run on it), copies both
  SQLite files with SQLite's online backup (a consistent image even with a WAL), and writes
  a tar.gz with `manifest.json`: format version, the log's topics and end positions, the
  consumer groups' positions, and the SHA-256 of every file.
- **Import** refuses a target directory that is not empty, an archive whose members are
  not exactly the manifest's files, an unknown format version, a checksum that does not
  match, and a log whose end positions are not the manifest's; it unpacks beside the
  target and renames, so a failed import leaves nothing behind.
- **migrate-to-kafka** copies every record of every topic into new, empty Kafka topics
  with the same partition counts, partition by partition in offset order (same key, value,
  timestamp and partition: a plain idempotent producer on an empty topic gives the same
  offsets), checks the end offsets, and commits each consumer group's positions (the
  adjudicator continues where the embedded one stopped, rebuilding its state from the
  intake history as on any reassignment). With a database it then migrates the schema,
  copies the state the log cannot rebuild (API keys, ingested CloudEvent ids, idempotency
  keys, the notification outbox and its position) and rebuilds the read models from Kafka.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dealreg import __version__
from dealreg.preflight import OperatorError, check_data_files

FORMAT = "dealreg-data-export"
FORMAT_VERSION = 1
FILES = ("eventlog.sqlite3", "readmodel.sqlite3")
MANIFEST = "manifest.json"

Say = Callable[[str], None]

BACKUP_PAGES_PER_STEP = 4096
"""SQLite pages an export copies between two looks at its progress (16 MiB of 4 KiB pages)."""

PROGRESS_EVERY_SECONDS = 5.0
"""A long copy says how far it is at most this often (and once when done)."""


class _Progress:
    """`what: done/total unit (pct %)` lines: at most every PROGRESS_EVERY_SECONDS, and
    once at the end, so a copy of millions of records or pages is never silent for long."""

    def __init__(self, say: Say, what: str, total: int, unit: str) -> None:
        self.say, self.what, self.total, self.unit = say, what, total, unit
        self._last = time.monotonic()

    def update(self, done: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < PROGRESS_EVERY_SECONDS:
            return
        self._last = now
        share = f" ({100 * done / self.total:.0f} %)" if self.total else ""
        self.say(f"  {self.what}: {done:,}/{self.total:,} {self.unit}{share}")


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Hold the embedded log's lock (the one `dealreg dev` takes) for the block."""
    log_file = data_dir / "eventlog.sqlite3"
    if not log_file.exists():
        raise OperatorError(f"no embedded data directory at {data_dir.resolve()} (no "
                            "eventlog.sqlite3); pass --data-dir or set DEALREG_DATA_DIR")
    check_data_files(data_dir)
    try:
        fd = os.open(f"{log_file}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        raise OperatorError(f"cannot open {log_file}.lock: {exc.strerror}; is the data "
                            "directory writable?", exit_code=1) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OperatorError(f"{data_dir.resolve()} is in use by another dealreg process; "
                                "stop `dealreg dev` first", exit_code=1) from None
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def log_summary(log_file: Path) -> dict[str, Any]:
    """Topics (partition counts), end positions and consumer-group positions of an
    embedded log file, read-only."""
    conn = sqlite3.connect(f"file:{log_file}?mode=ro", uri=True)
    try:
        topics = dict(conn.execute("SELECT name, partitions FROM topics ORDER BY name"))
        ends: dict[str, dict[str, int]] = {t: {str(p): 0 for p in range(n)}
                                           for t, n in topics.items()}
        for topic, partition, last in conn.execute(
                'SELECT topic, partition, MAX("offset") FROM records GROUP BY 1, 2'):
            ends.setdefault(topic, {})[str(partition)] = last + 1
        groups: dict[str, dict[str, dict[str, int]]] = {}
        for group, topic, partition, position in conn.execute(
                "SELECT group_id, topic, partition, position FROM group_positions "
                "ORDER BY 1, 2, 3"):
            groups.setdefault(group, {}).setdefault(topic, {})[str(partition)] = position
    finally:
        conn.close()
    return {"topics": topics, "positions": ends, "groups": groups}


def _backup(source: Path, target: Path, say: Say) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    progress: _Progress | None = None

    def copied(status: int, remaining: int, total: int) -> None:
        nonlocal progress
        progress = progress or _Progress(say, source.name, total, "pages")
        progress.update(total - remaining, final=remaining == 0)

    try:
        src.backup(dst, pages=BACKUP_PAGES_PER_STEP, progress=copied)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file in the archive
    finally:
        dst.close()
        src.close()


@dataclass(frozen=True)
class Manifest:
    data: dict[str, Any]

    @property
    def records(self) -> int:
        return sum(sum(p.values()) for p in self.data["positions"].values())


def export_data_dir(data_dir: Path, archive: Path, say: Say) -> Manifest:
    if archive.exists():
        raise OperatorError(f"{archive} exists; choose a new file name")
    if not archive.resolve().parent.is_dir():
        raise OperatorError(f"cannot write {archive}: there is no directory "
                            f"{archive.resolve().parent}")
    try:
        return _export(data_dir, archive, say)
    except OSError as exc:  # the target's directory is read-only, the disk is full, ...
        raise OperatorError(f"cannot write {archive}: {exc.strerror or exc}; nothing was "
                            "exported", exit_code=1) from None


def _export(data_dir: Path, archive: Path, say: Say) -> Manifest:
    with locked(data_dir), tempfile.TemporaryDirectory(dir=archive.parent or None) as tmp:
        staged = Path(tmp)
        for name in FILES:
            if not (data_dir / name).exists():
                raise OperatorError(f"{data_dir / name} is missing: not a complete embedded "
                                    "data directory")
            say(f"copying {name}")
            try:
                _backup(data_dir / name, staged / name, say)
            except sqlite3.Error as exc:
                raise OperatorError(
                    f"cannot copy {(data_dir / name).resolve()}: {exc} (SQLite needs to "
                    "write its -shm file beside it: is the directory writable?)",
                    exit_code=1) from None
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "dealreg_version": __version__,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "source": str(data_dir.resolve()),
            **log_summary(staged / "eventlog.sqlite3"),
            "files": {name: {"sha256": _sha256(staged / name),
                             "bytes": (staged / name).stat().st_size} for name in FILES},
        }
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        partial = staged / "archive.tar.gz"
        with tarfile.open(partial, "w:gz") as tar:
            for name in (MANIFEST, *FILES):
                tar.add(staged / name, arcname=name)
        partial.replace(archive)
    return Manifest(manifest)


def _corrupt(archive: Path, why: str) -> OperatorError:
    return OperatorError(f"{archive} is not a valid dealreg export: {why}; nothing was "
                         "imported", exit_code=1)


def import_archive(archive: Path, data_dir: Path, say: Say) -> Manifest:
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise OperatorError(f"{data_dir.resolve()} is not empty; import into a new or empty "
                            "directory (--data-dir / DEALREG_DATA_DIR)")
    if not archive.is_file():
        raise OperatorError(f"no archive at {archive}")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir.parent, prefix=".dealreg-import-") as tmp:
        staged = Path(tmp) / "data"
        staged.mkdir()
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = {m.name: m for m in tar.getmembers()}
                if set(members) != {MANIFEST, *FILES} \
                        or not all(m.isfile() for m in members.values()):
                    raise _corrupt(archive, f"members {sorted(members)}, expected "
                                            f"{sorted([MANIFEST, *FILES])}")
                for name, member in members.items():
                    source = tar.extractfile(member)
                    assert source is not None
                    with source, (staged / name).open("wb") as target:
                        shutil.copyfileobj(source, target)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise _corrupt(archive, f"{type(exc).__name__}: {exc}") from None
        try:
            manifest = json.loads((staged / MANIFEST).read_text())
        except ValueError as exc:
            raise _corrupt(archive, f"unreadable manifest ({exc})") from None
        if not isinstance(manifest, dict):
            raise _corrupt(archive, "the manifest is not a JSON object")
        if manifest.get("format") != FORMAT \
                or manifest.get("format_version") != FORMAT_VERSION:
            raise _corrupt(archive, f"format {manifest.get('format')!r} version "
                                    f"{manifest.get('format_version')!r}, this dealreg reads "
                                    f"{FORMAT!r} version {FORMAT_VERSION}")
        for name in FILES:
            try:
                expected = manifest["files"][name]["sha256"]
            except (KeyError, TypeError, IndexError):
                raise _corrupt(archive, f"the manifest has no checksum of {name}") from None
            if _sha256(staged / name) != expected:
                raise _corrupt(archive, f"the checksum of {name} does not match the manifest")
        say("checksums match")
        try:
            summary = log_summary(staged / "eventlog.sqlite3")
        except sqlite3.DatabaseError as exc:
            raise _corrupt(archive, f"eventlog.sqlite3: {exc}") from None
        for key in ("topics", "positions", "groups"):
            if summary[key] != manifest.get(key):
                raise _corrupt(archive, f"the log's {key} are not the manifest's")
        (staged / MANIFEST).rename(Path(tmp) / MANIFEST)
        if data_dir.exists():
            data_dir.rmdir()  # empty, checked above
        staged.rename(data_dir)
    return Manifest(manifest)


# --- migrate-to-kafka ------------------------------------------------------------------

COPIED_TABLES = ("api_keys", "ingested_events", "idempotency_keys", "notification_outbox",
                 "notification_attempts", "notification_disabled_endpoints")
"""State of the edge and of the delivery worker that no replay of the log rebuilds."""


@dataclass
class Moved:
    records: dict[str, int]
    groups: dict[str, int]
    rows: dict[str, int]
    rebuilt: int


async def migrate_to_kafka(settings: Any, data_dir: Path, say: Say, *,
                           database: bool) -> Moved:
    """Copy the embedded log at `data_dir` into Kafka (and the store into PostgreSQL)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka import TopicPartition as KafkaTP
    from aiokafka.structs import OffsetAndMetadata

    from shared.eventlog.base import TopicPartition, TopicSpec
    from shared.eventlog.embedded import EmbeddedEventLog
    from shared.eventlog.kafka import KafkaEventLog
    from shared.eventlog.topics import Topics

    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # leader moves on new topics
    summary = log_summary(data_dir / "eventlog.sqlite3")
    named = Topics.named(settings.topic_prefix)
    expected = {named.intake, named.decisions, named.reference, named.dead_letters}
    # The embedded log keeps adjudicator snapshots in files, so its state topic is empty:
    # not copied (Kafka's is created compacted when the adjudicator starts; its first
    # recovery there replays the whole history once).
    summary["topics"] = {t: n for t, n in summary["topics"].items() if t != named.state}
    if not set(summary["topics"]) <= expected:
        raise OperatorError(
            f"the embedded log's topics are {', '.join(sorted(summary['topics']))}, not those "
            f"of DEALREG_TOPIC_PREFIX={settings.topic_prefix!r}; set it to the prefix the "
            "embedded program used")
    source = EmbeddedEventLog(data_dir / "eventlog.sqlite3")
    try:
        await source.start()
    except RuntimeError as exc:
        raise OperatorError(str(exc), exit_code=1) from None
    target = KafkaEventLog(settings.kafka_bootstrap_servers,
                           replication_factor=settings.kafka_replication_factor)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                client_id="dealreg-migrate", enable_idempotence=True,
                                acks="all", linger_ms=5, max_batch_size=512 * 1024)
    moved = Moved({}, {}, {}, 0)
    try:
        await target.start()
        await producer.start()
        topics: dict[str, int] = summary["topics"]
        assert target._admin is not None
        existing = set(await target._admin.list_topics())
        for topic, partitions in topics.items():
            if topic in existing:
                ends = await target.end_positions(topic)
                if any(ends.values()):
                    raise OperatorError(
                        f"Kafka topic {topic} already holds records; migrate into new topics "
                        "(another DEALREG_TOPIC_PREFIX, or delete them)")
                if len(ends) != partitions:
                    raise OperatorError(f"Kafka topic {topic} has {len(ends)} partitions, the "
                                        f"embedded log {partitions}; delete it first")
        await target.create_topics([TopicSpec(t, n) for t, n in topics.items()])  # forever
        for topic, partitions in topics.items():
            copied = 0
            progress = _Progress(say, topic, sum(summary["positions"][topic].values()),
                                 "records")
            for partition in range(partitions):
                end = summary["positions"][topic].get(str(partition), 0)
                async for batch in source.read(TopicPartition(topic, partition), 0, end):
                    futures = [await producer.send(
                        topic, r.value, key=r.key.encode(), partition=partition,
                        timestamp_ms=r.timestamp_ms,
                        headers=[("content-type", b"application/cloudevents+json")])
                        for r in batch]
                    for record, future in zip(batch, futures, strict=True):
                        meta = await future
                        if meta.offset != record.offset:
                            raise OperatorError(
                                f"{topic}/{partition}: record landed at offset {meta.offset} "
                                f"where the embedded log has it at {record.offset}",
                                exit_code=1)
                    copied += len(batch)
                    progress.update(copied)
            moved.records[topic] = copied
            say(f"{topic}: {copied:,} records in {partitions} partitions")
            landed = await target.end_positions(topic)
            for tp, position in landed.items():
                if position != summary["positions"][topic].get(str(tp.partition), 0):
                    raise OperatorError(f"{topic}/{tp.partition} ends at {position} on Kafka "
                                        "but not on the embedded log; topic not empty?",
                                        exit_code=1)
        for group, positions in summary["groups"].items():
            offsets = {KafkaTP(topic, int(p)): OffsetAndMetadata(pos, "")
                       for topic, parts in positions.items() for p, pos in parts.items()}
            consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                        group_id=group, enable_auto_commit=False)
            await consumer.start()
            try:
                consumer.assign(list(offsets))
                await consumer.commit(offsets)
            finally:
                await consumer.stop()
            moved.groups[group] = len(offsets)
            say(f"consumer group {group}: positions of {len(offsets)} partitions committed")
        if database:
            moved.rows, moved.rebuilt = await _move_store(settings, data_dir, target, say)
    finally:
        await producer.stop()
        await target.close()
        await source.close()
    return moved


async def _move_store(settings: Any, data_dir: Path, kafka: Any, say: Say
                      ) -> tuple[dict[str, int], int]:
    from sqlalchemy import func, select

    import services.registration.adapters.tables  # noqa: F401  (registers the edge's tables)
    import shared.readmodel.schema  # noqa: F401
    from services.projections.adapters.rebuild import rebuild
    from services.projections.domain.batch import NOTIFICATIONS
    from shared.eventlog.topics import Topics
    from shared.readmodel.schema import metadata, projection_positions
    from shared.readmodel.store import create_engine, migrate

    source = create_engine(f"sqlite+aiosqlite:///{data_dir / 'readmodel.sqlite3'}")
    target = create_engine(settings.database_url)
    rows: dict[str, int] = {}
    try:
        await migrate(target)
        async with target.connect() as conn:
            for name in COPIED_TABLES:
                table = metadata.tables[name]
                if (await conn.execute(select(func.count()).select_from(table))).scalar():
                    raise OperatorError(f"table {name} of {settings.database_url.split('@')[-1]}"
                                        " is not empty; migrate into a new database")
        async with source.connect() as read, target.begin() as write:
            for name in COPIED_TABLES:
                table = metadata.tables[name]
                found = [dict(r) for r in (await read.execute(select(table))).mappings()]
                for start in range(0, len(found), 500):
                    await write.execute(table.insert(), found[start:start + 500])
                rows[name] = len(found)
            notified = [dict(r) for r in (await read.execute(select(projection_positions).where(
                projection_positions.c.projection == NOTIFICATIONS))).mappings()]
            if notified:
                await write.execute(projection_positions.insert(), notified)
            rows["projection_positions (notifications)"] = len(notified)
        say("copied " + ", ".join(f"{n} {t}" for t, n in rows.items()))
        result = await rebuild(kafka, target, Topics.named(settings.topic_prefix))
        say(f"read models rebuilt from Kafka: {result.records:,} records")
        return rows, result.records
    finally:
        await source.dispose()
        await target.dispose()
