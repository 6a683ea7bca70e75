"""CPU per request of the HTTP edge alone for `POST /v1/registrations`, in-process.

    python tests/bench/profile_command_edge.py [--root DIR] [--count 3000]

The real app (`dealreg dev`'s, embedded backend, temporary data dir) driven straight through
ASGI (no sockets, no client), with `Commands.submit_registration` replaced by a stub that
answers a fixed decided registration: what is left is the edge -- the middlewares,
routing, FastAPI's body parsing, validation and dependency solving, the idempotency
wrapper and the rendering. Prints CPU (process time) per request of a second pass (the
first warms up). `--root`: another checkout (`git archive <commit> | tar -x -C DIR`), for
alternating A/B runs; the machine is shared, so compare medians of several pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "edge-admin"
ROOT = Path(__file__).resolve().parents[2]


async def run(count: int) -> float:
    from dealreg.app import create_app
    from services.registration.api.routes import _REGISTRATION_EXAMPLE
    from services.registration.handlers import Commands, Outcome
    from shared.api.resources import RegistrationView
    from shared.logging import configure_logging
    from shared.settings import Settings
    from tests.support.companies import generate

    # The route's own OpenAPI example: one place for what a registration answer holds.
    view = RegistrationView.model_validate(_REGISTRATION_EXAMPLE)

    async def stub(self: Any, principal: Any, body: Any, wait: float = 0.0,
                   via: str = "api") -> Any:
        return Outcome(201, view, {"Location": f"/v1/registrations/{view.id}",
                                   "X-Log-Position": "dealreg.intake/1/2",
                                   "Preference-Applied": "wait=5"})

    Commands.submit_registration = stub  # type: ignore[method-assign]
    bodies = [json.dumps({**r.request(title="Deal"), "partner_id": "p-1"}).encode()
              for r in generate(406, 200, collision_share=0.3).registrations]
    headers = [(b"authorization", f"Bearer {TOKEN}".encode()), (b"host", b"dealreg"),
               (b"content-type", b"application/json"), (b"prefer", b"wait=5")]
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(backend="embedded", data_dir=Path(data), admin_token=TOKEN,
                            rate_limit_per_second=0, log_level="WARNING")
        configure_logging(settings.log_level, "json")
        app = create_app(settings)
        statuses: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        async with app.router.lifespan_context(app):
            per = 0.0
            for _ in range(2):  # the first pass warms up
                cpu = time.process_time()
                for i in range(count):
                    body = bodies[i % len(bodies)]
                    messages = [{"type": "http.request", "body": body, "more_body": False}]

                    async def receive(messages: list[dict[str, Any]] = messages
                                      ) -> dict[str, Any]:
                        if messages:
                            return messages.pop()
                        await asyncio.sleep(3600)  # the client never disconnects
                        return {"type": "http.disconnect"}

                    await app({"type": "http", "asgi": {"version": "3.0"},
                               "http_version": "1.1", "method": "POST", "scheme": "http",
                               "path": "/v1/registrations",
                               "raw_path": b"/v1/registrations", "root_path": "",
                               "query_string": b"",
                               "headers": [*headers,
                                           (b"content-length", str(len(body)).encode())],
                               "client": ("127.0.0.1", 1), "server": ("dealreg", 80),
                               "app": app}, receive, send)
                per = (time.process_time() - cpu) / count
        assert set(statuses) == {201}, set(statuses)
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    per = asyncio.run(run(args.count))
    print(f"edge CPU per POST /v1/registrations: {per * 1e6:.1f} us ({args.root})")


if __name__ == "__main__":
    main()
