"""Server-rendered SVG charts for the program dashboards (pure: data in, markup out).

Why SVG drawn here rather than a JavaScript chart library: the chart is in the page as it
is served, so it shows without JavaScript, under the console's strict Content-Security-Policy
(no inline script or style: colours are SVG presentation attributes), prints, and scales
with the page (a `viewBox`); every mark carries its series, category and value
(`data-series`, `data-category`, `data-value`) and a `<title>` the browser shows on hover;
nothing is vendored or kept up to date. The numbers drawn are the numbers of the API's
answer, and each chart comes with a text table of them (`<details>`) and an aria summary.

Kinds: `bars` (grouped), `stacked` (stacked bars), `lines` (a polyline and a dot per value;
a missing value is a gap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from markupsafe import Markup, escape

Kind = Literal["bars", "stacked", "lines"]
PALETTE = ("#0b57d0", "#c2410c", "#127a3e", "#7c3aed", "#b3261e", "#0e7490", "#854d0e")
WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 64


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    values: tuple[float | None, ...]


@dataclass(slots=True)
class Chart:
    key: str
    """Unique on the page (element ids)."""
    title: str
    kind: Kind
    categories: tuple[str, ...]
    lines: tuple[Line, ...]
    unit: str = ""
    """Shown on the y axis and in hover titles: `%`, `h`, `USD`, ..."""
    summary: str = ""
    """One sentence for screen readers and the caption."""
    unit_on_axis: bool = True
    """False for long units (a currency): the caption names it, the ticks stay short."""
    notes: list[str] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(v is not None for line in self.lines for v in line.values)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = float(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power + 1e-12:
            return step * power
    return 10 * power  # pragma: no cover


def ticks(top: float) -> int:
    """Intervals of the y axis that land on round numbers for a `nice_ceiling` top."""
    leading = top / float(10 ** math.floor(math.log10(top)))
    return 4 if math.isclose(leading, 2) else 5


def fmt(value: float, unit: str = "") -> str:
    if unit == "%":
        text = f"{value:.1f}".rstrip("0").rstrip(".")
        return f"{text}%"
    if abs(value) >= 1_000_000:
        text = f"{value / 1_000_000:.1f}".rstrip("0").rstrip(".") + "M"
    elif abs(value) >= 10_000:
        text = f"{value / 1000:.1f}".rstrip("0").rstrip(".") + "k"
    elif value == int(value):
        text = str(int(value))
    else:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text} {unit}".strip() if unit and unit != "%" else text


def _attrs(**values: object) -> Markup:
    return Markup(" ").join(
        Markup('{}="{}"').format(name.rstrip("_").replace("_", "-"), value)
        for name, value in values.items())


def svg(chart: Chart) -> Markup:
    """The chart as an inline `<svg>` (role img, titled and described)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(1, len(chart.categories))
    if chart.kind == "stacked":
        totals = [sum(line.values[i] or 0 for line in chart.lines) for i in range(n)] \
            if chart.categories else [0.0]
        top = nice_ceiling(max(totals, default=0))
    else:
        top = nice_ceiling(max((v for line in chart.lines for v in line.values
                                if v is not None), default=0))

    def y(value: float) -> float:
        return TOP + plot_h - (value / top) * plot_h

    slot = plot_w / n
    parts: list[Markup] = []
    title_id, desc_id = f"{chart.key}-title", f"{chart.key}-desc"
    parts.append(Markup('<svg class="chart" {} role="img">').format(_attrs(
        viewBox=f"0 0 {WIDTH} {HEIGHT}", width="100%", id=f"chart-{chart.key}",
        data_kind=chart.kind, data_points=chart.points, aria_labelledby=f"{title_id} {desc_id}")))
    parts.append(Markup('<title id="{}">{}</title><desc id="{}">{}</desc>').format(
        title_id, chart.title, desc_id, chart.summary or chart.title))
    # grid and y axis
    intervals = ticks(top)
    for i in range(intervals + 1):
        tick = top * i / intervals
        gy = y(tick)
        parts.append(Markup('<line class="grid" {}/>').format(_attrs(
            x1=LEFT, x2=WIDTH - RIGHT, y1=f"{gy:.1f}", y2=f"{gy:.1f}", stroke="#d5dae1")))
        parts.append(Markup('<text class="tick" {}>{}</text>').format(_attrs(
            x=LEFT - 6, y=f"{gy + 4:.1f}", text_anchor="end", font_size="11",
            fill="#4a5563"), fmt(tick, chart.unit if chart.unit_on_axis else "")))
    # x labels (thinned so they never overlap)
    every = max(1, math.ceil(n / 14))
    for i, category in enumerate(chart.categories):
        if i % every:
            continue
        cx = LEFT + slot * (i + 0.5)
        label = category if len(category) <= 14 else category[:13] + "…"
        parts.append(Markup('<text class="category" {}>{}</text>').format(_attrs(
            x=f"{cx:.1f}", y=TOP + plot_h + 14, text_anchor="end", font_size="11",
            fill="#4a5563", transform=f"rotate(-35 {cx:.1f} {TOP + plot_h + 14})"), label))
    # marks
    if chart.kind == "lines":
        for s, line in enumerate(chart.lines):
            color = PALETTE[s % len(PALETTE)]
            runs: list[list[tuple[float, float]]] = [[]]
            for i, value in enumerate(line.values):
                if value is None:
                    runs.append([])
                    continue
                runs[-1].append((LEFT + slot * (i + 0.5), y(value)))
            for run in runs:
                if len(run) > 1:
                    parts.append(Markup('<polyline {}/>').format(_attrs(
                        points=" ".join(f"{px:.1f},{py:.1f}" for px, py in run), fill="none",
                        stroke=color, stroke_width="2")))
            for i, value in enumerate(line.values):
                if value is None:
                    continue
                parts.append(_mark("circle", chart, line, i, value, color,
                                   cx=f"{LEFT + slot * (i + 0.5):.1f}", cy=f"{y(value):.1f}",
                                   r="3.5"))
    else:
        count = len(chart.lines)
        inner = slot * 0.8
        base = [0.0] * n
        for s, line in enumerate(chart.lines):
            color = PALETTE[s % len(PALETTE)]
            for i, value in enumerate(line.values):
                if value is None:
                    continue
                if chart.kind == "stacked":
                    x0, w = LEFT + slot * i + slot * 0.1, inner
                    y0, y1 = y(base[i] + value), y(base[i])
                    base[i] += value
                else:
                    w = inner / count
                    x0 = LEFT + slot * i + slot * 0.1 + w * s
                    y0, y1 = y(value), y(0)
                parts.append(_mark("rect", chart, line, i, value, color, x=f"{x0:.1f}",
                                   y=f"{y0:.1f}", width=f"{max(w - 1, 1):.1f}",
                                   height=f"{max(y1 - y0, 0):.1f}"))
    parts.append(Markup('<line {}/>').format(_attrs(
        x1=LEFT, x2=WIDTH - RIGHT, y1=TOP + plot_h, y2=TOP + plot_h, stroke="#4a5563")))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _mark(tag: str, chart: Chart, line: Line, i: int, value: float, color: str,
          **geometry: str) -> Markup:
    category = chart.categories[i]
    return Markup('<{} class="point" {} {}><title>{}</title></{}>').format(
        Markup(tag), _attrs(**geometry, fill=color),
        _attrs(data_series=escape(line.name), data_category=escape(category),
               data_value=repr(value)),
        f"{line.name}, {category}: {fmt(value, chart.unit)}", Markup(tag))


def legend(chart: Chart) -> Markup:
    """The series names with their colours (a small SVG swatch: no inline style)."""
    items = Markup("").join(
        Markup('<li><svg width="12" height="12" aria-hidden="true" focusable="false">'
               '<rect width="12" height="12" rx="2" fill="{}"/></svg> {}</li>').format(
            PALETTE[i % len(PALETTE)], line.name) for i, line in enumerate(chart.lines))
    return Markup('<ul class="legend">{}</ul>').format(items)
