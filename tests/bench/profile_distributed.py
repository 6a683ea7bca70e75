"""Where the distributed deployment's CPU and time go, per decided registration.

    python tests/bench/profile_distributed.py [--rates 100 150] [--seconds 30]

Starts the same deployment as `bench_api_latency.py --backend distributed` (Kafka and
PostgreSQL from tests/support/servers.py, three `dealreg serve` processes) and drives the
same open-loop workload at each rate. For each run it prints the CPU (user + system, from
/proc) of every process on the machine that takes part -- the three services, the Kafka
broker, every PostgreSQL backend, and the load generator -- in milliseconds per decided
registration and in cores, so the process that saturates the 2 cores is named; and the
latency per stage (`--trace`: the spans command.append, adjudicator.decide and
projection.apply of every registration, printed by DEALREG_OTEL=console) beside the client's
end-to-end latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench import bench_api_latency as bench  # noqa: E402
from tests.bench import cpu  # noqa: E402
from tests.support.companies import generate  # noqa: E402
from tests.support.processes import free_port, wait_ready  # noqa: E402

_COUNTERS = ("dealreg_kafka_transactions_total", "dealreg_projection_batch_seconds_count",
             "dealreg_projection_events_total", "dealreg_http_requests_shed_total",
             "dealreg_projection_batches_held_total")


def _counters(urls: list[str]) -> dict[str, float]:
    """The counters above, summed over the services' /metrics."""
    import urllib.request

    out = dict.fromkeys(_COUNTERS, 0.0)
    for url in urls:
        request = urllib.request.Request(f"{url}/metrics",
                                         headers={"Authorization": f"Bearer {bench.TOKEN}"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            for line in answer.read().decode().splitlines():
                name = line.split("{", 1)[0].split(" ", 1)[0]
                if name in out:
                    out[name] += float(line.rsplit(" ", 1)[1])
    return out


async def _pg_transactions(database: str) -> tuple[float, float]:
    """PostgreSQL's (transactions, sessions) in the database so far: a session is a new
    server process (fork, authentication, catalog caches), each costing milliseconds."""
    import asyncpg

    conn = await asyncpg.connect(database.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit + xact_rollback, sessions FROM pg_stat_database "
            "WHERE datname = current_database()")
        return float(row[0]), float(row[1])
    finally:
        await conn.close()


async def _registrations(database: str) -> int:
    """Registrations in the read model (every one appended is projected once decided)."""
    import asyncpg

    conn = await asyncpg.connect(database.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM registrations"))
    finally:
        await conn.close()


async def _statements(database: str, reset: bool) -> list[tuple[int, float, int, str]]:
    """With pg_stat_statements loaded in the server (shared_preload_libraries, e.g.
    DEALREG_PG_STAT_STATEMENTS=1 with deploy/postgres.sh): reset, or the top statements by
    execution time and then the most called as (calls, total ms, rows, text); else nothing."""
    import asyncpg

    conn = await asyncpg.connect(database.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            if reset:
                await conn.execute("SELECT pg_stat_statements_reset()")
                return []
            rows = await conn.fetch(
                "SELECT calls, total_exec_time, rows, query FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() "
                "ORDER BY total_exec_time DESC LIMIT 12")
            by_calls = await conn.fetch(
                "SELECT calls, total_exec_time, rows, query FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() "
                "ORDER BY calls DESC LIMIT 16")
            rows = [*rows, *(r for r in by_calls if r not in rows)]
            total = await conn.fetchrow(
                "SELECT sum(calls) AS calls, sum(total_exec_time) AS ms, sum(rows) AS rows FROM "
                "pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                "WHERE d.datname = current_database()")
        except asyncpg.PostgresError:
            return []
        return [(int(total["calls"] or 0), float(total["ms"] or 0), int(total["rows"] or 0),
                 "(all statements)")] + [
            (r["calls"], r["total_exec_time"], r["rows"], " ".join(r["query"].split())[:110])
            for r in rows]
    finally:
        await conn.close()


def _spans(path: Path) -> Iterator[dict[str, Any]]:
    text = path.read_text(errors="replace")
    decoder = json.JSONDecoder()
    for match in re.finditer(r"^\{\n\s+\"name\"", text, re.M):
        span, _ = decoder.raw_decode(text, match.start())
        yield span


def _print_stages(logs: list[Path], since: float) -> None:
    """Per trace (one registration), hop by hop: request start -> append start (account
    resolution, reference reads, copy reports), the append, append end -> decide start (the
    adjudicator's read_committed fetch), the decision, decide end -> the projection batch
    of its decision (the decision's transaction and markers, the projections' fetch), that
    batch, and its end -> the response (NOTIFY, the waiter's read back, the answer); the
    first and last need the registration service's `http.request` span."""
    def at(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    traces: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for path in logs:
        for span in _spans(path):
            start, end = at(span["start_time"]), at(span["end_time"])
            if start < since:
                continue
            trace = traces.setdefault(span["context"]["trace_id"], {})
            trace.setdefault(span["name"], []).append((start, end))
    stages: dict[str, list[float]] = {}
    for spans in traces.values():
        if not all(n in spans for n in ("command.append", "adjudicator.decide",
                                        "projection.apply")):
            continue
        append = min(spans["command.append"])  # a re-report's append comes later
        decide = min(spans["adjudicator.decide"])
        applies = sorted(a for a in spans["projection.apply"] if a[0] >= decide[1])
        if not applies:
            continue
        projected = applies[0]  # the batch that projected the decision
        hops = [("append", append[1] - append[0]),
                ("append end -> decide start", decide[0] - append[1]),
                ("decide", decide[1] - decide[0]),
                ("decide end -> its projection batch start", projected[0] - decide[1]),
                ("that projection batch", projected[1] - projected[0]),
                ("append start -> projected", projected[1] - append[0])]
        if "http.request" in spans:
            request = min(spans["http.request"])
            hops = [("request start -> append start", append[0] - request[0]), *hops,
                    ("projected -> response", request[1] - projected[1]),
                    ("request", request[1] - request[0])]
        for name, seconds in hops:
            stages.setdefault(name, []).append(seconds * 1000)
    for name, values in stages.items():
        values.sort()
        p50, p90, p99 = (values[min(len(values) - 1, int(p / 100 * len(values)))]
                         for p in (50, 90, 99))
        print(f"    {name:45s} p50 {p50:7.1f} ms  p90 {p90:7.1f}  p99 {p99:7.1f}  "
              f"(n {len(values)})", flush=True)


def _py_spy(folder: Path, services: dict[str, int], rate: float,
            seconds: float) -> list[subprocess.Popen[bytes]]:
    folder.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", "50",
                              "--duration", str(int(seconds)), "--nonblocking", "--format",
                              "raw", "-o", str(folder / f"{name}-{rate:.0f}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, pid in services.items()]


def main() -> None:
    from tests.support.servers import create_database, start_kafka, start_postgres

    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", type=float, nargs="*", default=[100, 150])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--trace", action="store_true",
                        help="print spans (DEALREG_OTEL=console) and split latency by stage; "
                        "costs CPU, so its CPU figures are not comparable")
    parser.add_argument("--py-spy", metavar="DIR", type=Path,
                        help="also sample each service with `py-spy record` (raw folded "
                        "stacks, --nonblocking, 50 Hz) into DIR/<service>-<rate>.txt")
    parser.add_argument("--drain", action="store_true",
                        help="count each process's CPU until the services are idle again "
                        "(at most 120 s) and divide it by the registrations the read model "
                        "gained, decided in time or not (a request the client gave up on "
                        "is still decided): on a machine whose other jobs starve the "
                        "deployment, their work is in the numerator either way, and only "
                        "this denominator matches it")
    parser.add_argument("--warm-up-seconds", type=float, default=60,
                        help="at most this long a warm-up load first, until the Kafka "
                        "broker's JIT has settled (bench_api_latency.warm_broker; 0: none)")
    parser.add_argument("--nice", type=int, default=0,
                        help="as ab_distributed.py --nice: this script, the servers and the "
                        "services at this niceness (negative: ahead of the machine's other "
                        "jobs; root only), so a shared machine does not batch the decisions")
    args = parser.parse_args()
    if args.nice:
        from tests.bench.ab_distributed import prioritise

        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by every child
        prioritise(os.getpid(), args.nice)
    total = int(sum(args.rates) * args.seconds) + bench.WARM_UP
    workload = generate(bench.SEED, total, collision_share=0.3)
    with ExitStack() as stack:
        kafka = stack.enter_context(start_kafka())
        postgres = stack.enter_context(start_postgres())
        if args.nice:  # the servers run in sessions of their own
            from tests.bench.ab_distributed import prioritise

            for port in (bench.kafka_port(kafka.url), bench.postgres_port(postgres.url)):
                pid = cpu.listening_pid(port)
                if pid:
                    prioritise(pid, args.nice)
        suffix = str(int(time.time()))
        database = asyncio.run(create_database(postgres.url, f"prof_{suffix}"))
        env = {**os.environ, **bench.BASE_ENV,
               "DEALREG_KAFKA_BOOTSTRAP_SERVERS": kafka.url, "DEALREG_DATABASE_URL": database,
               "DEALREG_TOPIC_PREFIX": f"prof-{suffix}",
               "DEALREG_ADJUDICATOR_GROUP": f"adj-{suffix}",
               "DEALREG_PROJECTIONS_GROUP": f"proj-{suffix}",
               **({"DEALREG_OTEL": "console"} if args.trace else {})}
        ports = {name: free_port() for name in ("registration", "adjudication", "projections")}
        services = {}
        for name in ("projections", "adjudication", "registration"):
            proc = stack.enter_context(bench.process(["serve", name, "--port", str(ports[name])],
                                                     env))
            services[name] = proc.pid
            asyncio.run(wait_ready(f"http://127.0.0.1:{ports[name]}", timeout=90))
        accounting = cpu.Accounting(cpu.server_groups(
            services, bench.kafka_port(kafka.url), bench.postgres_port(postgres.url)))
        pids = list(services.values())
        url = f"http://127.0.0.1:{ports['registration']}"
        bench.settle(pids, 30)
        bench.drive(url, bench.requests(workload, 0, bench.WARM_UP), 50, 2, pids)
        if args.warm_up_seconds > 0:
            warm = generate(bench.SEED + 2, int(100 * (args.warm_up_seconds + 10)),
                            collision_share=0.3)
            bench.warm_broker(url, warm, pids, accounting, 100, args.warm_up_seconds)
        start = bench.WARM_UP
        for rate in args.rates:
            bench.settle(pids, 30)
            count = int(rate * args.seconds)
            urls = [f"http://127.0.0.1:{p}" for p in ports.values()]
            counters0, pg0 = _counters(urls), asyncio.run(_pg_transactions(database))
            rows0 = asyncio.run(_registrations(database))
            asyncio.run(_statements(database, reset=True))
            spies = _py_spy(args.py_spy, services, rate, args.seconds) if args.py_spy else []
            accounting.start()
            t0 = time.time()
            result, _ = bench.drive(url, bench.requests(workload, start, count), rate,
                                    args.seconds, pids)
            if args.drain:
                bench.settle(pids, 120)  # every accepted registration's work, late or not
            else:
                time.sleep(1.0)  # the last decisions' projections
            window = accounting.stop()
            for spy in spies:
                spy.wait(timeout=60)
            counters1, pg1 = _counters(urls), asyncio.run(_pg_transactions(database))
            start += count
            projected = asyncio.run(_registrations(database)) - rows0
            decided = max(1, projected if args.drain else len(result.extracts))
            print(f"  {rate:.0f}/s: {len(result.extracts)} decided in time, {projected} "
                  f"projected, client p50 {result.ms(50):.0f} ms p99 {result.ms(99):.0f} ms"
                  f"{'; per projected registration, until idle:' if args.drain else ''}",
                  flush=True)
            for line in window.lines(decided, sum(result.cpu_seconds)):
                print(line, flush=True)
            per = {k.removeprefix("dealreg_"): round((counters1[k] - counters0[k]) / decided, 2)
                   for k in _COUNTERS}
            per["postgres_transactions"] = round((pg1[0] - pg0[0]) / decided, 2)
            per["postgres_sessions"] = round((pg1[1] - pg0[1]) / decided, 3)
            print(f"    per decided: {per}", flush=True)
            for calls, total, rows, query in asyncio.run(_statements(database, reset=False)):
                print(f"      pg {total / decided:6.3f} ms/decided {calls / decided:5.2f} "
                      f"calls/decided {rows / max(1, calls):7.1f} rows/call  {query}",
                      flush=True)
            if args.trace:
                _print_stages([Path(tempfile.gettempdir()) / f"dealreg-bench-{p}.log"
                               for p in ports.values()], t0)


if __name__ == "__main__":
    from tests.bench.common import exit_on_sigterm

    exit_on_sigterm()  # its servers stop when run.py stops it at its timeout
    main()
