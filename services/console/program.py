"""The Program area (channel managers and admins): the program leader's dashboards.

One page, `/console/program/?from&to&bucket`: a date-range picker and, for each series of
`GET /v1/program/metrics`, one or two charts (server-rendered SVG, `charts.py`), the
numbers as a text table and a CSV download. Everything comes from the API with the user's
own key through `ConsoleApi` (the API decides who may read it: a partner is refused there
as here); the CSV link is `/console/program/csv/{series}`, which passes the API's own CSV
through, so the download is the API's answer byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from starlette.responses import Response

from services.console import charts
from services.console.charts import Chart, Line
from services.console.client import ApiProblem, ConsoleApi
from services.console.pages import TEMPLATES, Area, render
from services.console.session import Session

AREA = Area("program", "Program", frozenset({"channel_manager"}))
router = AREA.router()

BUCKETS = ("day", "week")
SERIES = ("decision_time", "decisions", "disputes", "sla_breaches", "pipeline_by_partner",
          "pipeline_by_product", "win_rates")
TOP_GROUPS = 15
"""Partners or products drawn (by amount); the table and the CSV have them all."""

TEMPLATES.env.globals.update(chart_svg=charts.svg, chart_legend=charts.legend)


@dataclass
class Panel:
    name: str
    title: str
    caption: str
    charts: list[Chart]
    columns: list[str]
    rows: list[dict[str, Any]]
    csv: str = ""
    notes: list[str] = field(default_factory=list)


@router.get("/")
async def dashboard(
    request: Request, session: Annotated[Session, Depends(AREA.guard)],
    start: Annotated[str | None, Query(alias="from", max_length=20)] = None,
    to: Annotated[str | None, Query(max_length=20)] = None,
    bucket: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    api = ConsoleApi.of(request, session)
    wanted = {"from": start, "to": to, "bucket": bucket if bucket in BUCKETS else None}
    try:
        data = await api.get("/v1/program/metrics", **wanted)
    except ApiProblem as problem:
        if problem.status != 422:
            raise
        return render(request, "program/dashboard.html", session, status_code=422,
                      problem=problem, errors=problem.field_errors(), panels=[],
                      range={"from": start or "", "to": to or "", "bucket": bucket or "day"},
                      buckets=BUCKETS)
    chosen = {"from": data["from"], "to": data["to"], "bucket": data["bucket"]}
    query = urlencode(chosen)
    found = {s["name"]: s for s in data["series"]}
    panels = [panel(found[name]) for name in SERIES if name in found]
    for p in panels:
        p.csv = f"/console/program/csv/{p.name}?{query}"
    return render(request, "program/dashboard.html", session, panels=panels, range=chosen,
                  buckets=BUCKETS, errors={}, problem=None)


@router.get("/csv/{series}")
async def download(
    request: Request, session: Annotated[Session, Depends(AREA.guard)], series: str,
    start: Annotated[str | None, Query(alias="from", max_length=20)] = None,
    to: Annotated[str | None, Query(max_length=20)] = None,
    bucket: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    if series not in SERIES:
        raise ApiProblem(404, "Not found", "No such series.")
    api = ConsoleApi.of(request, session)
    answer = await api.download(f"/v1/program/metrics/{series}", "text/csv",
                                **{"from": start, "to": to, "bucket": bucket})
    return Response(answer.content, media_type=answer.headers.get("content-type", "text/csv"),
                    headers={"Content-Disposition": answer.headers.get(
                        "content-disposition", f'attachment; filename="{series}.csv"'),
                        "Cache-Control": "no-store"})


# --- series -> panels (pure) -------------------------------------------------------------


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def _percent(value: Any) -> float | None:
    found = _num(value)
    return None if found is None else round(found * 100, 2)


def duration_unit(seconds: list[float | None]) -> tuple[str, float]:
    """A unit that keeps the numbers readable: (label, seconds per unit)."""
    top = max((s for s in seconds if s is not None), default=0.0)
    if top >= 2 * 86400:
        return "d", 86400.0
    if top >= 2 * 3600:
        return "h", 3600.0
    if top >= 120:
        return "min", 60.0
    if 0 < top < 1:
        return "ms", 0.001
    return "s", 1.0


def _durations(rows: list[dict[str, Any]], columns: tuple[str, str]
               ) -> tuple[str, tuple[Line, ...]]:
    values = [_num(r[c]) for r in rows for c in columns]
    unit, scale = duration_unit(values)
    return unit, tuple(
        Line(name, tuple(None if _num(r[c]) is None else round(_num(r[c]) or 0.0, 3) / scale
                         for r in rows))
        for name, c in zip(("p50", "p90"), columns, strict=True))


def _human(seconds: Any) -> str:
    found = _num(seconds)
    if found is None:
        return "—"
    unit, scale = duration_unit([found])
    return charts.fmt(round(found / scale, 2), unit)


def _buckets(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(str(r["bucket"]) for r in rows)


def panel(series: dict[str, Any]) -> Panel:
    name, rows, summary = series["name"], series["rows"], series["summary"]
    out = Panel(name, series["title"], "", [], list(series["columns"]), rows)
    if name == "decision_time":
        out.caption = (f"{summary['count']} registrations settled (approved or rejected; "
                       f"in review counts as waiting); median "
                       f"{_human(summary['p50_seconds'])}, 90th percentile "
                       f"{_human(summary['p90_seconds'])}.")
        out.charts.append(Chart(
            "decision-time", "Time to decision", "bars", tuple(r["bin"] for r in rows),
            (Line("registrations", tuple(float(r["registrations"]) for r in rows)),),
            summary=out.caption))
    elif name == "decisions":
        out.caption = (f"{summary['submitted']} submitted, {summary['decided']} decided; "
                       f"auto-approval rate {_rate_text(summary['auto_approval_rate'])}, "
                       f"collision rate {_rate_text(summary['collision_rate'])}.")
        out.charts.append(Chart(
            "decision-rates", "Auto-approval and collision rates", "lines", _buckets(rows),
            (Line("auto-approval rate", tuple(_percent(r["auto_approval_rate"]) for r in rows)),
             Line("collision rate", tuple(_percent(r["collision_rate"]) for r in rows))),
            unit="%", summary=out.caption))
        unit, lines = _durations(rows, ("p50_seconds", "p90_seconds"))
        out.charts.append(Chart(
            "decision-latency", "Time to decision, p50 and p90", "lines", _buckets(rows),
            lines, unit=unit, summary=f"Time to decision per period, in {unit}."))
    elif name == "disputes":
        out.caption = (f"{summary['opened']} opened, {summary['resolved']} resolved; time "
                       f"to resolve: median {_human(summary['p50_seconds_to_resolve'])}, "
                       f"90th percentile {_human(summary['p90_seconds_to_resolve'])}.")
        out.charts.append(Chart(
            "disputes", "Disputes opened and resolved", "bars", _buckets(rows),
            (Line("opened", tuple(float(r["opened"]) for r in rows)),
             Line("resolved", tuple(float(r["resolved"]) for r in rows))),
            summary=out.caption))
        unit, lines = _durations(rows, ("p50_seconds_to_resolve", "p90_seconds_to_resolve"))
        out.charts.append(Chart(
            "resolve-time", "Time to resolve, p50 and p90", "lines", _buckets(rows), lines,
            unit=unit, summary=f"Time to resolve per period, in {unit}."))
    elif name == "sla_breaches":
        levels = sorted({int(r["level"]) for r in rows})
        buckets = tuple(dict.fromkeys(str(r["bucket"]) for r in rows))
        counts = {(str(r["bucket"]), int(r["level"])): float(r["breaches"]) for r in rows}
        out.caption = (f"{summary.get('total', 0)} SLA breaches"
                       + (": " + ", ".join(f"level {lv} {summary.get(f'level_{lv}', 0)}"
                                           for lv in levels) if levels else "") + ".")
        out.charts.append(Chart(
            "sla-breaches", "SLA breaches by level", "stacked", buckets,
            tuple(Line(f"level {lv}", tuple(counts.get((b, lv), 0.0) for b in buckets))
                  for lv in levels), summary=out.caption))
    elif name in ("pipeline_by_partner", "pipeline_by_product"):
        key = "partner" if name == "pipeline_by_partner" else "product"
        out.charts.append(_pipeline_chart(name, key, rows, out))
    elif name == "win_rates":
        ranked = sorted(rows, key=lambda r: -(r["won"] + r["lost"]))[:TOP_GROUPS]
        out.caption = (f"{summary['won']} won, {summary['lost']} lost: win rate "
                       f"{_rate_text(summary['win_rate'])} over deals closed in the range.")
        out.charts.append(Chart(
            "win-rates", "Partner win rates", "bars", tuple(r["partner"] for r in ranked),
            (Line("win rate", tuple(_percent(r["win_rate"]) for r in ranked)),),
            unit="%", summary=out.caption))
        if len(rows) > TOP_GROUPS:
            out.notes.append(f"The {TOP_GROUPS} partners with the most closed deals are "
                             "drawn; the table has all.")
    return out


def _rate_text(value: Any) -> str:
    found = _percent(value)
    return "—" if found is None else charts.fmt(found, "%")


def _pipeline_chart(name: str, key: str, rows: list[dict[str, Any]], out: Panel) -> Chart:
    """Sourced vs influenced amounts per partner (product) in the range's main currency
    (the one with the largest total); other currencies are in the table."""
    totals: dict[str, float] = {}
    for r in rows:
        if r["currency"]:
            totals[r["currency"]] = totals.get(r["currency"], 0.0) + float(
                r["sourced_amount"]) + float(r["influenced_amount"])
    currency = max(sorted(totals), key=lambda c: totals[c]) if totals else ""
    chosen = [r for r in rows if r["currency"] == currency]
    if currency:
        measure, unit = ("sourced_amount", "influenced_amount"), currency
    else:
        measure, unit = ("sourced_count", "influenced_count"), ""
    chosen.sort(key=lambda r: -(float(r[measure[0]]) + float(r[measure[1]])))
    drawn = chosen[:TOP_GROUPS]
    count = sum(r["sourced_count"] + r["influenced_count"] for r in rows)
    what = "partners" if key == "partner" else "products"
    out.caption = (f"{count} registrations (rejected ones left out) across "
                   f"{len({r[key] for r in rows})} {what}"
                   + (f"; amounts in {currency}" if currency else "") + ".")
    if len(totals) > 1:
        out.notes.append("Other currencies: " + ", ".join(c for c in sorted(totals)
                                                          if c != currency)
                         + " (in the table and the CSV).")
    if len(chosen) > TOP_GROUPS:
        out.notes.append(f"The {TOP_GROUPS} largest {what} are drawn; the table has all.")
    return Chart(
        name.replace("_", "-"), out.title, "stacked",
        tuple(str(r[key]) or "(none)" for r in drawn),
        (Line("sourced", tuple(float(r[measure[0]]) for r in drawn)),
         Line("influenced", tuple(float(r[measure[1]]) for r in drawn))),
        unit=unit, summary=out.caption, unit_on_axis=False)

