"""Whose `X-Forwarded-For` an HTTP process believes: only its configured proxies'
(`DEALREG_FORWARDED_ALLOW_IPS`, the gateway and ingress addresses). The address it settles
on keys the failed-authentication limit, so a client must not choose it, and the proxies
must not hide every client behind one address. Real uvicorn configuration built from the
settings (`server_options`), real proxy-headers middleware, an app that records the
address it was given."""

from __future__ import annotations

from typing import Any

import uvicorn

from dealreg.cli import server_options
from shared.settings import Settings


async def _client_seen(settings: Settings, peer: str, forwarded_for: str | None) -> str:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])

    options = {k: v for k, v in server_options(settings).items() if k not in ("loop", "http")}
    config = uvicorn.Config(app, **options)
    config.load()
    headers = [(b"x-forwarded-for", forwarded_for.encode())] if forwarded_for else []
    scope = {"type": "http", "method": "GET", "path": "/v1/x", "headers": headers,
             "client": (peer, 40000), "scheme": "http", "asgi": {"version": "3.0"}}
    await config.loaded_app(scope, None, None)
    return seen[0]


async def test_a_client_cannot_choose_its_address_by_sending_x_forwarded_for() -> None:
    settings = Settings(forwarded_allow_ips="10.9.0.7")
    # Loopback is not a proxy here: its spoofed header is ignored.
    assert await _client_seen(settings, "127.0.0.1", "203.0.113.9") == "127.0.0.1"
    assert await _client_seen(settings, "198.51.100.4", "203.0.113.9") == "198.51.100.4"


async def test_the_configured_proxy_passes_the_address_it_saw_not_the_one_claimed() -> None:
    settings = Settings(forwarded_allow_ips="10.9.0.0/24")
    # The gateway appends the peer it saw to what the client sent: the right-most
    # address no trusted proxy added is the client's.
    assert await _client_seen(settings, "10.9.0.7", "203.0.113.9, 198.51.100.4"
                              ) == "198.51.100.4"
    assert await _client_seen(settings, "10.9.0.7", "198.51.100.5") == "198.51.100.5"


def test_forwarded_allow_ips_is_read_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("DEALREG_FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    assert server_options(Settings())["forwarded_allow_ips"] == "10.0.0.0/8"
