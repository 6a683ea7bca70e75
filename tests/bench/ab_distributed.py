"""Alternating A/B of the distributed deployment's decision latency and CPU, on one broker.

    python tests/bench/ab_distributed.py --variant linger20 \\
        --variant linger0:DEALREG_KAFKA_PROJECTIONS_LINGER_MS=0 \\
        [--variant base:root=/path/to/other/checkout] [--rates 50 100] [--seconds 10]
        [--rounds 3] [--trace] [--out results.jsonl]

A variant is `name[:root=DIR][:VAR=VALUE...]`: the three `dealreg serve` processes run from
DIR (another checkout: `git archive <commit> | tar -x -C DIR`; default this one) with those
environment variables. One Kafka broker and one PostgreSQL (tests/support/servers.py) serve
every variant; each variant has its own database, topics and consumer groups, kept across
rounds. Each round starts every variant's services afresh in turn (the order alternates
from round to round), primes them (100 registrations at 50/s), then drives the same
open-loop workload slice at each rate (`bench_api_latency.drive`: `Prefer: wait=5`, latency
from the intended send time) with every process's CPU counted (`tests/bench/cpu.py`), and
stops them. The broker is warmed once first (`bench_api_latency.warm_broker`).

The machine is shared: read the medians over rounds and CPU per decision, not one run.
`--trace` (DEALREG_OTEL=console) also splits each request's time hop by hop from the spans
(request start -> append start -> append end -> decide -> the projection batch of the
decision -> response); printing spans costs CPU, so a traced run's CPU figures are not
comparable with an untraced one's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench import bench_api_latency as bench  # noqa: E402
from tests.bench import cpu  # noqa: E402
from tests.bench.profile_distributed import _counters, _spans, _statements  # noqa: E402
from tests.support.companies import generate  # noqa: E402
from tests.support.processes import free_port, stop, wait_ready  # noqa: E402

PRIME = 100
GROUPS = ("registration", "projections", "adjudication", "kafka", "postgres", "client")


@dataclass
class Variant:
    name: str
    root: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)
    database: str = ""
    suffix: str = ""

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, *parts = text.split(":")
        variant = cls(name)
        for part in parts:
            key, _, value = part.partition("=")
            if key == "root":
                variant.root = Path(value).resolve()
            else:
                variant.env[key] = value
        return variant


def prioritise(pid: int, nice: int) -> None:
    """`nice` for the process's scheduler autogroup (its session) as a whole: with
    autogroups on (Linux's default for desktops and many VMs), a process's own niceness
    only orders it within its session, and every session shares the CPU equally."""
    try:
        with open(f"/proc/{pid}/autogroup", "w", encoding="ascii") as group:
            group.write(str(nice))
    except OSError:
        pass


@contextmanager
def serve(name: str, port: int, env: dict[str, str],
          root: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`dealreg serve <name>` run from `root` (`python -m` puts the working directory
    first on the path, so the process imports that checkout), logging to
    <tmp>/dealreg-bench-<port>.log."""
    # Closed in the finally below, after the process it logs for has ended.
    log = open(Path(tempfile.gettempdir()) / f"dealreg-bench-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "dealreg", "serve", name, "--port",
                             str(port)], env=env, cwd=root, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop(proc)
        log.close()


def hops(logs: list[Path], since: float, until: float) -> dict[str, list[float]]:
    """Milliseconds per hop of every traced registration whose request started in
    [since, until)."""
    def at(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    traces: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for path in logs:
        if not path.exists():
            continue
        for span in _spans(path):
            start, end = at(span["start_time"]), at(span["end_time"])
            trace = traces.setdefault(span["context"]["trace_id"], {})
            trace.setdefault(span["name"], []).append((start, end))
    out: dict[str, list[float]] = {}
    for spans in traces.values():
        if not all(n in spans for n in ("http.request", "command.append",
                                        "adjudicator.decide", "projection.apply")):
            continue
        request = min(spans["http.request"])
        if not since <= request[0] < until:
            continue
        append = min(spans["command.append"])
        decide = min(spans["adjudicator.decide"])
        applies = sorted(a for a in spans["projection.apply"] if a[0] >= decide[1])
        if not applies:
            continue
        projected = applies[0]
        for name, seconds in (
                ("request start -> append start", append[0] - request[0]),
                ("append", append[1] - append[0]),
                ("append end -> decide start", decide[0] - append[1]),
                ("decide", decide[1] - decide[0]),
                ("decide end -> projection batch start", projected[0] - decide[1]),
                ("projection batch", projected[1] - projected[0]),
                ("projected -> response", request[1] - projected[1]),
                ("request", request[1] - request[0])):
            out.setdefault(name, []).append(seconds * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def run_variant(variant: Variant, kafka: Any, postgres: Any, workload: Any, start: int,
                rates: list[float], seconds: float, trace: bool, round_n: int,
                out: Any, idle: float = 0.0) -> list[dict[str, Any]]:
    env = {**os.environ, **bench.BASE_ENV,
           "PYTHONPATH": str(variant.root),
           "DEALREG_KAFKA_BOOTSTRAP_SERVERS": kafka.url,
           "DEALREG_DATABASE_URL": variant.database,
           "DEALREG_TOPIC_PREFIX": f"ab-{variant.suffix}",
           "DEALREG_ADJUDICATOR_GROUP": f"adj-{variant.suffix}",
           "DEALREG_PROJECTIONS_GROUP": f"proj-{variant.suffix}",
           **({"DEALREG_OTEL": "console"} if trace else {}),
           **variant.env}
    rows = []
    with ExitStack() as stack:
        ports = {name: free_port() for name in ("registration", "adjudication", "projections")}
        services = {}
        for name in ("projections", "adjudication", "registration"):
            proc = stack.enter_context(serve(name, ports[name], env, variant.root))
            services[name] = proc.pid
            asyncio.run(wait_ready(f"http://127.0.0.1:{ports[name]}", timeout=120))
        accounting = cpu.Accounting(cpu.server_groups(
            services, bench.kafka_port(kafka.url), bench.postgres_port(postgres.url)))
        pids = list(services.values())
        url = f"http://127.0.0.1:{ports['registration']}"
        bench.settle(pids, 30)
        bench.drive(url, bench.requests(workload, start, PRIME), 50, PRIME / 50, pids)
        start += PRIME
        if idle:  # what the deployment costs with nothing to do
            bench.settle(pids, 20)
            accounting.start()
            time.sleep(idle)
            window = accounting.stop()
            figures = window.report(1)
            row0: dict[str, Any] = {"variant": variant.name, "round": round_n, "rate": 0,
                                    **{f"idle_cores_{g}": figures.get(f"{g}_cores")
                                       for g in GROUPS[:-1]},
                                    "other_jobs_cores": figures.get("other_jobs_cores")}
            out.write(json.dumps(row0) + "\n")
            print(f"  [{variant.name} r{round_n} idle] " + ", ".join(
                f"{g} {figures.get(f'{g}_cores', 0):.3f}" for g in GROUPS[:-1]) + " cores",
                flush=True)
        logs = [Path(tempfile.gettempdir()) / f"dealreg-bench-{p}.log" for p in ports.values()]
        for rate in rates:
            bench.settle(pids, 20)
            count = int(rate * seconds)
            urls = [f"http://127.0.0.1:{p}" for p in ports.values()]
            counters0 = _counters(urls)
            asyncio.run(_statements(variant.database, reset=True))
            t0 = time.time()
            result, _ = bench.drive(url, bench.requests(workload, start, count), rate,
                                    seconds, pids, accounting=accounting)
            t1 = time.time()
            time.sleep(1.0)  # the last decisions' projections
            counters1 = _counters(urls)
            statements = asyncio.run(_statements(variant.database, reset=False))
            start += count
            figures = accounting.last
            row: dict[str, Any] = {
                "variant": variant.name, "round": round_n, "rate": rate,
                "achieved": round(result.achieved_rate, 1),
                "decided": len(result.extracts), "timeouts": result.timeouts,
                "p50": round(result.ms(50), 1), "p90": round(result.ms(90), 1),
                "p99": round(result.ms(99), 1),
                "valid": result.valid,
                **{f"per_decided_{k.removeprefix('dealreg_')}": round(
                    (counters1[k] - counters0[k]) / max(1, len(result.extracts)), 3)
                   for k in counters0},
                **{f"cpu_{g}": figures.get(f"{g}_cpu_ms_per_decided") for g in GROUPS},
                "cpu_total": figures.get("total_cpu_ms_per_decided"),
                # pg_stat_statements (DEALREG_PG_STAT_STATEMENTS=1): statements and their
                # execution time per decided, in this variant's database
                **({"pg_calls": round(statements[0][0] / max(1, len(result.extracts)), 2),
                    "pg_ms": round(statements[0][1] / max(1, len(result.extracts)), 3)}
                   if statements else {}),
                "other_jobs_cores": figures.get("other_jobs_cores"),
                "load": round(os.getloadavg()[0], 2),
            }
            if trace:
                time.sleep(2.0)  # the span exporters' batches
                split = hops(logs, t0, t1)
                row["hops"] = {name: [round(pct(v, 50), 1), round(pct(v, 99), 1), len(v)]
                               for name, v in split.items()}
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(f"  [{variant.name} r{round_n} {rate:.0f}/s] p50 {row['p50']} p99 "
                  f"{row['p99']} ms, cpu/decided {row['cpu_total']} ms, other jobs "
                  f"{row['other_jobs_cores']} cores; per decided: " + ", ".join(
                      f"{k.removeprefix('per_decided_')} {v}" for k, v in row.items()
                      if k.startswith("per_decided_")), flush=True)
            for name, (p50, p99, n) in row.get("hops", {}).items():
                print(f"      {name:40s} p50 {p50:7.1f}  p99 {p99:7.1f}  (n {n})", flush=True)
    return rows


def summary(rows: list[dict[str, Any]], variants: list[Variant], rates: list[float]) -> None:
    print("\nmedians over rounds (min-max):", flush=True)
    keys = ["p50", "p99", *(f"cpu_{g}" for g in GROUPS), "cpu_total", "pg_calls",
            "per_decided_projection_batch_seconds_count", "other_jobs_cores"]
    for rate in rates:
        print(f"  {rate:.0f}/s", flush=True)
        for variant in variants:
            mine = [r for r in rows if r["variant"] == variant.name and r["rate"] == rate]
            if not mine:
                continue
            cells = []
            for key in keys:
                values = [r[key] for r in mine if r.get(key) is not None]
                if values:
                    cells.append(f"{key} {statistics.median(values):.2f} "
                                 f"({min(values):.1f}-{max(values):.1f})")
            print(f"    {variant.name:12s} " + ", ".join(cells), flush=True)


def main() -> None:
    from tests.support.servers import create_database, start_kafka, start_postgres

    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", action="append", required=True, type=Variant.parse)
    parser.add_argument("--rates", type=float, nargs="*", default=[50, 100])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--idle-seconds", type=float, default=0,
                        help="also measure each process's CPU with no load for this long")
    parser.add_argument("--warm-up-seconds", type=float, default=60)
    parser.add_argument("--nice", type=int, default=0,
                        help="run this script, the servers, the services and the client at "
                        "this niceness (negative: ahead of the machine's other jobs; root "
                        "only), so on a shared machine the deployment gets the CPU it asks "
                        "for and its latency measures its own waits, not the queue")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "ab.jsonl")
    args = parser.parse_args()
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by every child
        prioritise(os.getpid(), args.nice)
    per_round = PRIME + int(sum(args.rates) * args.seconds)
    workload = generate(bench.SEED, per_round * args.rounds, collision_share=0.3)
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack, args.out.open("a") as out:
        kafka = stack.enter_context(start_kafka())
        postgres = stack.enter_context(start_postgres())
        stamp = str(int(time.time()))
        if args.nice:  # the servers run in sessions of their own
            for port in (bench.kafka_port(kafka.url), bench.postgres_port(postgres.url)):
                pid = cpu.listening_pid(port)
                if pid:
                    prioritise(pid, args.nice)
        for i, variant in enumerate(args.variant):
            variant.suffix = f"{stamp}-{i}"
            variant.database = asyncio.run(create_database(postgres.url, f"ab_{stamp}_{i}"))
        if args.warm_up_seconds > 0:  # the broker's JIT, once, through the first variant
            first = args.variant[0]
            env = {**os.environ, **bench.BASE_ENV, "PYTHONPATH": str(first.root),
                   "DEALREG_KAFKA_BOOTSTRAP_SERVERS": kafka.url,
                   "DEALREG_DATABASE_URL": asyncio.run(create_database(
                       postgres.url, f"ab_{stamp}_warm")),
                   "DEALREG_TOPIC_PREFIX": f"ab-{stamp}-warm",
                   "DEALREG_ADJUDICATOR_GROUP": f"adj-{stamp}-warm",
                   "DEALREG_PROJECTIONS_GROUP": f"proj-{stamp}-warm"}
            with ExitStack() as warm_stack:
                ports = {n: free_port() for n in ("registration", "adjudication", "projections")}
                services = {}
                for name in ("projections", "adjudication", "registration"):
                    proc = warm_stack.enter_context(serve(name, ports[name], env,
                                                          first.root))
                    services[name] = proc.pid
                    asyncio.run(wait_ready(f"http://127.0.0.1:{ports[name]}", timeout=120))
                accounting = cpu.Accounting(cpu.server_groups(
                    services, bench.kafka_port(kafka.url), bench.postgres_port(postgres.url)))
                warm = generate(bench.SEED + 2, int(100 * (args.warm_up_seconds + 10)),
                                collision_share=0.3)
                bench.warm_broker(f"http://127.0.0.1:{ports['registration']}", warm,
                                  list(services.values()), accounting, 100,
                                  args.warm_up_seconds)
        for round_n in range(args.rounds):
            order = args.variant if round_n % 2 == 0 else list(reversed(args.variant))
            for variant in order:
                rows += run_variant(variant, kafka, postgres, workload, round_n * per_round,
                                    args.rates, args.seconds, args.trace, round_n, out,
                                    args.idle_seconds)
        summary(rows, args.variant, args.rates)


if __name__ == "__main__":
    from tests.bench.common import exit_on_sigterm

    exit_on_sigterm()
    main()
