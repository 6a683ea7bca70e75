"""Issue 16's targets, evaluated against one run's numbers, as a Markdown table.

Each target names the result it reads (`bench.key`), how it compares, and, when the run
measured one, the ceiling it is divided by. A target whose number is missing (its bench
failed, timed out, or was not run) is `not measured`, which counts as a miss; a number from
a run whose load generator was saturated is `invalid`, also a miss, and the wall time of a
run in which some benchmark did not finish is `incomplete`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    what: str
    key: str
    """`bench.key` in the run's results."""
    op: str
    """`<`, `<=`, `>=`"""
    goal: float
    unit: str
    ceiling: str | None = None
    """`bench.key` of the ceiling measured in the same run."""
    ratio_goal: float | None = None
    """Also required: measured / ceiling >= this."""
    valid: str | None = None
    """`bench.key` of the run's validity flag (the client was not saturated)."""
    not_valid: str = "invalid"
    """The verdict when that flag is not true."""


TARGETS: tuple[Target, ...] = (
    # A run whose benchmarks did not all finish (a timeout, a failure, a budget spent) was
    # short because it measured less: its wall time passes nothing.
    Target("`make bench` wall time", "run.seconds", "<", 900, "s",
           valid="run.every_benchmark_ok", not_valid="incomplete"),
    Target("`make bench QUICK=1` wall time", "run.quick_seconds", "<", 180, "s",
           valid="run.every_benchmark_ok", not_valid="incomplete"),
    Target("adjudicator drain, embedded", "adjudicator.embedded_drain_events_per_s", ">=",
           10_000, "events/s", ceiling="adjudicator.embedded_drain_ceiling_events_per_s",
           ratio_goal=0.30),
    Target("adjudicator drain, Kafka", "adjudicator.kafka_drain_events_per_s", ">=",
           10_000, "events/s", ceiling="adjudicator.kafka_drain_ceiling_events_per_s",
           ratio_goal=0.30),
    Target("adjudicator recovery, embedded, all partitions",
           "adjudicator.embedded_recovery_s_all_partitions", "<", 5, "s"),
    Target("adjudicator recovery, Kafka, all partitions",
           "adjudicator.kafka_recovery_s_all_partitions", "<", 5, "s"),
    Target("`decide` alone", "decide.events_per_second", ">=", 30_000, "events/s"),
    Target("adjudicator state per active registration",
           "decide.bytes_per_active_registration", "<=", 1024, "B"),
    Target("adjudicator state per active registration, long-lived partition (3-day "
           "protection, most registrations ended; their accounts stay indexed)",
           "decide.long_lived_bytes_per_active_registration", "<=", 1024, "B"),
    Target("`decide` cost on the realistic workload at the largest size measured (full: "
           "500,000 registrations; QUICK: 60,000) / at 10,000; 1 M: `make bench-scale`",
           "decide_scale.scaling_ratio_largest_to_smallest", "<=", 1.5, "x"),
    Target("read-model rebuild, SQLite", "projections.rebuild_sqlite_events_per_second",
           ">=", 25_000, "events/s"),
    Target("read-model rebuild, PostgreSQL",
           "projections.rebuild_postgresql_events_per_second", ">=", 25_000, "events/s"),
    Target("ownership look-up p99 through HTTP, 1 M registrations",
           "projections.ownership_http_p99_ms", "<", 10, "ms",
           valid="projections.ownership_http_valid"),
    Target("decision through the API p99, embedded, 200/s", "api_latency.embedded_p99_ms",
           "<", 100, "ms", valid="api_latency.embedded_valid"),
    Target("decision through the API p99, distributed, 200/s",
           "api_latency.distributed_p99_ms", "<", 250, "ms",
           valid="api_latency.distributed_valid"),
    Target("highest rate with p99 < 250 ms, distributed",
           "api_latency.distributed_highest_rate_p99_under_250ms", ">=", 200, "/s"),
    Target("intake, embedded (closed loop, no wait)", "api_latency.embedded_intake_per_s",
           ">=", 200, "/s", ceiling="api_latency.embedded_intake_ceiling_per_s",
           valid="api_latency.embedded_intake_valid"),
    Target("idle RSS of `dealreg dev`", "api_latency.embedded_idle_rss_mb", "<=", 150, "MB"),
)


def lookup(results: Mapping[str, Mapping[str, Any]], dotted: str) -> Any:
    bench, _, key = dotted.partition(".")
    return results.get(bench, {}).get(key)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def meets(value: float, op: str, goal: float) -> bool:
    return {"<": value < goal, "<=": value <= goal, ">=": value >= goal}[op]


def evaluate(results: Mapping[str, Mapping[str, Any]],
             targets: tuple[Target, ...] = TARGETS) -> list[dict[str, Any]]:
    """One row per target: measured, ceiling, ratio, and `pass`/`fail`/`not measured`/
    `invalid`."""
    rows = []
    for t in targets:
        value = _number(lookup(results, t.key))
        ceiling = _number(lookup(results, t.ceiling)) if t.ceiling else None
        ratio = value / ceiling if value is not None and ceiling else None
        if value is None:
            verdict = "not measured"
        elif t.valid and lookup(results, t.valid) is not True:
            verdict = t.not_valid
        else:
            ok = meets(value, t.op, t.goal)
            if t.ratio_goal is not None:
                ok = ok and ratio is not None and ratio >= t.ratio_goal
            verdict = "pass" if ok else "fail"
        goal = f"{t.op} {t.goal:,g} {t.unit}"
        if t.ratio_goal is not None:
            goal += f" and ≥ {t.ratio_goal:.0%} of ceiling"
        rows.append({"target": t.what, "key": t.key, "measured": value, "unit": t.unit,
                     "ceiling": ceiling, "ratio": ratio, "goal": goal, "result": verdict})
    return rows


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}" if abs(value) >= 10 \
        else f"{value:,.2f}"
    return f"{shown} {unit}".strip()


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | measured | ceiling (same run) | ratio | goal | result |",
             "|---|---:|---:|---:|---|---|"]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.1%}"
        mark = {"pass": "**pass**", "fail": "**FAIL**"}.get(r["result"], r["result"])
        lines.append(f"| {r['target']} | {_fmt(r['measured'], r['unit'])} | "
                     f"{_fmt(r['ceiling'], r['unit'])} | {ratio} | {r['goal']} | {mark} |")
    return "\n".join(lines) + "\n"
