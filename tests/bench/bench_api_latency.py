"""Decision latency through the HTTP API at a steady 200 registrations/s.

    python tests/bench/bench_api_latency.py [--rate 200] [--seconds 20] [--backend ...]

Runs the real processes: `dealreg dev` (embedded), or `dealreg serve registration|
adjudication|projections` against Kafka + PostgreSQL (distributed). An open-loop client sends
POST /v1/registrations with `Prefer: wait=5` at a fixed rate and measures, per request, the
time until the decided registration came back. Targets: p99 < 100 ms embedded, < 250 ms
distributed.

The registrations come from the seeded company generator (tests/support/companies.py):
realistic names that share words, subsidiaries, typos and legal-form variants, several
domains per company, and a known share of true collisions (`--collisions`, default 0.3).
Next to the latencies it prints the observed collision rate (decisions other than
`no_conflict`) and the number of distinct account keys, beside the intended ones: a bench
whose accounts merge wrongly measures the wrong thing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.common import percentile, record
from tests.support.companies import Workload, generate
from tests.support.processes import free_port, wait_ready

TOKEN = "bench-admin"


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    # Closed in the finally below, after the process it logs for has ended.
    log = open(Path(tempfile.gettempdir()) / f"dealreg-bench-{args[0]}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "dealreg", *args], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


WARM_UP = 50
SEED = 406


def body(workload: Workload, i: int) -> dict[str, object]:
    out = workload.registrations[i].request(title="Deal")
    out["opportunity"]["amount"] = {"value": "50000.00", "currency": "USD"}  # type: ignore[index]
    return out


def accounts_report(workload: Workload, decided: dict[int, tuple[str, str]]) -> dict[str, float]:
    """Observed against intended, over the measured registrations that were decided."""
    measured = [workload.registrations[i] for i in decided]
    companies = {r.company_id for r in measured}
    keys = {key for key, _ in decided.values()}
    collided = sum(rule != "no_conflict" for _, rule in decided.values())
    return {
        "intended_collision_share": sum(r.collision for r in measured) / max(1, len(measured)),
        "observed_collision_rate": collided / max(1, len(decided)),
        "distinct_companies": float(len(companies)),
        "distinct_account_keys": float(len(keys)),
    }


async def load(url: str, rate: float, seconds: float, collisions: float) -> dict[str, float]:
    total = int(rate * seconds)
    workload = generate(SEED, WARM_UP + total, collision_share=collisions)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    decided: dict[int, tuple[str, str]] = {}
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {TOKEN}",
                                          "Prefer": "wait=5"}) as client:
        async def one(i: int) -> None:
            started = time.perf_counter()
            response = await client.post("/v1/registrations", json=body(workload, i))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 201:
                latencies.append((time.perf_counter() - started) * 1000)
                view = response.json()
                if view.get("decision"):
                    decided[i] = (view["account_key"], view["decision"]["rule"])

        for i in range(WARM_UP):  # warm-up, not measured
            await one(i)
        latencies.clear()
        statuses.clear()
        decided.clear()
        t0 = time.perf_counter()
        tasks = []
        for i in range(WARM_UP, WARM_UP + total):
            # Open loop: send on schedule whatever the previous requests are doing.
            delay = t0 + (i - WARM_UP) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    return {
        "requests": float(total), "achieved_rate_per_s": total / elapsed,
        "decided_201": float(statuses.get(201, 0)),
        "not_decided_in_time_202": float(statuses.get(202, 0)),
        "errors": float(sum(v for k, v in statuses.items() if k >= 400)),
        "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99), "max_ms": max(latencies, default=float("nan")),
        **accounts_report(workload, decided),
    }


async def embedded(rate: float, seconds: float, collisions: float) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "DEALREG_ADMIN_TOKEN": TOKEN, "DEALREG_LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory() as tmp, \
            process(["dev", "--port", str(port), "--data-dir", tmp], env):
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, timeout=60)
        return await load(url, rate, seconds, collisions)


async def distributed(rate: float, seconds: float, collisions: float) -> dict[str, float]:
    from tests.support.servers import create_database, start_kafka, start_postgres

    with ExitStack() as stack:
        kafka = stack.enter_context(start_kafka())
        postgres = stack.enter_context(start_postgres())
        database = await create_database(postgres.url, f"bench_{int(time.time())}")
        suffix = str(int(time.time()))
        env = {**os.environ, "DEALREG_ADMIN_TOKEN": TOKEN, "DEALREG_LOG_LEVEL": "WARNING",
               "DEALREG_KAFKA_BOOTSTRAP_SERVERS": kafka.url, "DEALREG_DATABASE_URL": database,
               "DEALREG_TOPIC_PREFIX": f"bench-{suffix}",
               "DEALREG_ADJUDICATOR_GROUP": f"adj-{suffix}",
               "DEALREG_PROJECTIONS_GROUP": f"proj-{suffix}"}
        ports = {name: free_port() for name in ("registration", "adjudication", "projections")}
        for name in ("projections", "adjudication", "registration"):
            stack.enter_context(process(["serve", name, "--port", str(ports[name])], env))
            await wait_ready(f"http://127.0.0.1:{ports[name]}", timeout=60)
        return await load(f"http://127.0.0.1:{ports['registration']}", rate, seconds,
                          collisions)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--collisions", type=float, default=0.3,
                        help="intended share of true collisions")
    parser.add_argument("--backend", choices=["embedded", "distributed", "both"],
                        default="both")
    args, _ = parser.parse_known_args()
    results: dict[str, float] = {"rate_target_per_s": args.rate}
    if args.backend in ("embedded", "both"):
        results.update({f"embedded_{k}": v
                        for k, v in (await embedded(args.rate, args.seconds,
                                                        args.collisions)).items()})
    if args.backend in ("distributed", "both"):
        results.update({f"distributed_{k}": v
                        for k, v in (await distributed(args.rate, args.seconds,
                                                           args.collisions)).items()})
    record("api_latency", results)


if __name__ == "__main__":
    asyncio.run(main())
