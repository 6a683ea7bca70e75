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
