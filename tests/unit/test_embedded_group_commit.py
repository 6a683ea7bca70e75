"""The embedded log's group commit, which the API's intake under load relies on: appends
that arrive together share one transaction (one fsync), and each is answered only once its
record is durable -- readable by another connection to the file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from shared.eventlog import OutgoingRecord, TopicPartition, embedded
from shared.eventlog.embedded import EmbeddedEventLog, EventLogClosed
from shared.eventlog.topics import Topics


class _FileReads:
    """Counts the log's reads of its file (`_fetch`); `fetch` is the uncounted original."""

    def __init__(self, log: EmbeddedEventLog) -> None:
        self.count = 0
        self.fetch = log._fetch
        log._fetch = self  # type: ignore[method-assign]

    def __call__(self, *args: Any) -> Any:
        self.count += 1
        return self.fetch(*args)


async def test_concurrent_appends_share_commits_and_answer_only_when_durable(
        tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    log = EmbeddedEventLog(path)
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(4))
    commits = 0
    write_rows = log._write_rows

    def counted(*args: Any) -> None:  # the real write, counted
        nonlocal commits
        write_rows(*args)
        commits += 1

    log._write_rows = counted  # type: ignore[method-assign]
    other = sqlite3.connect(path)  # another reader of the file, as after a restart
    not_durable: list[int] = []

    async def register(i: int) -> None:
        [appended] = await log.append([OutgoingRecord(topics.intake, f"dom:c{i}.com",
                                                      f"r{i}".encode())])
        found = other.execute(
            'SELECT value FROM records WHERE topic = ? AND partition = ? AND "offset" = ?',
            (appended.topic, appended.partition, appended.offset)).fetchone()
        if found is None or found[0] != f"r{i}".encode():
            not_durable.append(i)

    try:
        await asyncio.gather(*(register(i) for i in range(200)))
    finally:
        other.close()
        await log.close()
    assert not_durable == []
    assert 1 <= commits < 200 / 4  # many appends per transaction under concurrency


async def test_a_consumer_polling_during_a_commit_waits_for_it_instead_of_reading_nothing(
        tmp_path: Path) -> None:
    """Offsets are assigned before the SQLite commit: a reader that saw them polled the
    file, found nothing, and polled again at once for as long as the commit took (a
    dozen reads per record under load). Readers see committed ends only."""
    log = EmbeddedEventLog(tmp_path / "log.sqlite3")
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(1))
    write_rows = log._write_rows
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(*args: Any) -> None:  # a commit that takes until `release` (an fsync)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result()
        write_rows(*args)

    try:
        member = await log.subscribe("g", [topics.intake])
        log._write_rows = slow  # type: ignore[method-assign]
        reads = _FileReads(log)
        appending = asyncio.create_task(log.append([OutgoingRecord(topics.intake, "k", b"v")]))
        await asyncio.sleep(0.05)  # the offset is assigned, its commit in flight
        assert await log.end_positions(topics.intake) == {
            tp: 0 for tp in await log.end_positions(topics.intake)}
        polled = [len(await member.poll(100, timeout=0.01)) for _ in range(20)]
        assert polled == [0] * 20 and reads.count == 0
        release.set()
        await appending
        records = await member.poll(100, timeout=1)
        # Served from the tail of committed records, or read once (never re-polled).
        assert [r.value for r in records] == [b"v"] and reads.count <= 1
    finally:
        release.set()
        await log.close()


async def test_a_lingering_consumer_takes_records_that_arrive_within_the_linger_in_one_batch(
        tmp_path: Path) -> None:
    """`linger_seconds` (DEALREG_EMBEDDED_LINGER_MS): records appended one by one shortly
    after each other are read as one batch, not one poll each; without it the first poll
    returns the first record alone. A full batch is read at once."""
    for linger, expected in ((0.0, [1, 2]), (0.3, [3])):
        log = EmbeddedEventLog(tmp_path / f"log-{linger}.sqlite3", linger_seconds=linger)
        await log.start()
        topics = Topics.named("t")
        await log.create_topics(topics.specs(1))
        try:
            member = await log.subscribe("g", [topics.intake])

            async def trickle(log: EmbeddedEventLog, topic: str) -> None:
                for i in range(3):
                    await log.append([OutgoingRecord(topic, "k", f"r{i}".encode())])
                    await asyncio.sleep(0.02)

            appending = asyncio.create_task(trickle(log, topics.intake))
            sizes = [len(await member.poll(100, timeout=1))]
            await appending
            sizes.append(len(await member.poll(100, timeout=1)))
            assert sizes[0] in expected, (linger, sizes)
            assert sum(sizes) == 3
            for _ in range(5):
                await log.append([OutgoingRecord(topics.intake, "k", b"x")])
            started = asyncio.get_running_loop().time()
            assert len(await member.poll(5, timeout=1)) == 5  # full: no linger
            assert asyncio.get_running_loop().time() - started < 0.25
        finally:
            await log.close()


