"""CPU per request of the HTTP edge, in-process (no sockets, no load generator).

    python tests/bench/profile_api_edge.py [--count 600] [--profile out.html]

`dealreg dev`'s app (embedded backend, temporary data dir) served through
`httpx.ASGITransport`: `POST /v1/registrations` with `Prefer: wait=5` one at a time, then
`GET /v1/registrations/{id}` of each; prints CPU (process time) per request for both. A
shared machine makes wall time noise; process time of one process is what the edge costs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

from dealreg.app import create_app
from shared.logging import configure_logging
from shared.settings import Settings
from tests.support.companies import generate

TOKEN = "edge-admin"


async def run(count: int, profile: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(backend="embedded", data_dir=Path(data), admin_token=TOKEN,
                            rate_limit_per_second=0, log_level="WARNING")
        configure_logging(settings.log_level, "json")  # as `dealreg dev` does
        app = create_app(settings)
        workload = generate(406, count + 50, collision_share=0.3)
        bodies: list[dict[str, Any]] = [r.request(title="Deal")
                                        for r in workload.registrations]
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://dealreg",
                headers={"Authorization": f"Bearer {TOKEN}", "Prefer": "wait=5"},
                timeout=30) as client:
            for body in bodies[:50]:  # warm up
                assert (await client.post("/v1/registrations", json=body)).status_code < 300
            profiler = None
            if profile:
                from pyinstrument import Profiler
                profiler = Profiler(async_mode="disabled")
                profiler.start()
            ids = []
            cpu = time.process_time()
            for body in bodies[50:50 + count]:
                response = await client.post("/v1/registrations", json=body)
                assert response.status_code == 201, response.text
                ids.append(response.json()["id"])
            post = (time.process_time() - cpu) / count
            cpu = time.process_time()
            for id_ in ids:
                assert (await client.get(f"/v1/registrations/{id_}")).status_code == 200
            get = (time.process_time() - cpu) / count
            edge = await _edge_share(app, ids)
            if profiler is not None and profile:
                profiler.stop()
                Path(profile).write_text(profiler.output_html())  # noqa: ASYNC240
                print(profiler.output_text(unicode=False, show_all=True)[:60000])
    return {"post_cpu_ms": round(post * 1000, 3), "get_cpu_ms": round(get * 1000, 3), **edge}


async def _edge_share(app: Any, ids: list[str]) -> dict[str, float]:
    """CPU of `GET /v1/registrations/{id}` through the whole ASGI app (no HTTP client) and
    of its endpoint function alone: the difference is what the edge (middlewares,
    routing, dependencies, rendering) costs per request."""
    from starlette.requests import Request

    from services.projections.api.registrations import read_registration
    from shared.api.partner_view import Viewer

    headers = [(b"authorization", f"Bearer {TOKEN}".encode()), (b"host", b"dealreg")]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: Any) -> None:
        return None

    def scope(path: str) -> dict[str, Any]:
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                "root_path": "", "query_string": b"", "headers": headers,
                "client": ("127.0.0.1", 1), "server": ("dealreg", 80), "app": app}

    who = Viewer("admin", None)
    for id_ in ids:  # warm the read model's cache for both loops alike
        await read_registration(id_, Request(scope(f"/v1/registrations/{id_}")), who)
    cpu = time.process_time()
    for id_ in ids:
        await app(scope(f"/v1/registrations/{id_}"), receive, send)
    full = (time.process_time() - cpu) / len(ids)
    cpu = time.process_time()
    for id_ in ids:
        await read_registration(id_, Request(scope(f"/v1/registrations/{id_}")), who)
    endpoint = (time.process_time() - cpu) / len(ids)
    return {"get_asgi_cpu_ms": round(full * 1000, 3),
            "get_endpoint_cpu_ms": round(endpoint * 1000, 3),
            "get_edge_cpu_ms": round((full - endpoint) * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    print(asyncio.run(run(args.count, args.profile)))


if __name__ == "__main__":
    main()
