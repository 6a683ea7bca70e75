"""The dashboard's SVG charts: every value drawn is a mark carrying that value, names are
escaped, a missing value is a gap, and the axis ends on a round number."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from services.console import charts
from services.console.charts import Chart, Line
from services.console.program import duration_unit, panel

SVG = "{http://www.w3.org/2000/svg}"


def parse(chart: Chart) -> ET.Element:
    return ET.fromstring(str(charts.svg(chart)).replace(
        "<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


@pytest.mark.parametrize(("value", "ceiling"), [
    (0, 1), (0.3, 0.5), (1, 1), (1.2, 2), (2.2, 2.5), (37, 50), (87596, 100000), (100, 100)])
def test_the_axis_ends_on_a_round_number(value: float, ceiling: float) -> None:
    assert charts.nice_ceiling(value) == pytest.approx(ceiling)


@pytest.mark.parametrize("kind", ["bars", "stacked", "lines"])
def test_each_value_is_one_mark_with_its_series_category_and_value(kind: str) -> None:
    chart = Chart("c", "Title", kind, ("a", "b", "c"),  # type: ignore[arg-type]
                  (Line("one", (1.0, None, 3.5)), Line("two", (2.0, 0.0, None))))
    root = parse(chart)
    marks = [(m.get("data-series"), m.get("data-category"), float(m.get("data-value") or 0))
             for m in root.iter() if m.get("class") == "point"]
    assert marks == [("one", "a", 1.0), ("one", "c", 3.5), ("two", "a", 2.0),
                     ("two", "b", 0.0)]
    assert root.get("data-points") == "4" and root.get("role") == "img"
    assert root.get("aria-labelledby") == "c-title c-desc"


def test_a_missing_value_breaks_the_line() -> None:
    chart = Chart("c", "T", "lines", ("a", "b", "c", "d"),
                  (Line("one", (1.0, 2.0, None, 4.0)),))
    polylines = [e for e in parse(chart).iter(f"{SVG}polyline")]
    assert len(polylines) == 1 and len(polylines[0].get("points", "").split()) == 2


def test_names_are_escaped() -> None:
    chart = Chart("c", "<b>T</b>", "bars", ('<script>alert(1)</script>',),
                  (Line('"><img src=x>', (1.0,)),), summary="<i>s</i>")
    text = str(charts.svg(chart)) + str(charts.legend(chart))
    assert "<script>" not in text and "<img" not in text and "<b>" not in text
    assert re.search(r"&lt;script&gt;", text)


def test_stacked_bars_are_scaled_to_the_tallest_stack() -> None:
    chart = Chart("c", "T", "stacked", ("a",), (Line("x", (30.0,)), Line("y", (15.0,))))
    ticks = [t.text for t in parse(chart).iter(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks[-1] == "50"


def test_durations_get_a_readable_unit() -> None:
    assert duration_unit([0.004, None]) == ("ms", 0.001)
    assert duration_unit([30.0]) == ("s", 1.0)
    assert duration_unit([600.0]) == ("min", 60.0)
    assert duration_unit([3 * 86400.0]) == ("d", 86400.0)


def test_a_pipeline_is_drawn_in_its_largest_currency_and_says_so() -> None:
    rows = [{"partner": "p-1", "currency": "USD", "sourced_count": 1, "sourced_amount": "10.00",
             "influenced_count": 0, "influenced_amount": "0.00"},
            {"partner": "p-2", "currency": "EUR", "sourced_count": 1, "sourced_amount": "90.00",
             "influenced_count": 1, "influenced_amount": "5.50"}]
    found = panel({"name": "pipeline_by_partner", "title": "P", "rows": rows, "summary": {},
                   "columns": list(rows[0])})
    [chart] = found.charts
    assert chart.categories == ("p-2",) and chart.unit == "EUR"
    assert [line.values for line in chart.lines] == [(90.0,), (5.5,)]
    assert "amounts in EUR" in found.caption and "USD" in found.notes[0]
