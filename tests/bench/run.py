"""`make bench` (and `make bench QUICK=1`): every benchmark, each under a hard timeout.

    python tests/bench/run.py [--quick] [--only NAME ...]

Each benchmark runs as its own process group; one that outlives its timeout (or the run's
overall budget) is killed, reported as `timeout`, and the run goes on. At the end, under
bench-results/:

- `results.json`: every number of this run, the targets with pass/fail, the machine and its
  load average before and after (the machine may be shared: read ratios to the ceilings
  measured in the same run rather than absolute figures);
- `targets.md`: the Markdown table of issue 16's targets (the README's performance table);
- `latency-cdf.png` (decision latency through the API, corrected for coordinated omission)
  and `drain.png` (decisions committed over time, per backend).

Exit status 1 when a benchmark failed, timed out or was invalid (saturated client).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_compiled import stale_modules  # noqa: E402
from tests.bench.common import LATEST, RESULTS  # noqa: E402
from tests.bench.targets import evaluate, markdown  # noqa: E402


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    timeout: float
    quick_timeout: float
    output: str | None = None
    """A results file the script writes itself (else bench-results/latest/NAME.json)."""


BENCHES: tuple[Bench, ...] = (
    Bench("decide", "bench_decide.py", ("--events", "60000", "--registrations", "20000",
                                        "--long-lived", "20000"),
          ("--events", "5000", "--registrations", "2000", "--long-lived", "4000"), 150, 40,
          output="decide.json"),
    # decide's CPU per registration at 10,000 and at the largest count that fits the run's
    # budget (500,000), on the realistic (Faker) workload keyed the way the edge keys it.
    # A fresh clone builds and keys the workload (~1.5 min of CPU at 500,000) and caches it
    # in bench-results/cache/, a later run loads it: the row is then mostly `decide`
    # filling the state. `make bench-scale` measures 1 M (the size) alone: filling
    # a million alone takes ~5 minutes of CPU (decide grows with the state).
    Bench("decide_scale", "bench_decide.py", ("--scale", "10000,500000"),
          ("--scale", "10000,60000"), 600, 120, output="decide-scaling.json"),
    Bench("accounts", "bench_accounts.py", ("--accounts", "200000", "--queries", "10000"),
          ("--accounts", "20000", "--queries", "1000"), 80, 15, output="accounts.json"),
    Bench("adjudicator", "bench_adjudicator.py", ("--events", "40000"),
          ("--quick", "--backend", "embedded"), 200, 35),
    Bench("projections", "bench_projections.py", ("--postgres", "--rebuild-events", "50000"),
          ("--quick",), 200, 35),
    # The distributed half warms the deployment up (at most 60 s) until the Kafka broker's
    # JIT compiler has settled, then measures (bench_api_latency.warm_broker).
    Bench("api_latency", "bench_api_latency.py", (), ("--quick", "--backend", "embedded"),
          400, 55),
    # Recovery depends on the state and the tail, not on the history's length: `make bench`
    # uses 100,000 events; `python tests/bench/bench_recovery.py` alone measures 1,000,000.
    Bench("recovery", "bench_recovery.py", ("--events", "100000", "--backend", "both"),
          ("--events", "25000", "--backend", "embedded"), 240, 40),
)
COMPILED_BENCH = Bench("compiled", "bench_compiled.py", ("--events", "40000"),
                       ("--events", "8000", "--rounds", "1"), 240, 60)
"""`--compiled` only: the compiled build decides as the pure one does, and its speed-up."""
BUILD_TIMEOUT = 900.0
"""`make compiled` (outside the run's budget): ~70 s of CPU, minutes on a loaded machine."""
BUDGET, QUICK_BUDGET = 850.0, 160.0
"""The whole run's wall-time budget: a benchmark gets at most what is left of it."""


def run_one(command: list[str], timeout: float) -> tuple[str, float]:
    """('ok' | 'failed (exit N)' | 'timeout', seconds). A timeout kills the process group."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
    try:
        code = proc.wait(timeout=timeout)
        status = "ok" if code == 0 else f"failed (exit {code})"
    except subprocess.TimeoutExpired:
        status = "timeout"
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
    return status, time.perf_counter() - started


def build_compiled() -> str:
    """`make compiled`: the extension modules next to their .py. 'ok' or why not."""
    env = {**os.environ, "DEALREG_COMPILED": "1"}
    try:
        done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                              cwd=ROOT, env=env, timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return "timeout"
    if done.returncode != 0:
        return f"failed (exit {done.returncode})"
    for ext in (*(ROOT / "services").rglob("*.so"), *(ROOT / "shared").rglob("*.so")):
        ext.touch()  # one whose C did not change is not relinked: all are of this build
    return "ok"


def build_in_use() -> str:
    """'compiled' when `decide` is imported from an extension module (`make compiled`
    left one in place, whether or not this run asked for it), else 'pure'."""
    code = ("import sys, services.adjudication.domain; "
            "print(sys.modules['services.adjudication.domain.decide'].__file__)")
    probe = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, check=True)
    return "pure" if probe.stdout.strip().endswith(".py") else "compiled"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(v, dict) and k not in ("statuses",) and not k.endswith("_statuses") \
                    and not k.endswith("_step_p99_ms"):
                out.update(flatten(v, f"{prefix}{k}_" if k not in ("throughput", "memory")
                                   else prefix))
            else:
                out[f"{prefix}{k}"] = v
        return out
    return {prefix.rstrip("_"): value}


def load(bench: Bench, since: float) -> dict[str, Any] | None:
    path = RESULTS / bench.output if bench.output else LATEST / f"{bench.name}.json"
    if not path.exists() or path.stat().st_mtime < since:
        return None
    data = json.loads(path.read_text())
    if isinstance(data, list):
        data = data[-1]
    return flatten(data)


def charts(results: dict[str, dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    api = results.get("api_latency", {})
    curves = [(b, api.get(f"{b}_cdf")) for b in ("embedded", "distributed")]
    if any(c for _, c in curves):
        fig, ax = plt.subplots(figsize=(7, 4))
        for backend, cdf in curves:
            if cdf:
                ax.plot([p[0] for p in cdf], [p[1] * 100 for p in cdf],
                        label=f"{backend} ({api.get(f'{backend}_target_rate_per_s', 0):.0f}/s)")
        ax.set_xscale("log")
        ax.set_xlabel("decision latency through the API, ms (from intended send time)")
        ax.set_ylabel("% of requests")
        for limit in (100, 250):
            ax.axvline(limit, color="grey", linestyle=":", linewidth=1)
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(RESULTS / "latency-cdf.png", dpi=110)
        plt.close(fig)
        made.append("latency-cdf.png")
    adj = results.get("adjudicator", {})
    series = [(b, adj.get(f"{b}_drain_series")) for b in ("embedded", "kafka")]
    if any(s for _, s in series):
        fig, ax = plt.subplots(figsize=(7, 4))
        for backend, points in series:
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], label=(
                    f"{backend}: {adj.get(f'{backend}_drain_events_per_s', 0):,.0f} events/s, "
                    f"{adj.get(f'{backend}_drain_over_ceiling', 0):.0%} of ceiling"))
        ax.set_xlabel("seconds since the adjudicator started")
        ax.set_ylabel("intake events decided and committed")
        ax.legend()
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(RESULTS / "drain.png", dpi=110)
        plt.close(fig)
        made.append("drain.png")
    return made


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("QUICK", "") not in ("", "0"))
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--compiled", action="store_true",
                        default=os.environ.get("DEALREG_COMPILED", "") not in ("", "0"),
                        help="build the compiled (mypyc) modules first and measure them")
    args = parser.parse_args()
    if args.compiled:
        print("### building the compiled modules (make compiled)", flush=True)
        built = build_compiled()
        if built != "ok":
            print(f"### the compiled build {built}", flush=True)
            return 1
    build = build_in_use()
    if build == "compiled" and stale_modules():
        print(f"### the compiled build is older than {', '.join(stale_modules())}: "
              "`make compiled` (or --compiled) rebuilds it, `make clean-compiled` drops it",
              flush=True)
        return 1
    benches = (*BENCHES, COMPILED_BENCH) if build == "compiled" else BENCHES
    print(f"### build: {build}", flush=True)
    budget = QUICK_BUDGET if args.quick else BUDGET
    started_wall = time.time()
    started = time.perf_counter()
    shutil.rmtree(LATEST, ignore_errors=True)
    load_before = os.getloadavg()
    statuses: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    for bench in benches:
        if args.only and bench.name not in args.only:
            continue
        left = budget - (time.perf_counter() - started)
        timeout = min(bench.quick_timeout if args.quick else bench.timeout, left)
        if timeout < 5:
            statuses[bench.name] = {"status": "skipped (run budget spent)", "seconds": 0}
            print(f"### {bench.name}: skipped, the run's {budget:.0f} s budget is spent")
            continue
        command = [sys.executable, str(HERE / bench.script),
                   *(bench.quick_args if args.quick else bench.args)]
        print(f"\n### {bench.name} (timeout {timeout:.0f} s): {' '.join(command[1:])}",
              flush=True)
        since = time.time()
        status, seconds = run_one(command, timeout)
        data = load(bench, since)  # a timed-out bench keeps the phases it recorded
        if status == "ok" and data is None:
            status = "failed (no results written)"
        invalid = [k for k, v in (data or {}).items() if k.endswith("valid") and v is False]
        if invalid:
            status = f"invalid (client saturated: {', '.join(invalid)})"
        statuses[bench.name] = {"status": status, "seconds": round(seconds, 1)}
        if data is not None:
            results[bench.name] = data
        print(f"### {bench.name}: {status} in {seconds:.1f} s", flush=True)
    total = time.perf_counter() - started
    bad = [n for n, s in statuses.items() if s["status"] != "ok"]
    results["run"] = {("quick_seconds" if args.quick else "seconds"): round(total, 1),
                      "every_benchmark_ok": not bad}
    rows = evaluate(results)
    if build == "compiled":  # every figure says which build measured it
        for row in rows:
            row["target"] = f"{row['target']} (compiled)"
            row["build"] = build
    if args.only:  # a partial run says nothing about the targets of benches it skipped
        rows = [r for r in rows if r["key"].split(".")[0] in (*args.only, "run")]
    RESULTS.mkdir(exist_ok=True)
    table = markdown(rows)
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_wall)),
            "quick": args.quick, "build": build, "seconds": round(total, 1),
            "machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, "
                       f"Python {platform.python_version()}",
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    built = ", compiled build: mypyc, `make compiled`" if build == "compiled" else ""
    header = (f"Run of {meta['started']} ({'QUICK' if args.quick else 'full'}{built}, "
              f"{total:.0f} s) on {meta['machine']}; load average {meta['load_average_before']}"
              f" before, {meta['load_average_after']} after.\n\n")
    (RESULTS / "targets.md").write_text(header + table)
    (RESULTS / "results.json").write_text(json.dumps(
        {"meta": meta, "benches": statuses, "targets": rows, "results": results},
        indent=2, default=str))
    made = charts(results)
    print("\n" + header + table)
    for name, s in statuses.items():
        print(f"  {name:<12} {s['status']} ({s['seconds']} s)")
    print(f"written: bench-results/results.json, targets.md{''.join(', ' + m for m in made)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
