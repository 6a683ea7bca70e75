"""Decision latency through the HTTP API, the intake ceiling, and idle memory.

    python tests/bench/bench_api_latency.py [--rate 200] [--seconds 60] [--quick]
                                            [--backend embedded|distributed|both]

Runs the real processes: `dealreg dev` (embedded), or three `dealreg serve` processes
(registration, adjudication, projections) against Kafka + PostgreSQL (distributed). The
load generator (tests/bench/loadgen.py: its own processes, open loop, HdrHistogram with
coordinated-omission correction) sends `POST /v1/registrations` with `Prefer: wait=5` at a
fixed rate; a request's latency runs from its *intended* send time until the decided
registration came back. Targets: p99 < 100 ms embedded, < 250 ms distributed, at 200/s.

Also measured, in the same run:
- **idle RSS** of `dealreg dev` once ready (target <= 150 MB);
- **intake / ceiling**: closed-loop `POST /v1/registrations` (no wait) against dealreg, and
  the same client against a bare FastAPI endpoint with dealreg's uvicorn settings
  (tests/bench/bare_api.py);
- distributed only: the **highest rate keeping p99 < 250 ms** (rising rate steps from
  50/s, each its own open-loop run, the first after the services settled from the
  saturated 200/s run: a step started on its backlog measured that backlog).

Workload: the seeded Faker companies of tests/support/companies.py with a known share of
true collisions (`--collisions`, default 0.3). Next to the latencies it prints the observed
collision rate (decisions other than `no_conflict`) and the number of distinct account keys
beside the intended ones: a bench whose accounts merge wrongly measures the wrong thing.
A run whose client was saturated is marked invalid (`*_valid: false`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench import cpu, loadgen  # noqa: E402
from tests.bench.common import record  # noqa: E402
from tests.support.companies import Workload, generate  # noqa: E402
from tests.support.processes import free_port, stop, wait_ready  # noqa: E402

TOKEN = "bench-admin"
SEED = 406
WARM_UP = 100
AUTH = (("Authorization", f"Bearer {TOKEN}"),)
BASE_ENV = {"DEALREG_ADMIN_TOKEN": TOKEN, "DEALREG_LOG_LEVEL": "WARNING",
            # The bench's one client is the admin: not rate limited either way.
            "DEALREG_RATE_LIMIT_PER_SECOND": "0"}


@contextmanager
def process(args: list[str], env: dict[str, str],
            python: list[str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    # Closed in the finally below, after the process it logs for has ended.
    log = open(Path(tempfile.gettempdir()) / f"dealreg-bench-{Path(args[-1]).name}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, *(python or ["-m", "dealreg"]), *args], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop(proc)
        log.close()


def requests(workload: Workload, start: int, count: int) -> list[loadgen.Request]:
    out = []
    for registration in workload.registrations[start:start + count]:
        body = registration.request(title="Deal")
        body["opportunity"]["amount"] = {"value": "50000.00", "currency": "USD"}
        out.append(loadgen.Request("POST", "/v1/registrations", orjson.dumps(body)))
    return out


def decided(_k: int, status: int, body: bytes) -> tuple[str, str] | None:
    """(account key, rule) of a decided registration in the answer."""
    if status != 201:
        return None
    view = orjson.loads(body)
    decision = view.get("decision")
    return (view["account_key"], decision["rule"]) if decision else None


def accounts_report(workload: Workload, start: int,
                    extracts: dict[int, tuple[str, str]]) -> dict[str, float]:
    """Observed against intended, over the measured registrations that were decided."""
    measured = [workload.registrations[start + k] for k in extracts]
    keys = {key for key, _ in extracts.values()}
    collided = sum(rule != "no_conflict" for _, rule in extracts.values())
    return {
        "intended_collision_share": round(sum(r.collision for r in measured)
                                          / max(1, len(measured)), 4),
        "observed_collision_rate": round(collided / max(1, len(extracts)), 4),
        "intended_distinct_companies": len({r.company_id for r in measured}),
        "observed_distinct_account_keys": len(keys),
    }


def drive(url: str, reqs: list[loadgen.Request], rate: float, seconds: float,
          pids: list[int], *, wait: bool = True, closed: bool = False,
          concurrency: int = 128, accounting: cpu.Accounting | None = None
          ) -> tuple[loadgen.Result, float]:
    """One load run; returns the result and the server processes' CPU (cores) during it.
    With `accounting` (the distributed deployment's processes: services, Kafka broker,
    PostgreSQL), also prints each one's CPU per decided registration and the cores used
    against the machine's; the figures are in `accounting.last`."""
    headers = (*AUTH, ("Prefer", "wait=5")) if wait else AUTH
    plan = loadgen.Plan(url=url, requests=reqs, rate=rate, seconds=seconds, processes=2,
                        concurrency=concurrency, timeout=10, headers=headers,
                        extract=decided if wait else None)
    cpu0 = sum(loadgen.process_cpu_seconds(p) for p in pids)
    if accounting:
        accounting.start()
    result = loadgen.closed_loop(plan) if closed else loadgen.run(plan)
    server_cores = (sum(loadgen.process_cpu_seconds(p) for p in pids) - cpu0) \
        / max(1e-9, result.wall_seconds)
    window = accounting.stop() if accounting else None
    print(f"  {'closed loop' if closed else f'{rate:.0f}/s'} {url}: "
          f"{result.achieved_rate:,.0f}/s done, p50 {result.ms(50):.1f} ms, "
          f"p99 {result.ms(99):.1f} ms, statuses {result.statuses}, timeouts "
          f"{result.timeouts}; client CPU {result.client_cores:.2f} cores (busiest process "
          f"{result.client_cpu_per_process:.0%}), server {server_cores:.2f} cores"
          f"{'' if result.valid else '  INVALID: ' + str(result.saturated)}", flush=True)
    if accounting and window:
        decided_n = len(result.extracts) if wait else sum(
            n for s, n in result.statuses.items() if s < 300)
        accounting.last = window.report(decided_n, sum(result.cpu_seconds))
        for line in window.lines(decided_n, sum(result.cpu_seconds)):
            print(line, flush=True)
    return result, server_cores


