"""The account links (`account_links`) in memory, for a process that writes them itself.

Every registration of a known account asked the read model twice about links: which key
its key is linked to (`canonical_key`, a query per hop) and which keys are linked to that
one (`ReadModel.aliases_of`, for the cross-key copy reports) -- on the embedded backend two
SQLite statements through aiosqlite's thread per registration, for a table that changes
only when the adjudicator links or unlinks keys. Where the projection worker runs in the
same process (`dealreg dev`), it calls `changed` right after a committed batch wrote links
(with the aliases it touched); those aliases are read back in one query, and until that
read is applied the map is not `usable` and callers ask the read model as before. So an
answer from memory is never older than what reading the table at that moment gives.
Rebuilt whole with the account index (`directory_rewarm_seconds`): a rebuild run by
another process is seen then.

Answers are the read model's: `canonical` follows links as `queries.follow_links` does
(`queries.follow_links`) and `aliases_of` walks them as `ReadModel.aliases_of` does
(`readmodel.walk_aliases`): the same code over another source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registration.adapters.readmodel import walk_aliases
from shared.logging import get_logger
from shared.readmodel.queries import follow_links, one_of
from shared.readmodel.schema import account_links

log = get_logger(__name__)

Link = tuple[str, str, float]
"""(alias key, matched_by, score)"""


class LinkMap:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._target: dict[str, str] = {}
        self._into: dict[str, dict[str, tuple[str, float]]] = {}
        self._loaded = False
        self._dirty: set[str] = set()
        self._generation = 0
        self._refresh: asyncio.Task[None] | None = None
        self.hits = 0
        """Answers given from memory (tests and benchmarks read it)."""

    @property
    def usable(self) -> bool:
        return self._loaded and not self._dirty and self._refresh is None

    def _apply(self, aliases: Iterable[str], rows: Iterable[tuple[str, str, str, float]]
               ) -> None:
        for alias in aliases:
            old = self._target.pop(alias, None)
            if old is not None:
                into = self._into.get(old)
                if into is not None:
                    into.pop(alias, None)
                    if not into:
                        del self._into[old]
        for alias, canonical, matched_by, score in rows:
            self._target[alias] = canonical
            self._into.setdefault(canonical, {})[alias] = (matched_by, score)

    async def _read(self, aliases: list[str] | None) -> list[tuple[str, str, str, float]]:
        c = account_links.c
        query = select(c.account_key, c.canonical_key, c.matched_by, c.score)
        async with self.engine.connect() as conn:
            if aliases is not None:
                query = query.where(one_of(conn.dialect.name, c.account_key, aliases))
            return [(str(a), str(k), str(m), float(s))
                    for a, k, m, s in await conn.execute(query)]

    async def load(self) -> None:
        """Read the whole table (at warm-up and with every rebuild of the account index).
        Links that changed meanwhile are left to their own read-back."""
        generation = self._generation
        try:
            rows = await self._read(None)
        except Exception:
            log.exception("account_links_load_failed")
            return
        if generation != self._generation:
            return  # `changed` came in meanwhile: the incremental path is current
        self._target.clear()
        self._into.clear()
        self._apply((), rows)
        self._loaded = True

    def changed(self, aliases: Iterable[str]) -> None:
        """A committed projection batch rewrote these aliases' links: not `usable` until
        they are read back (a task started here)."""
        self._generation += 1
        self._dirty.update(aliases)
        if self._refresh is None and self._dirty:
            self._refresh = asyncio.get_running_loop().create_task(
                self._read_back(), name="account-links-read-back")

    async def _read_back(self) -> None:
        try:
            while self._dirty:
                taken = sorted(self._dirty)
                rows = await self._read(taken)
                self._dirty.difference_update(taken)
                self._apply(taken, rows)
        except Exception:
            # Unknown state: ask the read model until the next whole load.
            log.exception("account_links_read_back_failed")
            self._loaded = False
            self._dirty.clear()
        finally:
            self._refresh = None

    async def _target_of(self, key: str) -> str | None:
        return self._target.get(key)

    async def _rows_into(self, frontier: list[str]) -> list[Link]:
        return sorted((alias, matched_by, score) for key in frontier
                      for alias, (matched_by, score) in self._into.get(key, {}).items())

    async def canonical(self, account_key: str) -> str:
        """`queries.canonical_key`, from memory (check `usable` first)."""
        self.hits += 1
        return await follow_links(account_key, self._target_of)

    async def aliases_of(self, canonical: str, limit: int = 8) -> list[Link]:
        """`ReadModel.aliases_of`, from memory (check `usable` first)."""
        self.hits += 1
        return await walk_aliases(canonical, self._rows_into, limit)
