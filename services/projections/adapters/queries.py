"""Read-side SQL of the query API: lists with keyset pagination, timelines, disputes,
pipeline totals and program metrics (ownership look-ups: `ownership_reader.py`).

Every query works on PostgreSQL and SQLite. Percentiles are exact and computed in the
database by nearest rank over an indexed column (`ORDER BY x LIMIT 1 OFFSET k`), so a
metrics request never pulls a million rows into Python.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.readmodel.queries import party_disputes
from shared.readmodel.schema import (
    claims,
    dispute_breaches,
    dispute_members,
    disputes,
    pipeline_product_totals,
    pipeline_totals,
    registrations,
    timeline_entries,
)

Row = dict[str, Any]
T = TypeVar("T")

NAME_POSTINGS_PER_KEY = 2000
NAME_CANDIDATE_BUDGET = 4000


# --- registrations ---------------------------------------------------------------------


async def registration_page(
    conn: AsyncConnection, *, partner_id: str | None, statuses: Sequence[str],
    account_key: str | None, before: str | None, limit: int,
    submitted_from: datetime | None = None, submitted_to: datetime | None = None,
) -> list[Row]:
    """Newest first, keyset on the id (time-ordered ULIDs): a page never repeats or skips
    a row that existed when the first page was read, whatever is written meanwhile."""
    r = registrations.c
    query = select(registrations)
    if partner_id is not None:
        query = query.where(r.partner_id == partner_id)
    if statuses:
        query = query.where(r.status.in_(list(statuses)))
    if account_key is not None:
        query = query.where(r.account_key == account_key)
    if submitted_from is not None:
        query = query.where(r.submitted_at >= submitted_from)
    if submitted_to is not None:
        query = query.where(r.submitted_at < submitted_to)
    if before is not None:
        query = query.where(r.id < before)
    rows = (await conn.execute(query.order_by(r.id.desc()).limit(limit + 1))).mappings()
    return [dict(row) for row in rows]


SEARCH_SCAN_BUDGET = 5000
"""Rows a filtered search reads at most for one page (filters SQL cannot index portably:
product, account text). A page may then be short, with a `next_cursor` to go on."""


def matches(row: Row, *, product: str | None, account: str | None) -> bool:
    """The search filters SQL does not apply: a product of the opportunity (exact, case
    blind) and an account text (part of the name, domain or CRM id, case blind)."""
    if product is not None:
        products = (row.get("opportunity") or {}).get("products") or []
        if product.casefold() not in {str(p).casefold() for p in products}:
            return False
    if account is not None:
        wanted = account.casefold()
        facts = row.get("account") or {}
        fields = [facts.get("name"), facts.get("domain"), facts.get("crm_account_id")]
        if not any(isinstance(f, str) and wanted in f.casefold() for f in fields):
            return False
    return True


async def registration_search(
    conn: AsyncConnection, *, partner_id: str | None, statuses: Sequence[str],
    account_key: str | None, before: str | None, limit: int,
    submitted_from: datetime | None = None, submitted_to: datetime | None = None,
    product: str | None = None, account: str | None = None,
    budget: int = SEARCH_SCAN_BUDGET, keep: Callable[[Row], bool] | None = None,
) -> tuple[list[Row], str | None]:
    """A page of `registration_page` with the `matches` filters too: `(rows, last id read
    when more may follow)`. Reads pages of the SQL-filtered list until `limit` rows
    matched or `budget` rows were read. `keep`: one more filter SQL does not apply (a
    partner's `account_key` filter on the key its view shows)."""
    if product is None and account is None and keep is None:
        rows = await registration_page(
            conn, partner_id=partner_id, statuses=statuses, account_key=account_key,
            before=before, limit=limit, submitted_from=submitted_from,
            submitted_to=submitted_to)
        return rows[:limit], (rows[limit - 1]["id"] if len(rows) > limit else None)

    async def fetch(cursor: str | None, chunk: int) -> list[Row]:
        return await registration_page(
            conn, partner_id=partner_id, statuses=statuses, account_key=account_key,
            before=cursor, limit=chunk, submitted_from=submitted_from,
            submitted_to=submitted_to)

    async def pick(row: Row) -> Row | None:
        wanted = matches(row, product=product, account=account) and (keep is None
                                                                     or keep(row))
        return row if wanted else None

    return await scan_page(fetch, pick, start=before, limit=limit, budget=budget)


async def scan_page(
    fetch: Callable[[str | None, int], Awaitable[list[Row]]],
    pick: Callable[[Row], Awaitable[T | None]], *, start: str | None, limit: int,
    budget: int = SEARCH_SCAN_BUDGET,
) -> tuple[list[T], str | None]:
    """A page of a listing filtered by what SQL does not apply (`registration_search`'s
    text filters, a partner's `account_key` filter on the key its view shows,
    `partner_view.KeyFilter`): `(what pick kept, the id the next page starts after when
    more may follow)`. `fetch(cursor, n)` reads up to n + 1 rows of the listing after
    `cursor` (in its order, each with an `id`); `pick(row)` is what to list for a row, or
    None. Reads chunks until `limit` were kept or `budget` rows were read (then a short
    page with a cursor). The cursor is the last row read, so it depends only on the rows
    the listing reads (for a partner, its own), never on a filter SQL did not apply."""
    found: list[T] = []
    read = 0
    cursor = start
    chunk = min(max(limit * 4, 100), budget)
    while True:
        rows = await fetch(cursor, chunk)
        for index, row in enumerate(rows[:chunk]):
            read += 1
            cursor = row["id"]
            kept = await pick(row)
            if kept is not None:
                found.append(kept)
                if len(found) == limit:
                    # Another row follows this one (the chunk's extra row counts): more.
                    return found, cursor if index + 1 < len(rows) else None
        if len(rows) <= chunk:
            return found, None
        if read >= budget:
            return found, cursor


async def get_claim(conn: AsyncConnection, claim_id: str) -> Row | None:
    row = (await conn.execute(select(claims).where(claims.c.id == claim_id))).mappings().first()
    return dict(row) if row is not None else None


# Built once (an expanding IN): composing it per call cost more CPU than running it.
_CURRENT_DISPUTES = (
    select(dispute_members.c.member_id, disputes.c.id)
    .join(disputes, disputes.c.id == dispute_members.c.dispute_id)
    .where(dispute_members.c.member_id.in_(bindparam("member_ids", expanding=True)),
           disputes.c.opened_at.is_not(None))
    .order_by(disputes.c.opened_at, disputes.c.id)
)


async def current_disputes(conn: AsyncConnection, member_ids: Iterable[str]) -> dict[str, str]:
    """For each member, the dispute it was most recently drawn into."""
    ids = list(member_ids)
    if not ids:
        return {}
    rows = (await conn.execute(_CURRENT_DISPUTES, {"member_ids": ids})).all()
    return {member: dispute for member, dispute in rows}


async def timeline(conn: AsyncConnection, subject_id: str) -> list[Row]:
    """Entries about the subject and about every dispute it was a member of."""
    dispute_ids = (await conn.execute(
        select(dispute_members.c.dispute_id).where(dispute_members.c.member_id == subject_id)
    )).scalars().all()
    subjects = [subject_id, *dispute_ids]
    rows = (await conn.execute(
        select(timeline_entries).where(timeline_entries.c.subject_id.in_(subjects))
    )).mappings()
    unique: dict[str, Row] = {}
    for row in rows:
        unique.setdefault(row["event_id"], dict(row))
    return list(unique.values())


# --- disputes --------------------------------------------------------------------------


def disputes_involving(party_type: str, party_id: str) -> Select[tuple[str]]:
    if party_type == "partner":
        # Only through a registration still in the dispute (`still_in_dispute`).
        result: Select[tuple[str]] = party_disputes(party_id)
        return result
    owned = select(claims.c.id).where(claims.c.rep_id == party_id)
    return (select(dispute_members.c.dispute_id)
            .where(dispute_members.c.member_id.in_(owned.scalar_subquery())))


async def dispute_page(
    conn: AsyncConnection, *, owner_id: str | None, statuses: Sequence[str],
    account_key: str | None, involving: tuple[str, str] | None, after: str | None,
    limit: int, levels: Sequence[int] = (), acknowledged: bool | None = None,
    due_before: datetime | None = None, by_due: bool = False,
    after_due: tuple[datetime | None, str] | None = None,
) -> list[Row]:
    """The queue: oldest first (keyset on id within the filters), or soonest due first
    (`by_due`: keyset on `(due_at, id)`, disputes without a due time last)."""
    d = disputes.c
    query = select(disputes)
    if owner_id is not None:
        query = query.where(d.owner_id == owner_id)
    if statuses:
        query = query.where(d.status.in_(list(statuses)))
    if account_key is not None:
        query = query.where(d.account_key == account_key)
    if involving is not None:
        query = query.where(d.id.in_(disputes_involving(*involving)))
    if levels:
        query = query.where(d.level.in_(list(levels)))
    if acknowledged is not None:
        query = query.where(d.acknowledged_at.is_not(None) if acknowledged
                            else d.acknowledged_at.is_(None))
    if due_before is not None:
        query = query.where(d.due_at < due_before)
    if not by_due:
        if after is not None:
            query = query.where(d.id > after)
        rows = (await conn.execute(query.order_by(d.id).limit(limit + 1))).mappings()
        return [dict(r) for r in rows]
    if after_due is not None:
        due, last = after_due
        if due is None:
            query = query.where(d.due_at.is_(None), d.id > last)
        else:
            query = query.where(or_(d.due_at > due, and_(d.due_at == due, d.id > last),
                                    d.due_at.is_(None)))
    rows = (await conn.execute(
        query.order_by(d.due_at.is_(None), d.due_at, d.id).limit(limit + 1))).mappings()
    return [dict(r) for r in rows]


async def get_dispute(conn: AsyncConnection, dispute_id: str) -> Row | None:
    row = (await conn.execute(select(disputes).where(disputes.c.id == dispute_id))
           ).mappings().first()
    return dict(row) if row is not None else None


async def breaches_of(conn: AsyncConnection, dispute_ids: Iterable[str]) -> dict[str, list[Row]]:
    ids = list(dispute_ids)
    found: dict[str, list[Row]] = {i: [] for i in ids}
    if not ids:
        return found
    for row in (await conn.execute(
        select(dispute_breaches).where(dispute_breaches.c.dispute_id.in_(ids))
        .order_by(dispute_breaches.c.dispute_id, dispute_breaches.c.level)
    )).mappings():
        found[row["dispute_id"]].append(dict(row))
    return found


async def involves(conn: AsyncConnection, dispute_id: str, party: tuple[str, str]) -> bool:
    """Whether the party is party to the dispute (`disputes_involving`)."""
    found = disputes_involving(*party).where(dispute_members.c.dispute_id == dispute_id)
    return (await conn.execute(found.limit(1))).first() is not None


async def members_of(conn: AsyncConnection, dispute_id: str) -> list[str]:
    return list((await conn.execute(
        select(dispute_members.c.member_id).where(dispute_members.c.dispute_id == dispute_id)
    )).scalars().all())


# --- pipeline --------------------------------------------------------------------------

GROUPINGS = ("partner", "stage", "product", "motion")


async def pipeline(
    conn: AsyncConnection, group_by: str, *, partner_id: str | None,
    statuses: Sequence[str], motions: Sequence[str],
) -> list[tuple[str, str, str, int, int]]:
    """`(group, motion, currency, count, amount_e4)` rows of the chosen grouping."""
    table = pipeline_product_totals if group_by == "product" else pipeline_totals
    t = table.c
    group = {"partner": t.partner_id, "stage": t.status, "product": t.get("product"),
             "motion": t.motion}[group_by]
    assert group is not None
    query = select(group, t.motion, t.currency, func.sum(t.count), func.sum(t.amount_e4))
    if partner_id is not None:
        query = query.where(t.partner_id == partner_id)
    if statuses:
        query = query.where(t.status.in_(list(statuses)))
    if motions:
        query = query.where(t.motion.in_(list(motions)))
    query = query.group_by(group, t.motion, t.currency).order_by(group, t.motion, t.currency)
    return [(g, m, c, int(n), int(a)) for g, m, c, n, a in (await conn.execute(query)).all()]


# --- program metrics -------------------------------------------------------------------


def nearest_rank(count: int, p: float) -> int:
    """The 0-based index of the p-quantile among `count` sorted values (nearest rank)."""
    return max(0, min(count - 1, math.ceil(p * count) - 1))


async def percentiles(
    conn: AsyncConnection, column: Any, where: Sequence[ColumnElement[bool]],
    ps: Sequence[float],
) -> tuple[int, dict[float, int | None]]:
    count = int((await conn.execute(
        select(func.count()).where(column.is_not(None), *where))).scalar_one())
    values: dict[float, int | None] = {}
    for p in ps:
        if count == 0:
            values[p] = None
            continue
        values[p] = (await conn.execute(
            select(column).where(column.is_not(None), *where)
            .order_by(column).limit(1).offset(nearest_rank(count, p))
        )).scalar_one()
    return count, values


def window(column: Any, since: datetime | None, until: datetime | None
           ) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(column >= since)
    if until is not None:
        conditions.append(column < until)
    return conditions


async def registration_metrics(
    conn: AsyncConnection, since: datetime | None, until: datetime | None
) -> tuple[dict[str, int], tuple[int, dict[float, int | None]]]:
    r = registrations.c
    submitted = window(r.submitted_at, since, until)
    counts = (await conn.execute(
        select(
            func.count(r.submitted_at),
            func.count(r.first_decided_at),
            func.sum(_flag(r.first_rule.in_(["no_conflict", "non_exclusive"]))),
            func.sum(_flag(r.collided.is_(True))),
        ).where(r.submitted_at.is_not(None), *submitted)
    )).one()
    latency = await percentiles(conn, r.decision_latency_ms, submitted, (0.5, 0.95, 0.99))
    return {
        "submitted": int(counts[0] or 0), "decided": int(counts[1] or 0),
        "auto_approved": int(counts[2] or 0), "collided": int(counts[3] or 0),
    }, latency


def _flag(condition: ColumnElement[bool]) -> Any:
    return case((condition, 1), else_=0)


async def dispute_metrics(
    conn: AsyncConnection, since: datetime | None, until: datetime | None
) -> tuple[dict[str, int], tuple[int, dict[float, int | None]], list[tuple[int, str, int]]]:
    d = disputes.c
    opened = int((await conn.execute(
        select(func.count()).where(d.opened_at.is_not(None),
                                   *window(d.opened_at, since, until)))).scalar_one())
    settled = [d.resolved_at.is_not(None), or_(d.outcome.is_(None), d.outcome != "merged"),
               *window(d.resolved_at, since, until)]
    resolved = int((await conn.execute(select(func.count()).where(*settled))).scalar_one())
    merged = int((await conn.execute(select(func.count()).where(
        d.outcome == "merged", *window(d.resolved_at, since, until)))).scalar_one())
    still_open = int((await conn.execute(
        select(func.count()).where(d.status == "open"))).scalar_one())
    to_resolve = await percentiles(conn, d.resolve_ms, settled, (0.5, 0.9))
    b = dispute_breaches.c
    breaches = [(int(level), outcome, int(n)) for level, outcome, n in (await conn.execute(
        select(b.level, b.outcome, func.count())
        .where(*window(b.deadline, since, until))
        .group_by(b.level, b.outcome).order_by(b.level, b.outcome)
    )).all()]
    return ({"opened": opened, "resolved": resolved, "merged": merged, "open": still_open},
            to_resolve, breaches)


async def partner_results(
    conn: AsyncConnection, since: datetime | None, until: datetime | None
) -> list[tuple[str, str, str, str, int, int]]:
    """`(partner, status, motion, currency, count, amount_e4)` of won and lost deals."""
    r = registrations.c
    value = func.coalesce(r.closed_amount_e4, r.amount_e4, 0)
    currency = func.coalesce(r.closed_currency, r.currency, "")
    rows = (await conn.execute(
        select(r.partner_id, r.status, r.motion, currency, func.count(), func.sum(value))
        .where(r.status.in_(["won", "lost"]), r.partner_id.is_not(None),
               *window(r.ended_at, since, until))
        .group_by(r.partner_id, r.status, r.motion, currency)
        .order_by(r.partner_id, r.status, r.motion, currency)
    )).all()
    return [(p, s, m or "", c, int(n), int(a or 0)) for p, s, m, c, n, a in rows]
