"""Server CPU per ownership look-up through HTTP, two code trees alternating (A/B).

    python tests/bench/ab_lookups.py --data DIR [--registrations 20000] \
        [--tree A=/work/main --tree B=.] [--rounds 3] [--rate 100] [--seconds 15] \
        [--py-spy out-prefix]

The first run fills DIR with a directory of `--registrations` registrations in the real
read-model schema (`bench_projections.bench_lookups`' own fill; kept, so every later run and
both trees look up the same rows with the same request mix). Each round starts `dealreg
dev` on DIR from each tree in turn (`PYTHONPATH=<tree>`), warms it, runs the same open-loop
mix (`bench_projections.lookup_requests`, seeded) and prints the server's CPU per answered
look-up (`/proc` of the server process), p50 / p99 and the statuses. On a shared machine
read the CPU medians, not the latencies. `--py-spy PREFIX`: records each measured window
with py-spy (`PREFIX-<tree>-<round>.txt`, collapsed stacks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from tests.bench import loadgen  # noqa: E402
from tests.bench.bench_projections import (  # noqa: E402
    ADMIN,
    BASE,
    copy_sample,
    fill_directory,
    lookup_requests,
    replicate,
)
from tests.support.processes import free_port, stop, wait_ready  # noqa: E402


async def prepare(directory: Path, count: int) -> tuple[str, list[tuple[object, ...]]]:
    saved = directory / "bench-samples.json"
    if saved.exists():
        _, partner_token, raw = orjson.loads(saved.read_bytes())
        return partner_token, [tuple(s) for s in raw]
    from shared.api.auth import Authenticator
    from shared.readmodel.store import create_engine, migrate
    from shared.settings import Settings

    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a bench set-up)
    settings = Settings(backend="embedded", data_dir=directory, admin_token=ADMIN)
    engine = create_engine(settings.embedded_readmodel_url)
    await migrate(engine)
    rng = random.Random(17)
    copies = max(1, count // BASE)
    samples = await fill_directory(engine, min(count, BASE), rng)
    partner_token = (await Authenticator(ADMIN, engine).mint("partner", "p-1", "bench")).token
    await engine.dispose()
    await asyncio.to_thread(replicate, directory / "readmodel.sqlite3", copies)
    samples = [copy_sample(s, rng.randrange(copies)) for s in samples for _ in range(3)]
    saved.write_bytes(orjson.dumps([min(count, BASE) * copies, partner_token, samples]))
    return partner_token, samples


def one(tree: str, directory: Path, partner: str, samples: list[tuple[object, ...]],
        rate: float, seconds: float, spy: str | None) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "DEALREG_ADMIN_TOKEN": ADMIN, "DEALREG_LOG_LEVEL": "WARNING",
           "DEALREG_RATE_LIMIT_PER_SECOND": "0", "PYTHONPATH": tree}
    log = open(directory / "dev.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "dealreg", "dev", "--port", str(port),
                             "--data-dir", str(directory)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=tree)
    spying = None
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(url, timeout=180))
        rng = random.Random(5)
        warm = lookup_requests(samples, rng, 500, ADMIN, partner)
        loadgen.run(loadgen.Plan(url, warm, rate=100, seconds=5, processes=1, concurrency=16))
        reqs = lookup_requests(samples, rng, int(rate * seconds), ADMIN, partner)
        if spy:
            spying = subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--rate",
                                       "250", "--format", "raw", "--gil", "--output", spy,
                                       "--duration", str(int(seconds) + 1)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        cpu0 = loadgen.process_cpu_seconds(proc.pid)
        result = loadgen.run(loadgen.Plan(url, reqs, rate=rate, seconds=seconds, processes=2,
                                          concurrency=32))
        cpu = loadgen.process_cpu_seconds(proc.pid) - cpu0
        if spying is not None:
            spying.wait(timeout=60)
    finally:
        stop(proc)
        log.close()
    return {"cpu_ms": 1000 * cpu / max(1, result.completed), "p50": result.ms(50),
            "p99": result.ms(99), "ok": result.statuses.get(200, 0),
            "other": sum(v for k, v in result.statuses.items() if k != 200)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--registrations", type=int, default=20_000)
    parser.add_argument("--tree", action="append", default=[],
                        help="NAME=PATH (default A=/work/main B=this checkout)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--py-spy", default=None)
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree) or {"A": "/work/main", "B": str(ROOT)}
    partner, samples = asyncio.run(prepare(args.data, args.registrations))
    seen: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name, tree in (trees.items() if r % 2 == 0 else reversed(trees.items())):
            spy = f"{args.py_spy}-{name}-{r}.txt" if args.py_spy else None
            got = one(tree, args.data, partner, samples, args.rate, args.seconds, spy)
            seen[name].append(got)
            print(f"round {r} {name}: server CPU {got['cpu_ms']:.3f} ms per look-up, "
                  f"p50 {got['p50']:.2f} ms, p99 {got['p99']:.2f} ms, "
                  f"200: {got['ok']:.0f}, other: {got['other']:.0f}, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    for name, runs in seen.items():
        print(f"{name}: median server CPU {statistics.median(r['cpu_ms'] for r in runs):.3f} "
              f"ms per look-up ({', '.join(format(r['cpu_ms'], '.3f') for r in runs)})")


if __name__ == "__main__":
    main()
