"""CPU per ownership look-up in-process: `dealreg dev`'s app called as an ASGI app.

    python tests/bench/profile_lookups.py --data DIR [--count 3000] [--profile out.html]

DIR is a data directory filled by `ab_lookups.py` (a read model of N registrations and
the look-up samples). The app is built as `dealreg dev` builds it (every component, the
embedded backend) and each request of the bench's mix (`bench_projections.lookup_requests`,
seeded: 70 % domain, 10 % CRM id, 10 % exact name, 10 % misspelt name, a third as a
partner) is handed to it as an ASGI call, one after the other, with no socket or HTTP
client in the process: the process time per request is what the app costs (routing,
middleware, dependencies, the look-up, the response), without uvicorn's parsing and
writing. `--profile FILE` writes a cProfile of the measured requests (`pstats`; its
CPU figures are then inflated by the profiler). Prints CPU
per request by kind and the SHA-256 of every response body (status, headers but the
request id, body), so two code trees can be shown to answer byte-identically.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # after PYTHONPATH: `PYTHONPATH=<tree>` picks the code
    sys.path.append(str(ROOT))

import orjson  # noqa: E402

from tests.bench.bench_projections import ADMIN, lookup_requests  # noqa: E402


async def call(app: Any, path: str, headers: tuple[tuple[str, str], ...]
               ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    parts = urlsplit(path)
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": "GET", "scheme": "http", "path": parts.path,
        "raw_path": parts.path.encode(), "query_string": parts.query.encode(),
        "root_path": "", "headers": [(b"host", b"dealreg"),
                                     *((k.lower().encode(), v.encode()) for k, v in headers)],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], list(start.get("headers", [])), body


def kind(path: str) -> str:
    query = urlsplit(path).query
    if query.startswith("domain="):
        return "domain"
    if query.startswith("crm_account_id="):
        return "crm"
    return "name"


async def run(data: Path, count: int, profile: str | None) -> None:
    from dealreg.app import create_app
    from shared.logging import configure_logging
    from shared.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="profile-lookups-"))
    try:
        shutil.copy(data / "readmodel.sqlite3", work / "readmodel.sqlite3")
        _, partner, raw = orjson.loads((data / "bench-samples.json").read_bytes())
        samples = [tuple(s) for s in raw]
        settings = Settings(backend="embedded", data_dir=work, admin_token=ADMIN,
                            rate_limit_per_second=0, log_level="WARNING")
        configure_logging(settings.log_level, "json")  # as `dealreg dev` does
        app = create_app(settings)
        rng = random.Random(5)
        warm = lookup_requests(samples, rng, 300, ADMIN, partner)
        reqs = lookup_requests(samples, rng, count, ADMIN, partner)
        async with app.router.lifespan_context(app):
            for r in warm:
                await call(app, r.path, r.headers)
            profiler = None
            if profile:
                import cProfile
                profiler = cProfile.Profile()
                profiler.enable()
            spent: dict[str, list[float]] = defaultdict(list)
            digest = hashlib.sha256()
            total = time.process_time()
            for r in reqs:
                cpu = time.process_time()
                status, headers, body = await call(app, r.path, r.headers)
                spent[kind(r.path)].append(time.process_time() - cpu)
                digest.update(f"{r.path} {status} ".encode())
                digest.update(repr(sorted(h for h in headers
                                          if h[0] != b"x-request-id")).encode())
                digest.update(body)
            total = time.process_time() - total
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile)
        per = ", ".join(f"{k} {1e3 * sum(v) / len(v):.3f} ms ({len(v)})"
                        for k, v in sorted(spent.items()))
        print(f"CPU per look-up {1e3 * total / count:.3f} ms; {per}; responses "
              f"{digest.hexdigest()[:16]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    asyncio.run(run(args.data, args.count, args.profile))


if __name__ == "__main__":
    main()
