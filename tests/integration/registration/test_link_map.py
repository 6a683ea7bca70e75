"""The account links kept in memory (`adapters/links.py`) answer exactly what reading
`account_links` answers (chains, a cycle, several aliases per round), and answer nothing
between a committed change and its read-back (the caller then reads the table)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, insert

from services.registration.adapters.links import LinkMap
from services.registration.adapters.readmodel import ReadModel
from shared.readmodel.queries import canonical_key
from shared.readmodel.schema import account_links
from shared.readmodel.store import create_engine, migrate

AT = datetime(2026, 11, 27, tzinfo=UTC)


def link(alias: str, canonical: str, score: float = 0.9) -> dict[str, object]:
    return {"account_key": alias, "canonical_key": canonical, "matched_by": "name",
            "score": score, "linked_at": AT}


async def agree(links: LinkMap, readmodel: ReadModel, keys: list[str]) -> None:
    assert links.usable
    async with readmodel.engine.connect() as conn:
        for key in keys:
            assert await links.canonical(key) == await canonical_key(conn, key), key
            assert await links.aliases_of(key) == await readmodel.aliases_of(key), key


async def test_links_in_memory_answer_as_the_table_and_never_between_change_and_read_back(
        tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}")
    await migrate(engine)
    readmodel = ReadModel(engine)
    keys = [f"k{i}" for i in range(8)]
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(account_links), [
                link("k1", "k0"), link("k2", "k1", 0.8), link("k3", "k1"),  # a chain, a fan
                link("k5", "k4"), link("k4", "k5")])  # a cycle
        links = LinkMap(engine)
        assert not links.usable
        await links.load()
        await agree(links, readmodel, keys)
        assert await links.aliases_of("k0") == [("k1", "name", 0.9), ("k2", "name", 0.8),
                                                ("k3", "name", 0.9)]

        # The projections rewrite k2's link and add k6's (committed), then say so.
        async with engine.begin() as conn:
            await conn.execute(delete(account_links).where(account_links.c.account_key == "k2"))
            await conn.execute(insert(account_links), [link("k2", "k4"), link("k6", "k2")])
        links.changed({"k2", "k6"})
        assert not links.usable  # until read back: callers read the table
        for _ in range(200):
            if links.usable:
                break
            await asyncio.sleep(0.01)
        await agree(links, readmodel, keys)
        assert await links.canonical("k6") == "k5"  # k6 -> k2 -> k4 -> k5 (-> k4: cycle)

        # A change arriving while a whole load reads does not let the load overwrite it.
        async with engine.begin() as conn:
            await conn.execute(delete(account_links).where(account_links.c.account_key == "k6"))
        loading = asyncio.create_task(links.load())
        links.changed({"k6"})
        await loading
        for _ in range(200):
            if links.usable:
                break
            await asyncio.sleep(0.01)
        await agree(links, readmodel, keys)
        assert await links.canonical("k6") == "k6"
    finally:
        await engine.dispose()
