"""Program metrics over a date range, as series: the pure part (no I/O, no clock).

A range is whole UTC days `[start, end]` (both included), cut into buckets of a `day` or an
ISO `week` (Monday to Sunday; the first and the last week are clipped to the range and
labelled by their Monday). The adapter counts rows per bucket in SQL; this module lays the
buckets out (every bucket of the range, zeros included, so a quiet day is a zero and not a
gap), computes the rates and the nearest ranks, expands product lists, and writes CSV.

Every series is a table: `columns` and `rows` (values in column order), the same in JSON
and in CSV, so a chart, its accessible text table and its download show one set of numbers.

Definitions (one place; the README's API section repeats them):

- *time to decision*: the first decision that settled the registration (approved or
  rejected; `in_review`, for a tie window, a possible duplicate or a dispute, is still
  waiting) - its submission, for registrations submitted in the range (a first decision is
  stamped with the time of the event it answers, so an instant decision takes 0 s);
- *auto-approval rate*: first decisions by `no_conflict` or `non_exclusive` / first
  decisions; *collision rate*: first decisions that named a conflict / first decisions,
  by submission bucket;
- *disputes*: opened by opening time, resolved by resolution time (merges into another
  dispute are not resolutions), time to resolve = resolution - opening;
- *SLA breaches*: by the deadline that passed, per escalation level;
- *pipeline*: registrations submitted in the range except rejected ones, sourced (resell,
  co-sell) vs influenced (referral, influence), count and amount per currency (the closed
  amount when the CRM reported one, else the registered one); a deal naming several
  products counts in full under each;
- *win rates*: deals closed in the range, won / (won + lost) per partner.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal

Bucket = Literal["day", "week"]
Value = str | int | float | None
MAX_BUCKETS = 400
PERCENTS = (50, 90)
AUTO_RULES = ("no_conflict", "non_exclusive")
PIPELINE_EXCLUDED = ("rejected",)

# Time to decision: bin edges in seconds (the last bin is open-ended).
DECISION_BINS: tuple[tuple[str, int], ...] = (
    ("< 1 s", 0), ("1-10 s", 1), ("10-60 s", 10), ("1-10 min", 60), ("10-60 min", 600),
    ("1-4 h", 3600), ("4-24 h", 4 * 3600), ("1-3 d", 86400), ("3-7 d", 3 * 86400),
    ("≥ 7 d", 7 * 86400),
)


class RangeError(ValueError):
    """The range cannot be served: `field` names the query parameter to blame."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date
    """Included."""
    bucket: Bucket

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(), UTC)

    @property
    def until(self) -> datetime:
        """Excluded: midnight UTC after the last day."""
        return datetime.combine(self.end + timedelta(days=1), time(), UTC)

    def buckets(self) -> list[date]:
        """Every bucket's label (a day, or the Monday of a week), in order."""
        first = bucket_start(self.start, self.bucket)
        step = timedelta(days=1 if self.bucket == "day" else 7)
        out: list[date] = []
        day = first
        while day <= self.end:
            out.append(day)
            day += step
        return out


def bucket_start(day: date, bucket: Bucket) -> date:
    return day if bucket == "day" else day - timedelta(days=day.weekday())


def period(start: date, end: date, bucket: Bucket) -> Period:
    if end < start:
        raise RangeError("to", "`to` is before `from`")
    found = Period(start, end, bucket)
    count = len(found.buckets())
    if count > MAX_BUCKETS:
        raise RangeError("to", f"{count} {bucket}s: at most {MAX_BUCKETS} buckets; "
                               "choose a shorter range or weekly buckets")
    return found


