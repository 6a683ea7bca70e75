"""Shutdown is bounded whatever the disk does. A disk that stalls in the fsync of a commit
(simulated here by our own commit seam, `EmbeddedEventLog._commit`, blocking on an Event)
left `dealreg dev` hanging forever on Ctrl-C: close waited for the commit lock the stalled
commit held, then for the writer thread. Now close and the runtime's stop return within
their bound, say what was not flushed, and keep every acknowledged (fsynced) record."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from dealreg.runtime import Runtime
from shared.eventlog import OutgoingRecord
from shared.eventlog.embedded import (
    CLOSE_GRACE_SECONDS,
    EmbeddedEventLog,
    EventLogClosed,
    EventLogLocked,
    EventLogOutcomeUnknown,
)
from shared.eventlog.topics import Topics
from shared.settings import Settings


class _StalledDisk:
    """Replaces the log's COMMIT (its fsync) once armed: the commit blocks until `release`,
    then completes as a disk that came back would."""

    def __init__(self, log: EmbeddedEventLog) -> None:
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self._commit = log._commit
        log._commit = self  # type: ignore[method-assign]

    def __call__(self, conn: sqlite3.Connection) -> None:
        if self.armed:
            self.entered.set()
            self.release.wait(60)
        self._commit(conn)


async def _one_partition_log(path: Path) -> tuple[EmbeddedEventLog, Topics]:
    log = EmbeddedEventLog(path)
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(1))
    return log, topics


def _values(path: Path) -> list[bytes]:
    reader = sqlite3.connect(path)
    try:
        return [v for (v,) in reader.execute('SELECT value FROM records ORDER BY "offset"')]
    finally:
        reader.close()


async def test_close_returns_in_time_when_the_disk_stalls_and_keeps_what_was_acknowledged(
        tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    log, topics = await _one_partition_log(path)
    disk = _StalledDisk(log)
    try:
        [acked] = await log.append([OutgoingRecord(topics.intake, "k", b"acknowledged")])
        disk.armed = True
        stalled = asyncio.create_task(log.append([OutgoingRecord(topics.intake, "k", b"s")]))
        assert await asyncio.to_thread(disk.entered.wait, 5)  # in the fsync, lock held
        queued = [asyncio.create_task(log.append([OutgoingRecord(topics.intake, "k", b"q"),
                                                  OutgoingRecord(topics.intake, "k", b"q")]))
                  for _ in range(2)]
        await asyncio.sleep(0)
        began = time.monotonic()
        await asyncio.wait_for(log.close(flush_timeout=0.3), 0.3 + CLOSE_GRACE_SECONDS + 3)
        took = time.monotonic() - began
        assert took <= 0.3 + CLOSE_GRACE_SECONDS + 1, took
        results = await asyncio.wait_for(
            asyncio.gather(stalled, *queued, return_exceptions=True), 1)
        # Never acknowledged: the stalled one may or may not be written, the others not.
        assert isinstance(results[0], EventLogOutcomeUnknown), results
        assert all(type(r) is EventLogClosed for r in results[1:]), results
        assert log.stuck
        assert log.unflushed is not None
        assert "2 append(s) (4 record(s)) not written" in log.unflushed, log.unflushed
        assert "1 append(s) (1 record(s)) in a commit the disk did not finish" in (
            log.unflushed), log.unflushed
        # The acknowledged record is in the file; the file stays locked while a thread may
        # still write it.
        assert acked.offset == 0 and _values(path)[:1] == [b"acknowledged"]
        with pytest.raises(EventLogLocked):
            await EmbeddedEventLog(path).start()
    finally:
        disk.release.set()
    # The disk comes back: the stalled commit lands (its outcome was "unknown", not
    # "not written"), the queued ones never do, and the file is free again.
    for _ in range(100):
        again = EmbeddedEventLog(path)
        try:
            await again.start()
            break
        except EventLogLocked:
            await asyncio.sleep(0.05)
    else:
        pytest.fail("the file stayed locked after the stalled thread finished")
    await again.close()
    assert _values(path) == [b"acknowledged", b"s"]


async def test_runtime_stop_is_bounded_by_the_shutdown_timeout_and_says_what_was_not_flushed(
        tmp_path: Path) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, shutdown_timeout_seconds=2.0,
                        admin_token="drk_admin_" + "x" * 40)
    runtime = Runtime.build(settings, frozenset({"adjudication"}))
    await runtime.start()
    assert isinstance(runtime.eventlog, EmbeddedEventLog)
    disk = _StalledDisk(runtime.eventlog)
    try:
        disk.armed = True
        stalled = asyncio.create_task(runtime.eventlog.append(
            [OutgoingRecord(runtime.topics.intake, "k", b"s")]))
        assert await asyncio.to_thread(disk.entered.wait, 5)
        began = time.monotonic()
        await asyncio.wait_for(runtime.stop(), 2.0 + CLOSE_GRACE_SECONDS + 5)
        took = time.monotonic() - began
        assert took <= 2.0 + 2, took  # the whole stop within the setting (and some slack)
        [outcome] = await asyncio.gather(stalled, return_exceptions=True)
        assert isinstance(outcome, EventLogOutcomeUnknown), outcome
        assert runtime.shutdown_stuck
        assert runtime.shutdown_problem is not None
        assert "in a commit the disk did not finish" in runtime.shutdown_problem
    finally:
        disk.release.set()


async def test_runtime_stop_with_a_healthy_disk_reports_nothing(tmp_path: Path) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, shutdown_timeout_seconds=5.0,
                        admin_token="drk_admin_" + "x" * 40)
    runtime = Runtime.build(settings, frozenset({"adjudication"}))
    await runtime.start()
    [landed] = await runtime.eventlog.append([OutgoingRecord(runtime.topics.intake, "k", b"v")])
    await asyncio.wait_for(runtime.stop(), 10)
    assert runtime.shutdown_problem is None and not runtime.shutdown_stuck
    assert landed.offset == 0
