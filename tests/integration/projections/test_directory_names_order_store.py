"""The directory's order-free names on real stores (session 30): filings decided by the
adjudicator's name rule (`tests/unit/projections/test_directory_names_order_free.py`'s
`Adjudicator`), their intake and decisions written in several interleavings and batch
cuts through `repository.write` (the store's "latest" merge of name rows and the
`account_names_unfiled` rows), read back as every look-up reads them
(`schema.name_filed`): the adjudicator's names each time, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from services.projections.adapters import repository
from services.projections.domain.batch import Batch, Item, Loaded
from shared.readmodel.schema import account_names, name_filed
from shared.readmodel.store import create_engine, migrate
from tests.support.servers import ServerHandle, create_database
from tests.unit.projections.test_directory_names_order_free import (
    KEYS,
    NAMES,
    Adjudicator,
    _items,
    _log_order,
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}"
    server: ServerHandle = request.getfixturevalue("postgres_server")
    return await create_database(server.url, f"names_{unique}")


def _scenario(seed: int) -> Adjudicator:
    rng = random.Random(seed)
    adjudicator = Adjudicator()
    for n in range(14):
        if adjudicator.taken_back and rng.random() < 0.2:
            adjudicator.undo(rng.choice(sorted(adjudicator.taken_back)))
        else:
            adjudicator.submit(f"reg_{n}", rng.choice(KEYS), rng.choice(NAMES),
                               rng.random() < 0.5)
    return adjudicator


def _orders(adjudicator: Adjudicator, seed: int) -> list[list[list[Item]]]:
    """Batches of: the adjudicator's order, decisions first, intake first, a random
    merge of the two streams cut at random."""
    rng = random.Random(seed)
    intake = _items(adjudicator.intake, "intake")
    decisions = _items(adjudicator.decisions, "decisions")
    picks = [True] * len(intake) + [False] * len(decisions)
    rng.shuffle(picks)
    streams = {True: iter(intake), False: iter(decisions)}
    merged = [next(streams[pick]) for pick in picks]
    cuts = sorted(rng.sample(range(1, len(merged)), 3))
    return [[_log_order(adjudicator)], [decisions, intake], [intake, decisions],
            [merged[a:b] for a, b in zip([0, *cuts], [*cuts, len(merged)], strict=True)]]


async def test_names_written_in_any_order_are_the_adjudicator_s(store_url: str) -> None:
    engine = create_engine(store_url)
    await migrate(engine)
    try:
        for seed in range(6):
            adjudicator = _scenario(seed)
            for batches in _orders(adjudicator, seed):
                async with engine.begin() as conn:
                    for table in repository.TABLES["directory"]:
                        await conn.execute(delete(table))
                for items in batches:
                    async with engine.begin() as conn:
                        await repository.write(conn, Batch(Loaded()).fold_all(items))
                async with engine.connect() as conn:
                    filed = {(r[0], r[1], r[2]) for r in await conn.execute(select(
                        account_names.c.country, account_names.c.name,
                        account_names.c.account_key).where(name_filed()))}
                assert filed == adjudicator.names(), (seed, batches)
    finally:
        await engine.dispose()
