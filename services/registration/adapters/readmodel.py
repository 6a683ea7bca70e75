"""What the command side reads from the read models: the registration or dispute a command
names (for its account key, its party, its state) and, for `Prefer: wait`, whether the
command's effect has arrived.

The read models lag the log by the projection delay; checks made here are a courtesy to the
caller (a clear 404/403/409 at once), and adjudication checks everything again.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registration.adapters.sql import driver_fetch
from shared.events import DisputeActionRejected
from shared.readmodel.queries import (
    Entered,
    command_refusal,
    entered_dispute,
    get_registration,
    holders_of,
)
from shared.readmodel.schema import metadata, registrations, timeline_entries

T = TypeVar("T")

ACTIVE = ("submitted", "approved", "in_review")

# `ReadModel.aliases_of` on PostgreSQL: the links into a frontier of keys.
_ALIASES_SQL = ("SELECT account_key, matched_by, score FROM account_links "
                "WHERE canonical_key = ANY($1::varchar[]) ORDER BY account_key")


# Statements built once per table (composing one per call cost more CPU than running it
# on SQLite, on every registration of a known account); the same SQL, bound per call.
@functools.cache
def _active_under(table: Table) -> Select[Any]:
    return (select(table).where(table.c.account_key == bindparam("account_key"),
                                table.c.status.in_(ACTIVE))
            .limit(bindparam("limit")))


@functools.cache
def _aliases_into(links: Table) -> Select[Any]:
    return (select(links.c.account_key, links.c.matched_by, links.c.score)
            .where(links.c.canonical_key.in_(bindparam("frontier", expanding=True)))
            .order_by(links.c.account_key))


async def walk_aliases(canonical: str,
                       rows_into: Callable[[list[str]], Awaitable[Sequence[Any]]],
                       limit: int = 8) -> list[tuple[str, str, float]]:
    """(alias, matched_by, score) of every key linked to `canonical`, breadth first (at
    most `limit` rounds); `rows_into(frontier)`: the links into those keys, as
    (alias, matched_by, score) ordered by alias (the read model's, or memory's)."""
    found: list[tuple[str, str, float]] = []
    seen = {canonical}
    frontier = [canonical]
    for _ in range(limit):
        rows = await rows_into(frontier)
        frontier = []
        for alias, matched_by, score in rows:
            if alias not in seen:
                seen.add(alias)
                frontier.append(alias)
                found.append((alias, matched_by, float(score)))
        if not frontier:
            break
    return found


@dataclass(frozen=True, slots=True)
class DisputeFacts:
    id: str
    account_key: str
    status: str
    owner_id: str | None
    level: int | None
    due_at: datetime | None
    acknowledged_at: datetime | None
    registration_ids: list[str]
    resolution: dict[str, Any] | None
    owners: tuple[str, ...] = ()
    """Every owner the dispute was ever assigned to (who may read it)."""
    opened_at: datetime | None = None
    explanation: str | None = None
    """The opening's sentence: with `opened_at`, what the partner view reads a dispute's
    deadlines by (`partner_view.dispute`), so that a command answers as `GET` does."""


def _disputes_table() -> Table | None:
    """The projections' dispute read model, when this build has one."""
    table = metadata.tables.get("disputes")
    if table is None or not {"id", "account_key", "status"} <= set(table.c.keys()):
        return None
    return table


# Built once, bound per call (every close by `external_ref` runs it).
_REFERENCE_ROWS = 100
_BY_EXTERNAL_REF = (select(registrations)
                    .where(registrations.c.external_ref == bindparam("external_ref"))
                    .order_by(registrations.c.submitted_at, registrations.c.id)
                    .limit(_REFERENCE_ROWS))
"""Every registration carrying one reference, up to a bound, earliest filed first (the
bound never drops the first filings, which `handlers.closed_by_reference` weighs: copies
filed later cannot push the holder's row out), read through the index on
(`external_ref`, `submitted_at`, `id`) (migration 0013: it scanned the table)."""


