"""The embedded transactional loop decides the next batch while the previous one commits
(the writer thread and the deciding thread overlap). That must never cost exactly-once:
a batch is queued only after the one before it committed, so a failed commit is never
followed by a later batch's positions, and the loop returns only after its last batch
is durable."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from shared.eventlog import OutgoingRecord, Record, TopicPartition
from shared.eventlog.base import TopicSpec
from shared.eventlog.embedded import EmbeddedEventLog

IN, OUT = "pipe.in", "pipe.out"


class _Copy:
    """Copies each record to OUT; remembers the batches it was handed."""

    def __init__(self, stop_after: int = 0) -> None:
        self.batches: list[list[int]] = []
        self.stop_after = stop_after
        self.seen_all = asyncio.Event()

    async def assigned(self, positions: Mapping[TopicPartition, int]) -> None:
        return None

    async def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        return None

    async def prepare(self, tp: TopicPartition, records: Sequence[Record]) -> None:
        self.batches.append([r.offset for r in records])
        if self.stop_after and sum(len(b) for b in self.batches) >= self.stop_after:
            self.seen_all.set()
        await asyncio.sleep(0.05)  # deciding takes a while: the writer takes what is queued

    def process(self, tp: TopicPartition, records: Sequence[Record]) -> list[OutgoingRecord]:
        return [OutgoingRecord(OUT, r.key, r.value) for r in records]

    def tick(self, tp: TopicPartition) -> list[OutgoingRecord]:
        return []


async def _log(tmp_path: Path, n: int) -> EmbeddedEventLog:
    log = EmbeddedEventLog(tmp_path / "log.sqlite3")
    await log.start()
    await log.create_topics([TopicSpec(IN, 1), TopicSpec(OUT, 1)])
    await log.append([OutgoingRecord(IN, "k", f"r{i}".encode()) for i in range(n)])
    return log


async def _out(log: EmbeddedEventLog) -> list[bytes]:
    tp = TopicPartition(OUT, 0)
    end = (await log.end_positions(OUT))[tp]
    return [r.value async for batch in log.read(tp, 0, end) for r in batch]


async def test_a_failed_commit_is_never_followed_by_the_next_batchs_positions(
        tmp_path: Path) -> None:
    log = await _log(tmp_path, 10)
    write_rows = log._write_rows
    calls = 0

    def first_fails(rows: list[Any], positions: list[Any], *rest: Any) -> None:
        """The real write, but the first batch's commit fails."""
        nonlocal calls
        if positions:
            calls += 1
            if calls == 1:
                raise OSError("disk full")
        write_rows(rows, positions, *rest)

    log._write_rows = first_fails  # type: ignore[method-assign]
    processor = _Copy()
    try:
        with pytest.raises(OSError, match="disk full"):
            await asyncio.wait_for(log.run_transactional(
                "g", [IN], processor, max_records=5, stopping=lambda: False), 30)
        # The second batch was decided while the first was committing, and never queued.
        assert processor.batches == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
        assert calls == 1
        assert (await log.committed("g", IN))[TopicPartition(IN, 0)] == 0
        assert await _out(log) == []
    finally:
        await log.close()


async def test_the_loop_returns_only_after_its_last_batch_is_durable(tmp_path: Path) -> None:
    log = await _log(tmp_path, 12)
    processor = _Copy(stop_after=12)
    try:
        # Stops as soon as the last batch is decided, while its commit is in flight.
        await asyncio.wait_for(log.run_transactional(
            "g", [IN], processor, max_records=4, stopping=processor.seen_all.is_set), 30)
        assert (await log.committed("g", IN))[TopicPartition(IN, 0)] == 12
        assert await _out(log) == [f"r{i}".encode() for i in range(12)]
    finally:
        await log.close()