def rank(count: int, percent: int) -> int:
    """The 1-based nearest rank of the `percent` quantile among `count` sorted values."""
    return max(1, min(count, -(-percent * count // 100)))


def seconds(ms: int | None) -> float | None:
    return None if ms is None else round(ms / 1000.0, 3)


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def money(e4: int) -> str:
    """Ten-thousandths to a decimal string: two places when exact, else four."""
    places = Decimal("0.01") if e4 % 100 == 0 else Decimal("0.0001")
    return str((Decimal(e4) / Decimal(10000)).quantize(places))


def sourced(motion: str | None) -> bool:
    return motion in ("resell", "co_sell")


@dataclass(slots=True)
class Series:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Value, ...]] = field(default_factory=list)
    summary: dict[str, Value] = field(default_factory=dict)

    def records(self) -> list[dict[str, Value]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


SERIES: dict[str, str] = {
    "decision_time": "Time to decision (distribution)",
    "decisions": "Decisions over time: auto-approval and collision rates",
    "disputes": "Disputes opened and resolved, time to resolve",
    "sla_breaches": "SLA breaches by level",
    "pipeline_by_partner": "Pipeline by partner: sourced vs influenced",
    "pipeline_by_product": "Pipeline by product: sourced vs influenced",
    "win_rates": "Partner win rates",
}


# --- builders: the adapter's counts in, one series out ---------------------------------

Quantiles = Mapping[date, Mapping[int, int]]
"""bucket -> percent -> value (ms)"""


def decision_time(bins: Mapping[int, int], count: int, p50_ms: int | None,
                  p90_ms: int | None) -> Series:
    """`bins`: bin index (into DECISION_BINS) -> registrations."""
    series = Series("decision_time", SERIES["decision_time"],
                    ("bin", "from_seconds", "to_seconds", "registrations"))
    for i, (label, low) in enumerate(DECISION_BINS):
        high = DECISION_BINS[i + 1][1] if i + 1 < len(DECISION_BINS) else None
        series.rows.append((label, low, high, bins.get(i, 0)))
    series.summary = {"count": count, "p50_seconds": seconds(p50_ms),
                      "p90_seconds": seconds(p90_ms)}
    return series


def decisions(span: Period, counts: Mapping[date, tuple[int, int, int, int]],
              quantiles: Quantiles) -> Series:
    """`counts`: bucket -> (submitted, decided, auto_approved, collided)."""
    series = Series("decisions", SERIES["decisions"], (
        "bucket", "submitted", "decided", "auto_approved", "collided", "auto_approval_rate",
        "collision_rate", "p50_seconds", "p90_seconds"))
    totals = [0, 0, 0, 0]
    for day in span.buckets():
        submitted, decided, auto, collided = counts.get(day, (0, 0, 0, 0))
        q = quantiles.get(day, {})
        series.rows.append((day.isoformat(), submitted, decided, auto, collided,
                            rate(auto, decided), rate(collided, decided),
                            seconds(q.get(50)), seconds(q.get(90))))
        for i, n in enumerate((submitted, decided, auto, collided)):
            totals[i] += n
    series.summary = {"submitted": totals[0], "decided": totals[1],
                      "auto_approved": totals[2], "collided": totals[3],
                      "auto_approval_rate": rate(totals[2], totals[1]),
                      "collision_rate": rate(totals[3], totals[1])}
    return series


def disputes(span: Period, opened: Mapping[date, int], resolved: Mapping[date, int],
             quantiles: Quantiles, p50_ms: int | None, p90_ms: int | None) -> Series:
    series = Series("disputes", SERIES["disputes"], (
        "bucket", "opened", "resolved", "p50_seconds_to_resolve", "p90_seconds_to_resolve"))
    for day in span.buckets():
        q = quantiles.get(day, {})
        series.rows.append((day.isoformat(), opened.get(day, 0), resolved.get(day, 0),
                            seconds(q.get(50)), seconds(q.get(90))))
    series.summary = {"opened": sum(opened.values()), "resolved": sum(resolved.values()),
                      "p50_seconds_to_resolve": seconds(p50_ms),
                      "p90_seconds_to_resolve": seconds(p90_ms)}
    return series


def sla_breaches(span: Period, counts: Mapping[tuple[date, int], int]) -> Series:
    """`counts`: (bucket, level) -> breaches. One row per bucket and level that breached
    at least once in the range (no level breached: no rows)."""
    series = Series("sla_breaches", SERIES["sla_breaches"], ("bucket", "level", "breaches"))
    levels = sorted({level for _, level in counts})
    for day in span.buckets():
        for level in levels:
            series.rows.append((day.isoformat(), level, counts.get((day, level), 0)))
    by_level: dict[int, int] = defaultdict(int)
    for (_, level), n in counts.items():
        by_level[level] += n
    series.summary = {f"level_{level}": by_level[level] for level in levels}
    series.summary["total"] = sum(by_level.values())
    return series


PipelineRow = tuple[str, str, str, int, int]
"""(key, motion, currency, count, amount_e4)"""


def pipeline(name: Literal["pipeline_by_partner", "pipeline_by_product"],
             rows: Iterable[PipelineRow]) -> Series:
    key = "partner" if name == "pipeline_by_partner" else "product"
    series = Series(name, SERIES[name], (
        key, "currency", "sourced_count", "sourced_amount", "influenced_count",
        "influenced_amount"))
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for group, motion, currency, count, amount in rows:
        entry = sums[(group, currency)]
        offset = 0 if sourced(motion) else 2
        entry[offset] += count
        entry[offset + 1] += amount
    for (group, currency), (sc, sa, ic, ia) in sorted(sums.items()):
        series.rows.append((group, currency, sc, money(sa), ic, money(ia)))
    series.summary = {"sourced_count": sum(v[0] for v in sums.values()),
                      "influenced_count": sum(v[2] for v in sums.values())}
    return series


def expand_products(rows: Iterable[tuple[Sequence[str] | None, str, str, int, int]]
                    ) -> list[PipelineRow]:
    """Rows grouped by a deal's product list, to rows per product: a deal counts in full
    under each product it names (once, however often it names it); no product: `""`."""
    out: list[PipelineRow] = []
    for products, motion, currency, count, amount in rows:
        for product in sorted(set(products or ())) or [""]:
            out.append((product, motion, currency, count, amount))
    return out


def win_rates(rows: Iterable[tuple[str, str, int]]) -> Series:
    """`rows`: (partner, won | lost, deals)."""
    series = Series("win_rates", SERIES["win_rates"], ("partner", "won", "lost", "win_rate"))
    results: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for partner, outcome, count in rows:
        results[partner][0 if outcome == "won" else 1] += count
    for partner, (won, lost) in sorted(results.items()):
        series.rows.append((partner, won, lost, rate(won, won + lost)))
    won = sum(v[0] for v in results.values())
    lost = sum(v[1] for v in results.values())
    series.summary = {"won": won, "lost": lost, "win_rate": rate(won, won + lost)}
    return series


# --- CSV ---------------------------------------------------------------------------------

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        # A text cell a spreadsheet would run as a formula (a product called "=cmd|...")
        # is quoted; numbers are written as they are (a negative number stays a number).
        return "'" + value if value.startswith(_FORMULA) else value
    return str(value)


def to_csv(series: Series) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(series.columns)
    for row in series.rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()
