"""The API's failed-authentication limit (`AuthenticateFirst`), per client address: past it
the address gets 429 with `Retry-After` and a problem body, and no key is tried (not even
a correct one) until the bucket has a token again. Real middleware, a counting
authenticator, a hand-driven clock."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from shared.api.auth import AuthenticateFirst, Principal
from shared.api.ratelimit import TokenBuckets

GOOD = "drk.key_good.secret"


class CountingAuthenticator:
    def __init__(self) -> None:
        self.tried: list[str] = []

    async def authenticate(self, token: str) -> Principal | None:
        self.tried.append(token)
        return Principal("partner", "p-1", "key_good") if token == GOOD else None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.scope["state"]["principal"].subject_id)


def _client(middleware: AuthenticateFirst, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=middleware,
                                                           client=(address, 5000)),
                             base_url="http://api")


@pytest.fixture
def setup() -> tuple[AuthenticateFirst, CountingAuthenticator, Clock, TokenBuckets]:
    authenticator, clock = CountingAuthenticator(), Clock()
    failures = TokenBuckets(0.5, 3, max_keys=50)
    app = Starlette(routes=[Route("/v1/thing", _ok)])
    return (AuthenticateFirst(app, authenticator, auth_failures=failures,  # type: ignore[arg-type]
                              clock=clock), authenticator, clock, failures)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_address_over_the_limit_gets_429_and_no_key_is_tried(
        setup: tuple[AuthenticateFirst, CountingAuthenticator, Clock, TokenBuckets]) -> None:
    middleware, authenticator, clock, _ = setup
    async with _client(middleware, "203.0.113.7") as client:
        answers = [await client.get("/v1/thing", headers=_bearer(f"drk.key_{i}.guess"))
                   for i in range(4)]
        assert [a.status_code for a in answers] == [401, 401, 401, 429]
        tried = len(authenticator.tried)
        # Over the limit: a correct key is refused without being looked at.
        refused = await client.get("/v1/thing", headers=_bearer(GOOD))
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "2"  # 1 token at 0.5/s
        body = refused.json()
        assert (body["status"], body["title"]) == (429, "Too many requests")
        assert "no key is tried" in body["detail"]
        assert len(authenticator.tried) == tried and GOOD not in authenticator.tried
        # When Retry-After has passed, the correct key is tried and admitted.
        clock.now += 2
        admitted = await client.get("/v1/thing", headers=_bearer(GOOD))
        assert admitted.status_code == 200 and admitted.text == "p-1"


async def test_the_limit_is_per_client_address(
        setup: tuple[AuthenticateFirst, CountingAuthenticator, Clock, TokenBuckets]) -> None:
    middleware, _, _, _ = setup
    async with _client(middleware, "203.0.113.7") as attacker:
        for i in range(4):
            await attacker.get("/v1/thing", headers=_bearer(f"drk.key_{i}.guess"))
        assert (await attacker.get("/v1/thing", headers=_bearer(GOOD))).status_code == 429
    async with _client(middleware, "198.51.100.2") as neighbour:
        assert (await neighbour.get("/v1/thing", headers=_bearer(GOOD))).status_code == 200


async def test_memory_stays_bounded_under_failures_from_many_addresses(
        setup: tuple[AuthenticateFirst, CountingAuthenticator, Clock, TokenBuckets]) -> None:
    middleware, _, _, failures = setup
    for n in range(200):
        async with _client(middleware, f"10.0.{n // 250}.{n % 250}") as client:
            assert (await client.get("/v1/thing", headers=_bearer("nope"))).status_code == 401
    assert len(failures) <= 50