async def test_a_lingering_poll_returns_its_records_within_its_own_timeout(
        tmp_path: Path) -> None:
    """The linger (up to DEALREG_EMBEDDED_LINGER_MS=1000) is bounded by the poll's timeout:
    a consumer polling with 0.1 s (the adjudicator's tick) got its records only after the
    whole linger."""
    log = EmbeddedEventLog(tmp_path / "log.sqlite3", linger_seconds=1.0)
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(1))
    try:
        member = await log.subscribe("g", [topics.intake])
        await log.append([OutgoingRecord(topics.intake, "k", b"v")])
        started = asyncio.get_running_loop().time()
        records = await member.poll(100, timeout=0.1)
        took = asyncio.get_running_loop().time() - started
        assert [r.value for r in records] == [b"v"]
        assert took < 0.6, took
    finally:
        await log.close()


async def test_close_writes_and_answers_the_appends_still_queued(tmp_path: Path) -> None:
    """Appends queued when the log closes were left unanswered until their callers gave up;
    close flushes them (each answered with its offset, durable after a reopen) and refuses
    appends submitted once it began."""
    path = tmp_path / "log.sqlite3"
    log = EmbeddedEventLog(path)
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(1))
    pending = [asyncio.create_task(log.append([OutgoingRecord(topics.intake, "k",
                                                              f"r{i}".encode())]))
               for i in range(50)]
    await asyncio.sleep(0)  # every append is queued, none written yet
    closing = asyncio.create_task(log.close())
    await asyncio.sleep(0)
    late = asyncio.create_task(log.append([OutgoingRecord(topics.intake, "k", b"late")]))
    await asyncio.wait_for(closing, 5)
    answered = await asyncio.wait_for(asyncio.gather(*pending), 5)
    with pytest.raises(EventLogClosed):
        await asyncio.wait_for(late, 5)
    assert sorted(a.offset for [a] in answered) == list(range(50))
    reopened = sqlite3.connect(path)
    try:
        values = [v for (v,) in reopened.execute('SELECT value FROM records ORDER BY "offset"')]
    finally:
        reopened.close()
    assert values == [f"r{i}".encode() for i in range(50)]


async def test_close_answers_queued_appends_with_an_error_when_the_flush_cannot_finish(
        tmp_path: Path) -> None:
    """A write stuck past close's flush timeout (another process holding the file) is
    cancelled; its appends and those queued behind it are answered with an error."""
    log = EmbeddedEventLog(tmp_path / "log.sqlite3")
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(1))
    write_rows = log._write_rows
    stuck = threading.Event()

    def slow(*args: Any) -> None:  # the real write, after a stall longer than the timeout
        stuck.wait(1.0)
        write_rows(*args)

    log._write_rows = slow  # type: ignore[method-assign]
    first = asyncio.create_task(log.append([OutgoingRecord(topics.intake, "k", b"a")]))
    await asyncio.sleep(0.05)  # the first write is in flight, the next ones queue
    queued = [asyncio.create_task(log.append([OutgoingRecord(topics.intake, "k", b"b")]))
              for _ in range(3)]
    await asyncio.sleep(0)
    await asyncio.wait_for(log.close(flush_timeout=0.2), 5)
    results = await asyncio.wait_for(
        asyncio.gather(first, *queued, return_exceptions=True), 5)
    assert all(isinstance(r, Exception) for r in results), results
    assert all(isinstance(r, EventLogClosed) for r in results[1:]), results


