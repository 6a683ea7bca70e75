"""SQL of the program series (`GET /v1/program/metrics`): counts per bucket, nearest-rank
quantiles per bucket, histogram bins, pipeline and results over the read models.

Everything is aggregated in the database (GROUP BY a bucket expression, window functions
for the quantiles), on PostgreSQL and SQLite alike; what comes back is a few rows per
bucket, never the registrations themselves. The bucket expression is the only
dialect-specific piece: the UTC day, or the Monday of its ISO week, as `YYYY-MM-DD`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projections.adapters.queries import percentiles, window
from services.projections.domain import program
from services.projections.domain.program import Bucket, Period
from shared.readmodel.schema import dispute_breaches, disputes, registrations


def bucket_of(conn: AsyncConnection, column: Any, bucket: Bucket) -> Any:
    """The bucket label of a UTC timestamp column, `YYYY-MM-DD`."""
    if conn.dialect.name == "postgresql":
        utc = func.timezone("UTC", column)
        return func.to_char(func.date_trunc(bucket, utc), "YYYY-MM-DD")
    if bucket == "day":
        return func.strftime("%Y-%m-%d", column)
    # SQLite stores UTC text; `weekday 0` moves to the next Sunday (or stays), -6 days is
    # that week's Monday.
    return func.date(column, "weekday 0", "-6 days")


def _day(label: str | date) -> date:
    return label if isinstance(label, date) else date.fromisoformat(label)


def _flag(condition: ColumnElement[bool]) -> Any:
    return case((condition, 1), else_=0)


async def quantiles_per_bucket(
    conn: AsyncConnection, value: Any, time_column: Any, span: Period,
    where: Sequence[ColumnElement[bool]],
) -> dict[date, dict[int, int]]:
    """Nearest-rank p50/p90 of `value` per bucket of `time_column`, exact: rows are ranked
    within their bucket and only the rows at a wanted rank come back."""
    bucket = bucket_of(conn, time_column, span.bucket)
    ranked = select(
        bucket.label("b"), value.label("v"),
        func.row_number().over(partition_by=bucket, order_by=value).label("rn"),
        func.count().over(partition_by=bucket).label("n"),
    ).where(value.is_not(None), *window(time_column, span.since, span.until), *where
            ).subquery()
    c = ranked.c
    # rank = ceil(p * n / 100): rn * 100 >= p * n > (rn - 1) * 100, in integers.
    wanted = or_(*(and_(c.rn * 100 >= literal(p) * c.n, (c.rn - 1) * 100 < literal(p) * c.n)
                   for p in program.PERCENTS))
    out: dict[date, dict[int, int]] = {}
    for label, v, rn, n in (await conn.execute(select(c.b, c.v, c.rn, c.n).where(wanted))).all():
        for p in program.PERCENTS:
            if program.rank(int(n), p) == int(rn):
                out.setdefault(_day(label), {})[p] = int(v)
    return out


async def decision_time(conn: AsyncConnection, span: Period) -> program.Series:
    r = registrations.c
    submitted = window(r.submitted_at, span.since, span.until)
    bins = case(*((r.settle_ms >= low * 1000, literal(i)) for i, (_, low)
                  in reversed(list(enumerate(program.DECISION_BINS))) if low > 0),
                else_=literal(0))
    counts = {int(i): int(n) for i, n in (await conn.execute(
        select(bins, func.count()).where(r.settle_ms.is_not(None), *submitted)
        .group_by(bins))).all()}
    count, values = await percentiles(conn, r.settle_ms, submitted, (0.5, 0.9))
    return program.decision_time(counts, count, values[0.5], values[0.9])


async def decisions(conn: AsyncConnection, span: Period) -> program.Series:
    r = registrations.c
    bucket = bucket_of(conn, r.submitted_at, span.bucket)
    rows = (await conn.execute(
        select(bucket, func.count(), func.count(r.first_decided_at),
               func.sum(_flag(r.first_rule.in_(program.AUTO_RULES))),
               func.sum(_flag(r.collided.is_(True))))
        .where(r.submitted_at.is_not(None), *window(r.submitted_at, span.since, span.until))
        .group_by(bucket))).all()
    counts = {_day(b): (int(s), int(d), int(a or 0), int(c or 0)) for b, s, d, a, c in rows}
    quantiles = await quantiles_per_bucket(conn, r.settle_ms, r.submitted_at,
                                           span, [])
    return program.decisions(span, counts, quantiles)


async def dispute_series(conn: AsyncConnection, span: Period) -> program.Series:
    d = disputes.c
    opened_bucket = bucket_of(conn, d.opened_at, span.bucket)
    opened = {_day(b): int(n) for b, n in (await conn.execute(
        select(opened_bucket, func.count())
        .where(d.opened_at.is_not(None), *window(d.opened_at, span.since, span.until))
        .group_by(opened_bucket))).all()}
    settled = [d.resolved_at.is_not(None), or_(d.outcome.is_(None), d.outcome != "merged")]
    resolved_bucket = bucket_of(conn, d.resolved_at, span.bucket)
    resolved = {_day(b): int(n) for b, n in (await conn.execute(
        select(resolved_bucket, func.count())
        .where(*settled, *window(d.resolved_at, span.since, span.until))
        .group_by(resolved_bucket))).all()}
    quantiles = await quantiles_per_bucket(conn, d.resolve_ms, d.resolved_at, span, settled)
    _, overall = await percentiles(
        conn, d.resolve_ms, [*settled, *window(d.resolved_at, span.since, span.until)],
        (0.5, 0.9))
    return program.disputes(span, opened, resolved, quantiles, overall[0.5], overall[0.9])


async def sla_breaches(conn: AsyncConnection, span: Period) -> program.Series:
    b = dispute_breaches.c
    bucket = bucket_of(conn, b.deadline, span.bucket)
    rows = (await conn.execute(
        select(bucket, b.level, func.count())
        .where(*window(b.deadline, span.since, span.until))
        .group_by(bucket, b.level))).all()
    return program.sla_breaches(span, {(_day(k), int(level)): int(n) for k, level, n in rows})


def _pipeline_where(span: Period) -> list[ColumnElement[bool]]:
    r = registrations.c
    return [r.submitted_at.is_not(None), r.partner_id.is_not(None),
            r.status.not_in(program.PIPELINE_EXCLUDED),
            *window(r.submitted_at, span.since, span.until)]


def _money() -> tuple[Any, Any]:
    r = registrations.c
    has_closed = r.closed_amount_e4.is_not(None)
    value = case((has_closed, r.closed_amount_e4), else_=func.coalesce(r.amount_e4, 0))
    currency = case((has_closed, func.coalesce(r.closed_currency, "")),
                    else_=func.coalesce(r.currency, ""))
    return value, currency


async def pipeline_by_partner(conn: AsyncConnection, span: Period) -> program.Series:
    r = registrations.c
    value, currency = _money()
    motion = func.coalesce(r.motion, "")
    rows = (await conn.execute(
        select(r.partner_id, motion, currency, func.count(), func.sum(value))
        .where(*_pipeline_where(span)).group_by(r.partner_id, motion, currency))).all()
    return program.pipeline("pipeline_by_partner",
                            [(p, m, c, int(n), int(a or 0)) for p, m, c, n, a in rows])


async def pipeline_by_product(conn: AsyncConnection, span: Period) -> program.Series:
    """Grouped by the deal's product list (few distinct lists), expanded per product in
    the domain: JSON arrays are not unnested the same way on both backends."""
    r = registrations.c
    value, currency = _money()
    motion = func.coalesce(r.motion, "")
    products = r.opportunity["products"]
    rows = (await conn.execute(
        select(products, motion, currency, func.count(), func.sum(value))
        .where(*_pipeline_where(span)).group_by(products, motion, currency))).all()
    return program.pipeline("pipeline_by_product", program.expand_products(
        (list(p) if isinstance(p, list) else None, m, c, int(n), int(a or 0))
        for p, m, c, n, a in rows))


async def win_rates(conn: AsyncConnection, span: Period) -> program.Series:
    r = registrations.c
    rows = (await conn.execute(
        select(r.partner_id, r.status, func.count())
        .where(r.status.in_(["won", "lost"]), r.partner_id.is_not(None),
               *window(r.ended_at, span.since, span.until))
        .group_by(r.partner_id, r.status))).all()
    return program.win_rates([(p, s, int(n)) for p, s, n in rows])


READERS = {
    "decision_time": decision_time,
    "decisions": decisions,
    "disputes": dispute_series,
    "sla_breaches": sla_breaches,
    "pipeline_by_partner": pipeline_by_partner,
    "pipeline_by_product": pipeline_by_product,
    "win_rates": win_rates,
}
