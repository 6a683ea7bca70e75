"""A batch that both deletes a filing's `account_names_unfiled` rows (its rejection
undone: `Batch.unfiled_back`) and adds another filing's (a rejection) stores the same
whichever way PostgreSQL is written: row by row, staged (COPY into a temporary table),
multi-row (session 30 second rival review: the two steps shared one staging table, so
the insert re-added the rows the delete had just removed)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, select

from services.projections.adapters import repository
from services.projections.domain.batch import Batch, Loaded
from shared.readmodel.schema import account_names_unfiled
from shared.readmodel.store import create_engine
from tests.integration.projections.test_live_bulk_writes import (  # noqa: F401 (fixture)
    _WAYS,
    ways_databases,
)
from tests.unit.projections.test_directory_names_order_free import (
    DIRECTORY_ONLY,
    KEYS,
    _decision,
)
from tests.unit.projections.test_directory_review_cycles import _items

KEY = KEYS[0]


def _batches() -> list[Batch]:
    first = [_decision("reg_x", KEY, rejected=True, unfiled=["gamma labs"])]
    second = [_decision("reg_x", KEY, refiled=["gamma labs"]),
              _decision("reg_y", KEY, rejected=True, unfiled=["delta works"])]
    out = []
    for events in (first, second):
        items = _items(list(events), "decisions")
        assert all(i.models == DIRECTORY_ONLY for i in items)
        out.append(Batch(Loaded()).fold_all(items))
    return out


def test_a_batch_deleting_and_adding_unfiled_rows_stores_alike_every_way(
    ways_databases: dict[int | None, str],  # noqa: F811
) -> None:
    async def one_way(way: int | None) -> Any:
        engine = create_engine(ways_databases[way])
        try:
            async with engine.begin() as conn:
                await conn.execute(delete(account_names_unfiled))
            for batch in _batches():
                async with engine.begin() as conn:
                    await repository.write(conn, batch, stage_from=way)
            async with engine.connect() as conn:
                rows = (await conn.execute(select(account_names_unfiled))).all()
            return sorted(tuple(r) for r in rows)
        finally:
            await engine.dispose()

    async def run() -> list[Any]:
        return [await one_way(way) for way in _WAYS]

    for way, stored in zip(_WAYS, asyncio.run(run()), strict=True):
        assert stored == [(KEY, "delta works", "reg_y")], way