async def test_consumers_near_the_end_are_served_from_memory_with_the_records_in_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The records committed last are kept in memory (`TAIL_BYTES`): a consumer close
    behind the writer gets them without reading the file, a consumer further behind reads
    the file, and both get exactly the records the file holds, in order."""
    monkeypatch.setattr(embedded, "TAIL_BYTES", 30 * 210)  # about 30 small records
    log = EmbeddedEventLog(tmp_path / "log.sqlite3")
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(2))
    try:
        behind = await log.subscribe("behind", [topics.intake])
        for i in range(100):
            await log.append([OutgoingRecord(topics.intake, f"k{i % 7}", f"v{i}".encode())])
        reads = _FileReads(log)
        got = []
        while batch := await behind.poll(1000, timeout=0.05):
            got.extend(batch)
        assert reads.count > 0  # the early records are no longer in memory
        in_file = [r for p in range(2) for r in reads.fetch(TopicPartition(topics.intake, p), 0,
                                                         1000, 1000)]
        key = lambda r: (r.partition, r.offset)  # noqa: E731
        assert sorted(got, key=key) == sorted(in_file, key=key) and len(got) == 100
        close = await log.subscribe("close", [topics.intake])
        while await close.poll(1000, timeout=0.05):
            pass  # caught up with the writer
        await behind.close()
        reads.count = 0
        for i in range(10):
            await log.append([OutgoingRecord(topics.intake, f"k{i}", f"w{i}".encode())])
        newest = await close.poll(1000, timeout=0.05)
        assert [r.value for r in newest] != [] and reads.count == 0  # from memory
        for r in newest:
            assert reads.fetch(TopicPartition(r.topic, r.partition), r.offset, r.offset + 1,
                               1) == [r]
    finally:
        await log.close()


async def test_an_append_answered_with_an_error_at_close_is_never_written_afterwards(
        tmp_path: Path) -> None:
    """An operator's shell holds the file's write lock past close's flush timeout, then
    lets go while the abandoned write still waits for it: the append was answered with an
    error, so the write must not land in the file after all (a caller retrying it would
    write the event twice)."""
    path = tmp_path / "log.sqlite3"
    log = EmbeddedEventLog(path, busy_timeout_ms=5000)
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(1))
    shell = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    shell.execute("BEGIN IMMEDIATE")
    released = threading.Timer(1.5, lambda: shell.execute("ROLLBACK"))
    try:
        first = asyncio.create_task(log.append([OutgoingRecord(topics.intake, "k", b"a")]))
        await asyncio.sleep(0.05)  # the write waits for the shell's lock
        released.start()  # let go while the abandoned write still waits for the lock
        await asyncio.wait_for(log.close(flush_timeout=0.2), 10)
        [result] = await asyncio.wait_for(asyncio.gather(first, return_exceptions=True), 5)
        assert isinstance(result, Exception), result
        written = shell.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        assert written == 0, "an append answered with an error was written"
    finally:
        released.cancel()
        released.join()
        shell.close()


async def _drain(sub: Any) -> list[Any]:
    got: list[Any] = []
    while batch := await sub.poll(int(random.Random(len(got)).choice((1, 3, 50, 1000))),
                                  timeout=0.02):
        got.extend(batch)
    return got


async def test_consumers_anywhere_behind_get_exactly_the_files_records_with_uneven_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Appends of mixed sizes (some larger than the whole tail) on unevenly loaded
    partitions; consumers starting at random positions, behind, at or past the tail's
    start, polling in batches of every size: each gets the file's records of its
    partitions from its position on, in offset order, each exactly once."""
    monkeypatch.setattr(embedded, "TAIL_BYTES", 4000)
    rng = random.Random(7)
    log = EmbeddedEventLog(tmp_path / "log.sqlite3")
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(3))
    try:
        for round_ in range(6):
            appends = []
            for i in range(rng.randint(1, 40)):
                partition = rng.choices((0, 1, 2), weights=(10, 2, 1))[0]
                size = rng.choice((1, 30, 300, 5000))
                appends.append(log.append([OutgoingRecord(
                    topics.intake, f"k{i}", bytes([round_]) * size, partition)]))
            await asyncio.gather(*appends)
            tps = [TopicPartition(topics.intake, p) for p in range(3)]
            in_file = {tp: log._fetch(tp, 0, 10**9, 10**9) for tp in tps}
            for c in range(4):
                starts = {tp: rng.randint(0, len(in_file[tp])) for tp in tps}

                async def at(_: Any, starts: dict[Any, int] = starts) -> dict[Any, int]:
                    return starts

                sub = await log.subscribe(f"g{round_}-{c}", [topics.intake],
                                          start_positions=at)
                got = await _drain(sub)
                await sub.close()
                for tp in tps:
                    mine = [r for r in got if r.tp == tp]
                    assert mine == in_file[tp][starts[tp]:], (round_, c, tp)
    finally:
        await log.close()