def latency_results(prefix: str, result: loadgen.Result, server_cores: float,
                    workload: Workload, start: int) -> dict[str, Any]:
    out = result.summary(prefix)
    out[f"{prefix}server_cores_used"] = round(server_cores, 3)
    decided_n = len(result.extracts)
    out[f"{prefix}decided_in_time"] = decided_n
    report = accounts_report(workload, start, result.extracts)
    out.update({f"{prefix}{k}": v for k, v in report.items()})
    print(f"  collisions intended {report['intended_collision_share']:.1%} / observed "
          f"{report['observed_collision_rate']:.1%}; distinct companies "
          f"{report['intended_distinct_companies']} / account keys "
          f"{report['observed_distinct_account_keys']}", flush=True)
    out[f"{prefix}cdf"] = downsample(result.cdf())
    return out


def downsample(points: list[tuple[float, float]], n: int = 200) -> list[list[float]]:
    if len(points) <= n:
        return [list(p) for p in points]
    step = len(points) / n
    return [list(points[int(i * step)]) for i in range(n)] + [list(points[-1])]


def settle(pids: list[int], limit: float = 60.0) -> float:
    """Wait until the server processes are idle (under 0.15 cores over a second): the
    backlog of a saturated run must not count against the next one. Returns seconds."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        cpu0 = sum(loadgen.process_cpu_seconds(p) for p in pids)
        time.sleep(1.0)
        if sum(loadgen.process_cpu_seconds(p) for p in pids) - cpu0 < 0.15:
            break
    return time.perf_counter() - started


def warm_broker(url: str, workload: Workload, pids: list[int], accounting: cpu.Accounting,
                rate: float, limit: float, chunk: float = 5.0) -> dict[str, float]:
    """Drive load in `chunk`-second open-loop runs until the Kafka broker's JIT compiler
    threads used under 5 % of a core over one; none starts after `limit` seconds. A broker's JVM
    compiles its hot paths in its first minutes under load: measured on a fresh broker
    (100 records/s with half a transaction each), its CPU per record fell from 6.4 to
    2.2 ms over 75 s, the compiler threads 1.2-2.2 ms of it at first. The measured runs
    are of a running deployment, not of its start-up. Returns what the warm-up took."""
    kafka = next((g for g in accounting.groups if g.name == "kafka"), None)
    spent, start, jit = 0.0, 0, float("nan")
    while spent < limit:
        before = kafka.by_thread() if kafka else {}
        count = int(rate * chunk)
        t0 = time.perf_counter()
        result = loadgen.run(loadgen.Plan(
            url=url, requests=requests(workload, start, count), rate=rate, seconds=chunk,
            processes=2, concurrency=128, timeout=10, headers=(*AUTH, ("Prefer", "wait=5"))))
        wall = time.perf_counter() - t0
        spent += wall
        start += count
        if kafka is None:
            break
        after = kafka.by_thread()
        jit = sum(v - before.get(k, 0.0) for k, v in after.items() if "Compiler" in k) / wall
        if jit < 0.05 and result.completed:
            break
    settle(pids, 30)
    print(f"  warm-up: {spent:.0f} s at {rate:.0f}/s, the broker's JIT compiler at "
          f"{jit:.2f} cores at its end", flush=True)
    return {"warm_up_seconds": round(spent, 1), "warm_up_broker_jit_cores_at_end":
            round(jit, 3)}


def intake_ceiling(url: str, pid: int, reqs: list[loadgen.Request], seconds: float,
                   prefix: str) -> dict[str, Any]:
    """Closed-loop intake (no wait) against dealreg, then the bare endpoint, same client."""
    settle([pid])
    intake, intake_cores = drive(url, reqs, 0, seconds, [pid], wait=False, closed=True,
                                 concurrency=32)
    port = free_port()
    with process([str(port)], {**os.environ}, python=[str(ROOT / "tests/bench/bare_api.py")]) \
            as bare:
        asyncio.run(wait_ready(f"http://127.0.0.1:{port}", timeout=60))
        ceiling, ceiling_cores = drive(f"http://127.0.0.1:{port}", reqs, 0, seconds,
                                       [bare.pid], wait=False, closed=True, concurrency=32)
    ok = {s: n for s, n in intake.statuses.items() if s < 300}
    rate = sum(ok.values()) / max(1e-9, intake.wall_seconds)
    return {
        f"{prefix}intake_per_s": round(rate, 1),
        f"{prefix}intake_statuses": {str(k): v for k, v in intake.statuses.items()},
        f"{prefix}intake_server_cores": round(intake_cores, 3),
        f"{prefix}intake_ceiling_per_s": round(ceiling.achieved_rate, 1),
        f"{prefix}intake_ceiling_server_cores": round(ceiling_cores, 3),
        f"{prefix}intake_over_ceiling": round(rate / max(1e-9, ceiling.achieved_rate), 4),
        f"{prefix}intake_valid": intake.valid and ceiling.valid,
    }


def embedded(args: argparse.Namespace, workload: Workload, extra: Workload) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, **BASE_ENV}
    total = int(args.rate * args.seconds)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, \
            process(["dev", "--port", str(port), "--data-dir", tmp], env) as proc:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(url, timeout=60))
        time.sleep(2)
        out["embedded_idle_rss_mb"] = round(loadgen.process_rss_bytes(proc.pid) / 2**20, 1)
        print(f"  idle RSS of dealreg dev: {out['embedded_idle_rss_mb']} MB", flush=True)
        drive(url, requests(workload, 0, WARM_UP), 50, WARM_UP / 50, [proc.pid])
        result, cores = drive(url, requests(workload, WARM_UP, total), args.rate,
                              args.seconds, [proc.pid])
        out.update(latency_results("embedded_", result, cores, workload, WARM_UP))
        out["embedded_rss_after_load_mb"] = round(loadgen.process_rss_bytes(proc.pid) / 2**20,
                                                  1)
        record("api_latency", out)  # kept if the ceiling runs out of time
        out.update(intake_ceiling(url, proc.pid, requests(extra, 0, 3_000),
                                  args.ceiling_seconds, "embedded_"))
    return out


def distributed(args: argparse.Namespace, workload: Workload, extra: Workload,
                warm: Workload) -> dict[str, Any]:
    from tests.support.servers import create_database, start_kafka, start_postgres

    out: dict[str, Any] = {}
    with ExitStack() as stack:
        kafka = stack.enter_context(start_kafka())
        postgres = stack.enter_context(start_postgres())
        suffix = str(int(time.time()))
        database = asyncio.run(create_database(postgres.url, f"bench_{suffix}"))
        env = {**os.environ, **BASE_ENV,
               "DEALREG_KAFKA_BOOTSTRAP_SERVERS": kafka.url, "DEALREG_DATABASE_URL": database,
               "DEALREG_TOPIC_PREFIX": f"bench-{suffix}",
               "DEALREG_ADJUDICATOR_GROUP": f"adj-{suffix}",
               "DEALREG_PROJECTIONS_GROUP": f"proj-{suffix}"}
        ports = {name: free_port() for name in ("registration", "adjudication", "projections")}
        pids = []
        services = {}
        for name in ("projections", "adjudication", "registration"):
            proc = stack.enter_context(process(["serve", name, "--port", str(ports[name])],
                                               env))
            pids.append(proc.pid)
            services[name] = proc.pid
            asyncio.run(wait_ready(f"http://127.0.0.1:{ports[name]}", timeout=90))
        # Every process a decision costs CPU in, so a miss on a saturated machine shows as
        # such: the services, the Kafka broker and PostgreSQL (the client's beside them).
        accounting = cpu.Accounting(cpu.server_groups(
            services, kafka_port(kafka.url), postgres_port(postgres.url)))
        url = f"http://127.0.0.1:{ports['registration']}"
        total = int(args.rate * args.seconds)
        settle(pids, 30)
        drive(url, requests(workload, 0, WARM_UP), 50, WARM_UP / 50, pids)
        if args.warm_up_seconds > 0:
            out.update({f"distributed_{k}": v for k, v in warm_broker(
                url, warm, pids, accounting, args.warm_up_rate,
                args.warm_up_seconds).items()})
        result, cores = drive(url, requests(workload, WARM_UP, total), args.rate,
                              args.seconds, pids, accounting=accounting)
        out.update(latency_results("distributed_", result, cores, workload, WARM_UP))
        out["distributed_cpu"] = accounting.last
        record("api_latency", out)  # kept if the rate steps run out of time
        # The highest rate keeping p99 < 250 ms: rising steps until one misses, the first
        # once the 200/s run's backlog is worked off (it started on it before).
        settle(pids, 30)
        best = 0.0
        start = 3_000
        steps: dict[str, float] = {}
        step_cpu: dict[str, dict[str, float]] = {}
        for rate in args.steps:
            count = int(rate * args.step_seconds)
            step, _ = drive(url, requests(extra, start, count), rate, args.step_seconds,
                            pids, accounting=accounting)
            start += count
            steps[f"{rate:.0f}"] = step.ms(99)
            step_cpu[f"{rate:.0f}"] = accounting.last
            settle(pids, 20)
            if step.ms(99) >= 250 or step.timeouts or not step.valid:
                break
            best = rate
        out["distributed_step_p99_ms"] = steps
        out["distributed_step_cpu"] = step_cpu
        out["distributed_highest_rate_p99_under_250ms"] = best
    return out


def kafka_port(url: str) -> int:
    """The port of a bootstrap string `host:port[,host:port...]` (its first server)."""
    return int(url.split(",")[0].rsplit(":", 1)[1])


def postgres_port(url: str) -> int:
    """The port of a SQLAlchemy URL `postgresql+asyncpg://user[:pw]@host[:port]/db`."""
    from sqlalchemy.engine import make_url

    return make_url(url).port or 5432


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--ceiling-seconds", type=float, default=5)
    parser.add_argument("--step-seconds", type=float, default=10)
    parser.add_argument("--steps", type=float, nargs="*",
                        default=[50, 100, 150, 200, 300, 400, 600])
    parser.add_argument("--warm-up-seconds", type=float, default=60,
                        help="distributed: at most this long a warm-up load before the "
                        "measured runs, until the Kafka broker's JIT has settled (0: none)")
    parser.add_argument("--warm-up-rate", type=float, default=100)
    parser.add_argument("--collisions", type=float, default=0.3,
                        help="intended share of true collisions")
    parser.add_argument("--backend", choices=["embedded", "distributed", "both"],
                        default="both")
    parser.add_argument("--quick", action="store_true", help="short runs (make bench QUICK=1)")
    args, _ = parser.parse_known_args()
    if args.quick:
        args.seconds, args.ceiling_seconds, args.step_seconds = 10, 3, 5
        args.warm_up_seconds = min(args.warm_up_seconds, 15)
        args.steps = [200, 400]
    total = int(args.rate * args.seconds)
    # The measured run's own workload (its intended collision share holds over it), and
    # another for the intake ceiling and the rate steps.
    workload = generate(SEED, WARM_UP + total, collision_share=args.collisions)
    extra = generate(SEED + 1, int(sum(s * args.step_seconds for s in args.steps)) + 3_000,
                     collision_share=args.collisions)
    results: dict[str, Any] = {"rate_target_per_s": args.rate, "seconds": args.seconds}
    if args.backend in ("embedded", "both"):
        record("api_latency", {**results, **embedded(args, workload, extra)})
    if args.backend in ("distributed", "both"):
        warm = generate(SEED + 2, int(args.warm_up_rate * (args.warm_up_seconds + 10)),
                        collision_share=args.collisions)
        record("api_latency", {**results, **distributed(args, workload, extra, warm)})


if __name__ == "__main__":
    from tests.bench.common import exit_on_sigterm

    exit_on_sigterm()  # its servers stop when run.py stops it at its timeout
    main()
