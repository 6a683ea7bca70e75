"""Scale-out: two adjudicator processes in one consumer group share the partitions.

    python tests/bench/bench_scaleout.py [--quick] [--events N]

The same backlog (bench_adjudicator's realistic one, 20 % collisions, 12 partitions) is
drained twice on one Kafka broker: by one adjudicator process, then by two processes in one
consumer group (fresh topics each time). Reported: events/s of each and the ratio two / one.
Each adjudicator is its own OS process (`python -m tests.bench.bench_scaleout --member
...`), so the ratio says what a second process buys on this machine's cores (a 2-core
machine also runs the broker and this client, so expect well under 2).
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.adjudication.worker import run_adjudicator  # noqa: E402
from shared.eventlog.kafka import KafkaEventLog  # noqa: E402
from shared.eventlog.topics import Topics  # noqa: E402
from tests.bench.bench_adjudicator import PARTITIONS, backlog, registrations  # noqa: E402
from tests.bench.common import record  # noqa: E402


async def _member(bootstrap: str, prefix: str, group: str) -> None:
    log = KafkaEventLog(bootstrap)
    await log.start()
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            # As `Runtime._supervise` does: a member fenced by a rebalance (ProducerFenced)
            # starts over and recovers its partitions.
            try:
                await run_adjudicator(log, Topics.named(prefix), group_id=group,
                                      source="urn:bench", stopping=lambda: stopping)
            except Exception as exc:
                print(f"member restarting after {exc!r}", flush=True)
                await asyncio.sleep(1.0)
    finally:
        await log.close()


RESTARTS: dict[int, int] = {}
"""Members count -> member restarts seen in that drain (a member dropped from the group and
fenced restarts: each is a rebalance and a recovery)."""


async def _drain(bootstrap: str, members: int, events: int) -> float:
    prefix = f"scale-{members}-{int(time.time() * 1000)}"
    topics = Topics.named(prefix)
    log = KafkaEventLog(bootstrap)
    await log.start()
    try:
        await log.create_topics(topics.specs(PARTITIONS))
        records, _ = backlog(topics, registrations(events, 0.2)[0])
        for i in range(0, events, 5000):
            await log.append(records[i:i + 5000])
        del records
        group = f"{prefix}-adj"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        started = time.perf_counter()
        logs = [tempfile.TemporaryFile() for _ in range(members)]  # noqa: SIM115 (closed by GC)
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.bench.bench_scaleout", "--member", bootstrap, prefix,
            group, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            for out in logs]
        try:
            deadline = time.perf_counter() + 600
            while sum((await log.committed(group, topics.intake)).values()) < events:
                if time.perf_counter() > deadline or any(p.returncode is not None
                                                         for p in procs):
                    errors = []
                    for out in logs:
                        out.seek(0)
                        errors.append(out.read().decode(errors="replace")[-2000:])
                    raise RuntimeError(f"the adjudicators did not drain the backlog: {errors}")
                await asyncio.sleep(0.1)
            seconds = time.perf_counter() - started
        finally:
            for p in procs:
                if p.returncode is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    await asyncio.wait_for(p.wait(), 60)
                except TimeoutError:
                    p.kill()
            restarts = 0
            for out in logs:
                out.seek(0)
                restarts += out.read().decode(errors="replace").count("member restarting")
            RESTARTS[members] = restarts
        return events / seconds
    finally:
        await log.close()


def run(quick: bool = False, events: int | None = None) -> dict[str, Any]:
    from tests.support.servers import start_kafka

    n = events or (20_000 if quick else 60_000)
    with start_kafka() as server:
        one = asyncio.run(_drain(server.url, 1, n))
        two = asyncio.run(_drain(server.url, 2, n))
    results = {"events": float(n), "one_process_events_per_s": one,
               "two_processes_events_per_s": two, "two_over_one": two / one,
               "cpus": float(os.cpu_count() or 0),
               "member_restarts_one": RESTARTS.get(1, 0), "member_restarts_two": RESTARTS.get(2, 0)}
    record("scaleout", results)
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--member":
        asyncio.run(_member(*sys.argv[2:5]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=None)
    args, _ = parser.parse_known_args()
    run(args.quick, args.events)


if __name__ == "__main__":
    from tests.bench.common import exit_on_sigterm

    exit_on_sigterm()  # its servers stop when run.py stops it at its timeout
    main()