async def _closed_log_with_three(path: Path, prefix: str) -> tuple[EmbeddedEventLog, Topics]:
    """A log at `path` that held three records `<prefix>0..2` on one partition, closed."""
    log = EmbeddedEventLog(path)
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(1))
    for i in range(3):
        await log.append([OutgoingRecord(topics.intake, "k", f"{prefix}{i}".encode())])
    await log.close()
    return log, topics


async def test_a_log_reopened_on_a_replaced_file_serves_only_the_new_files_records(
        tmp_path: Path) -> None:
    """Closed, its file replaced (restored from a backup, wiped by an operator), and
    started again: the records kept in memory from before are not the file's and must
    never be served, and offsets continue from the new file's ends."""
    path = tmp_path / "log.sqlite3"
    log, topics = await _closed_log_with_three(path, "old")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")  # the data directory wiped while stopped
    await log.start()
    try:
        await log.create_topics(topics.specs(1))
        [landed] = await log.append([OutgoingRecord(topics.intake, "k", b"new0")])
        offset0 = landed.offset
        sub = await log.subscribe("g", [topics.intake])
        assert [r.value for r in await _drain(sub)] == [b"new0"]
        assert offset0 == 0
    finally:
        await log.close()


async def test_a_log_reopened_after_another_process_appended_serves_its_records(
        tmp_path: Path) -> None:
    """Another process appends to the file while this one has it closed: reopened, a
    consumer gets those records (from the file; this process's memory cannot hold them)
    and new appends continue after them."""
    path = tmp_path / "log.sqlite3"
    log, topics = await _closed_log_with_three(path, "a")
    other = EmbeddedEventLog(path)
    await other.start()
    for i in range(3):
        await other.append([OutgoingRecord(topics.intake, "k", f"b{i}".encode())])
    await other.close()
    await log.start()
    try:
        [landed] = await log.append([OutgoingRecord(topics.intake, "k", b"a3")])
        assert landed.offset == 6
        sub = await log.subscribe("g", [topics.intake])
        assert [r.value for r in await _drain(sub)] == [
            b"a0", b"a1", b"a2", b"b0", b"b1", b"b2", b"a3"]
    finally:
        await log.close()


async def test_closing_twice_at_once_flushes_once_and_both_return(tmp_path: Path) -> None:
    """A tired operator's second Ctrl-C (or two shutdown paths) closes the log while it is
    closing: both closes return without an error once the queued appends are written, and
    closing a closed log is a no-op."""
    log = EmbeddedEventLog(tmp_path / "log.sqlite3")
    await log.start()
    topics = Topics.named("t")
    await log.create_topics(topics.specs(1))
    pending = [asyncio.create_task(log.append([OutgoingRecord(topics.intake, "k", b"x")]))
               for _ in range(5)]
    await asyncio.sleep(0)
    closes = await asyncio.wait_for(asyncio.gather(log.close(), log.close(),
                                                   return_exceptions=True), 10)
    assert closes == [None, None], closes
    answered = await asyncio.wait_for(asyncio.gather(*pending), 5)
    assert sorted(a.offset for [a] in answered) == list(range(5))
    await asyncio.wait_for(log.close(), 5)


async def test_a_second_process_cannot_append_to_a_log_another_process_has_open(
        tmp_path: Path) -> None:
    """The in-memory tail of one process cannot know another's appends: a second process
    must be refused the file (`EventLogLocked`) while the first has it open, so a consumer
    of the first is never served from a tail that misses records."""
    path = tmp_path / "log.sqlite3"
    log = EmbeddedEventLog(path)
    await log.start()
    try:
        topics = Topics.named("t")
        await log.create_topics(topics.specs(1))
        script = (
            "import asyncio, sys\n"
            "from shared.eventlog.embedded import EmbeddedEventLog, EventLogLocked\n"
            "async def main():\n"
            f"    log = EmbeddedEventLog({str(path)!r})\n"
            "    try:\n"
            "        await log.start()\n"
            "    except EventLogLocked:\n"
            "        sys.exit(3)\n"
            "    sys.exit(0)\n"
            "asyncio.run(main())\n")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert await asyncio.wait_for(proc.wait(), 60) == 3
    finally:
        await log.close()