class ReadModel:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def registration(self, registration_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            return await get_registration(conn, registration_id)

    async def holders(self, ids: set[str]) -> dict[str, tuple[str, str, str | None]]:
        """Whose registrations and claims these are (for the partner view)."""
        async with self.engine.connect() as conn:
            return await holders_of(conn, ids)

    async def entered(self, dispute_id: str, ids: Iterable[str]) -> Entered:
        """When the first of these registrations entered the dispute, and its opening
        (`queries.entered_dispute`: what `GET /v1/disputes/{id}` reads the partner view by)."""
        async with self.engine.connect() as conn:
            return await entered_dispute(conn, dispute_id, ids)

    async def claim(self, claim_id: str) -> dict[str, Any] | None:
        """A claim's row: the projections' `claims` table when there is one, else the
        registrations table (where early builds filed claims too)."""
        table = metadata.tables.get("claims")
        if table is None:
            return await self.registration(claim_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(table).where(table.c.id == claim_id))).first()
        return dict(row._mapping) if row is not None else None

    async def by_external_ref(self, external_ref: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(_BY_EXTERNAL_REF, {"external_ref": external_ref})
            return [dict(r._mapping) for r in rows]

    async def active_under(self, account_key: str, limit: int = 200) -> list[dict[str, Any]]:
        """The active registrations and direct claims filed under `account_key` (claims
        with `rep_id`, `kind`, `products` and `filed_at`, as their table has them)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(_active_under(registrations),
                                      {"account_key": account_key, "limit": limit})
            found = [dict(r._mapping) for r in rows]
            claims = metadata.tables.get("claims")
            if claims is not None and len(found) < limit:
                rows = await conn.execute(_active_under(claims), {
                    "account_key": account_key, "limit": limit - len(found)})
                found.extend(dict(r._mapping) for r in rows)
            return found

    async def dispute_refusal(self, dispute_id: str) -> dict[str, Any] | None:
        """Why adjudication refused a command naming `dispute_id` (reason, explanation),
        if it did."""
        return await _refusal(self.engine, dispute_id)

    async def command_refusal(self, dispute_id: str, command_id: str
                              ) -> dict[str, Any] | None:
        """Adjudication's refusal of the staff command `command_id` (its event id) on
        `dispute_id`, if it refused it (`queries.command_refusal`)."""
        async with self.engine.connect() as conn:
            return await command_refusal(conn, dispute_id, command_id)

    async def link_of(self, alias: str) -> tuple[str, float] | None:
        """(matched_by, score) of the link making `alias` another key's alias, if any."""
        links = metadata.tables.get("account_links")
        if links is None:
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(links.c.matched_by, links.c.score)
                                      .where(links.c.account_key == alias))).first()
        return (str(row[0]), float(row[1])) if row is not None else None

    async def open_dispute_keys(self, member_id: str, limit: int = 20) -> list[str]:
        """The account keys of the open disputes that list `member_id` (a registration or
        claim): where a copy of it may be waiting in a review on another partition."""
        disputes = _disputes_table()
        members = metadata.tables.get("dispute_members")
        if disputes is None or members is None:
            return []
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(disputes.c.account_key).distinct()
                .join(members, members.c.dispute_id == disputes.c.id)
                .where(members.c.member_id == member_id, disputes.c.status == "open")
                .limit(limit))
            return sorted(str(r[0]) for r in rows if r[0])

    async def aliases_of(self, canonical: str, limit: int = 8) -> list[tuple[str, str, float]]:
        """(alias, matched_by, score) of every key linked to `canonical`, directly or
        through other aliases, breadth first (at most `limit` rounds)."""
        links = metadata.tables.get("account_links")
        if links is None:
            return []
        async with self.engine.connect() as conn:
            # PostgreSQL: one fixed statement sent by the driver (no statement built and
            # compiled per call; `sql.driver_fetch`): this runs on every registration of
            # a known account (8.5 % of the registration service's CPU, py-spy).
            direct = conn.dialect.name == "postgresql"

            async def rows_into(frontier: list[str]) -> Sequence[Any]:
                return (await driver_fetch(conn, _ALIASES_SQL, frontier) if direct else (
                    await conn.execute(_aliases_into(links), {"frontier": frontier})).all())

            return await walk_aliases(canonical, rows_into, limit)

    async def dispute(self, dispute_id: str) -> DisputeFacts | None:
        table = _disputes_table()
        async with self.engine.connect() as conn:
            if table is not None:
                row = (await conn.execute(select(table).where(table.c.id == dispute_id))).first()
                if row is not None:
                    m = dict(row._mapping)
                    ids = m.get("registration_ids") or []
                    return DisputeFacts(
                        id=dispute_id, account_key=m["account_key"], status=m["status"],
                        owner_id=m.get("owner_id"), level=m.get("level"),
                        due_at=m.get("due_at"), acknowledged_at=m.get("acknowledged_at"),
                        registration_ids=list(ids) if isinstance(ids, list | tuple) else [],
                        resolution=m.get("resolution"), owners=tuple(m.get("owners") or ()),
                        opened_at=m.get("opened_at"), explanation=m.get("explanation"))
            # Without (or before) a dispute read model: the registrations it holds name it.
            rows = (await conn.execute(
                select(registrations.c.id, registrations.c.account_key, registrations.c.status)
                .where(registrations.c.dispute_id == dispute_id).limit(100))).all()
        if not rows:
            return None
        open_ = any(r.status == "in_review" for r in rows)
        return DisputeFacts(dispute_id, rows[0].account_key, "open" if open_ else "resolved",
                            None, None, None, None, [r.id for r in rows], None)


async def _refusal(engine: AsyncEngine, dispute_id: str) -> dict[str, Any] | None:
    """The data of adjudication's refusal of a command on `dispute_id`, from the timelines
    read model (it records every `DisputeActionRejected` under the dispute id)."""
    table = timeline_entries
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(table.c.data).where(table.c.subject_id == dispute_id,
                                       table.c.type == DisputeActionRejected.TYPE)
            .limit(1))).first()
    if row is None:
        return None
    data: dict[str, Any] = orjson.loads(row.data)
    return data


async def wait_for(fetch: Callable[[], Awaitable[T | None]], timeout: float) -> T | None:
    """Poll `fetch` with a 5-50 ms back-off until it returns something or time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.005
    while True:
        found = await fetch()
        if found is not None:
            return found
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)
