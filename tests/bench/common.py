"""Helpers for the benchmark scripts: timing, percentiles, and writing results."""

from __future__ import annotations

import json
import platform
import signal
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "bench-results"
LATEST = RESULTS / "latest"


def exit_on_sigterm() -> None:
    """Make SIGTERM (run.py's timeout sends it, then SIGKILL 10 s later) raise SystemExit,
    so the script's `with` blocks and atexit handlers run. The Kafka broker and PostgreSQL
    a bench starts (deploy/ scripts) run in sessions of their own: a bench stopped at its
    timeout by the default SIGTERM action left both running, idle, for good."""
    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def record(name: str, results: dict[str, Any]) -> None:
    """Print the numbers and append them, with the machine, to bench-results/NAME.json."""
    RESULTS.mkdir(exist_ok=True)
    entry = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "machine": f"{platform.node()} ({platform.processor() or platform.machine()})",
             **results}
    path = RESULTS / f"{name}.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(entry)
    path.write_text(json.dumps(history, indent=2, default=str))
    # This run's numbers alone, for run.py's table and charts. A bench records after each
    # phase: what it measured survives a later phase's timeout.
    LATEST.mkdir(parents=True, exist_ok=True)
    latest = LATEST / f"{name}.json"
    merged = {**(json.loads(latest.read_text()) if latest.exists() else {}), **entry}
    latest.write_text(json.dumps(merged, indent=2, default=str))
    width = max(len(k) for k in results)
    print(f"== {name}")
    for key, value in results.items():
        if isinstance(value, list) and len(value) > 10:
            continue  # chart data (CDF, series): in the JSON only
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown}")
