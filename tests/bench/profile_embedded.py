"""CPU per decision of `dealreg dev`'s whole pipeline, in-process, by thread.

    python tests/bench/profile_embedded.py [--root DIR] [--count 300] [--in-flight 1]
                                           [--profile out.prof]

The real app (embedded backend, temporary data dir) driven straight through ASGI (no
sockets, no client process): `POST /v1/registrations` with `Prefer: wait=5`, the bench's
workload (tests/support/companies.py, 30 % collisions), `--in-flight` requests at a time
(1: the unbatched decision, every stage a batch of its own). Prints the process's CPU
time per decision, each thread's share (the event loop; the read-model writer that folds
the projection batches; the embedded log's writer; aiosqlite's connection threads), and
the projection batches per decision. `--root`: another checkout (`git archive <commit> |
tar -x -C DIR`) for alternating A/B runs on a shared machine: compare medians of several
pairs, and the batch counts, which do not depend on the machine's load. `--profile`:
cProfile of the event loop's thread (thread CPU time; coroutines and greenlets blur its
cumulative column, read `tottime`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TOKEN = "profile-admin"
ROOT = Path(__file__).resolve().parents[2]


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name (pools merged)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        name = names.get(int(tid), "?")
        if "_connection_worker_thread" in name:
            name = "aiosqlite"
        elif "_" in name and name.rsplit("_", 1)[1].isdigit():
            name = name.rsplit("_", 1)[0]
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


async def run(count: int, in_flight: int, warm: int, profile: str | None) -> dict[str, Any]:
    from dealreg.app import create_app
    from shared.eventlog import Record
    from shared.logging import configure_logging
    from shared.settings import Settings
    from tests.support.companies import generate

    bodies = []
    for r in generate(406, warm + count, collision_share=0.3).registrations:
        body = r.request(title="Deal")
        body["opportunity"]["amount"] = {"value": "50000.00", "currency": "USD"}
        bodies.append(json.dumps(body).encode())
    headers = [(b"authorization", f"Bearer {TOKEN}".encode()), (b"host", b"dealreg"),
               (b"content-type", b"application/json"), (b"prefer", b"wait=5")]
    statuses: Counter[int] = Counter()
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(backend="embedded", data_dir=Path(data), admin_token=TOKEN,
                            rate_limit_per_second=0, log_level="WARNING")
        configure_logging(settings.log_level, "json")
        app = create_app(settings)
        worker = app.state.runtime.projection_worker
        batches = [0]
        apply = worker.apply

        async def counted(records: Sequence[Record]) -> object:
            batches[0] += 1
            return await apply(records)

        worker.apply = counted

        async def one(body: bytes) -> None:
            messages = [{"type": "http.request", "body": body, "more_body": False}]

            async def receive() -> dict[str, Any]:
                if messages:
                    return messages.pop()
                await asyncio.sleep(3600)  # the client never disconnects
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses[message["status"]] += 1

            await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                       "method": "POST", "scheme": "http", "path": "/v1/registrations",
                       "raw_path": b"/v1/registrations", "root_path": "",
                       "query_string": b"",
                       "headers": [*headers, (b"content-length", str(len(body)).encode())],
                       "client": ("127.0.0.1", 1), "server": ("dealreg", 80), "app": app},
                      receive, send)

        async def drive(chunk: list[bytes]) -> None:
            queue = iter(chunk)

            async def sender() -> None:
                for body in queue:
                    await one(body)

            await asyncio.gather(*(sender() for _ in range(in_flight)))

        async with app.router.lifespan_context(app):
            await drive(bodies[:warm])
            await asyncio.sleep(1.0)
            profiler = None
            if profile:
                import cProfile
                profiler = cProfile.Profile(time.thread_time)
                profiler.enable()
            statuses.clear()
            batches[0] = 0
            threads0, cpu0, wall0 = thread_cpu(), time.process_time(), time.perf_counter()
            await drive(bodies[warm:])
            await asyncio.sleep(0.3)  # the last re-reports and deliveries
            cpu1, threads1, wall1 = time.process_time(), thread_cpu(), time.perf_counter()
            if profiler is not None and profile:
                profiler.disable()
                profiler.dump_stats(profile)
    return {
        "cpu_ms_per_decision": round((cpu1 - cpu0) * 1000 / count, 3),
        "wall_ms_per_decision": round((wall1 - wall0) * 1000 / count, 2),
        "projection_batches_per_decision": round(batches[0] / count, 3),
        "threads_ms_per_decision": {
            k: round((v - threads0.get(k, 0.0)) * 1000 / count, 3)
            for k, v in sorted(threads1.items()) if v - threads0.get(k, 0.0) > 0},
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--warm", type=int, default=100)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # tests.support from this checkout
    sys.path.insert(0, str(args.root.resolve()))  # the code measured: --root's
    result = asyncio.run(run(args.count, args.in_flight, args.warm, args.profile))
    print(json.dumps({"root": str(args.root), "in_flight": args.in_flight, **result}))


if __name__ == "__main__":
    main()
