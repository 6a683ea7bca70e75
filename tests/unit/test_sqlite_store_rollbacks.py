"""The SQLite read-model engine skips the ROLLBACK of a connection that only read (each is a
hop to aiosqlite's thread), and still rolls back every write that was not committed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text

from shared.readmodel.store import create_engine


async def test_read_only_connections_return_without_a_rollback_and_writes_still_roll_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/rm.sqlite3")
    rollbacks = 0
    rollback = aiosqlite.Connection.rollback

    async def counted(self: aiosqlite.Connection) -> Any:
        nonlocal rollbacks
        rollbacks += 1
        return await rollback(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counted)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        rollbacks = 0
        for _ in range(5):
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 1
        assert rollbacks == 0
        async with engine.connect() as conn:  # a write never committed
            await conn.execute(text("INSERT INTO t VALUES (2)"))
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (3)"))
                raise RuntimeError("fails mid-transaction")
        assert rollbacks == 2
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [1]
    finally:
        await engine.dispose()


async def test_a_whole_write_is_one_hop_committed_whole_or_not_at_all_in_its_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`write_whole`: the transaction runs on the driver's thread in one hop (BEGIN
    IMMEDIATE, the work, COMMIT), after the process's other write transactions ahead of
    it; a work that raises leaves nothing written."""
    import asyncio
    import sqlite3

    from shared.readmodel.store import write_whole

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/rm.sqlite3")
    execute: Any = aiosqlite.Connection._execute
    order: list[str] = []

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if "prepared" in order:  # the hops to the driver's thread once prepared
            order.append(f"hop {getattr(fn, '__name__', fn)}")
        return await execute(self, fn, *args, **kwargs)

    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        release = asyncio.Event()

        async def ahead() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (1)"))
                await release.wait()
                order.append("ahead")

        def prepare() -> Any:
            order.append("prepared")

            def work(raw: sqlite3.Connection) -> int:
                raw.execute("INSERT INTO t VALUES (2)")
                raw.executemany("INSERT INTO t VALUES (?)", [(3,), (4,)])
                return int(raw.execute("SELECT count(*) FROM t").fetchone()[0])

            return work

        first = asyncio.create_task(ahead())
        await asyncio.sleep(0.05)
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        whole = asyncio.create_task(write_whole(engine, prepare))
        await asyncio.sleep(0.05)
        assert order == []  # waits for its turn, prepares nothing
        release.set()
        await first
        assert await whole == 4
        assert order == ["ahead", "prepared", "hop whole"]

        def failing() -> Any:
            def work(raw: sqlite3.Connection) -> None:
                raw.execute("INSERT INTO t VALUES (5)")
                raise sqlite3.IntegrityError("fails mid-transaction")
            return work

        with pytest.raises(sqlite3.IntegrityError):
            await write_whole(engine, failing)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT x FROM t ORDER BY x"))
                    ).scalars().all() == [1, 2, 3, 4]
    finally:
        await engine.dispose()
