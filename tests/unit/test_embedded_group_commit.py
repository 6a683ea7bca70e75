"""The embedded log's group commit, which the API's intake under load relies on: appends
that arrive together share one transaction (one fsync), and each is answered only once its
record is durable -- readable by another connection to the file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from shared.eventlog import OutgoingRecord
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.topics import Topics


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
