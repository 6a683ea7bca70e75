"""`POST /v1/registrations` skips FastAPI's dependency solving and body handling for a
request FastAPI would hand the route as it is (`routes._registration_fast`, session 28),
and answers exactly as FastAPI's own handler does: the same answers for valid requests,
and every other request (bad body, other media type, refused role, long key) left to
FastAPI, byte for byte."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import fastapi.routing
import pytest

from services.registration.api import routes
from shared.settings import Settings
from tests.integration.registration.harness import Harness, log_size, registration, serve

# Headers that differ per request whatever the path (the request id) or name the new
# registration (its id, its offset in the log).
PER_REQUEST = {"x-request-id", "location", "x-log-position", "traceparent", "date"}
PER_REGISTRATION = ("id", "submitted_at", "decided_at", "protected_until")


@pytest.fixture(scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("fast"),
                        admin_token="test-admin-token", max_body_bytes=4096)
    async with serve(settings) as running:
        yield running


def _solved(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts FastAPI's dependency solving (what every route but the fast path runs)."""
    calls: list[int] = []
    solve = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return calls


def _answer(response: Any, named: str | None = None) -> tuple[int, dict[str, str], Any]:
    """Status, headers and body; `named`: the request's own domain, replaced in the body
    (each valid registration is of its own account, else the second would collide)."""
    headers = {k: v for k, v in response.headers.items() if k not in PER_REQUEST}
    body: Any = response.content
    if named is not None and response.status_code < 300:
        stem = named.split(".")[0]
        body = json.loads(body.decode().replace(named, "x.com").replace(
            stem.title(), "X").replace(stem, "x"))
        for name in PER_REGISTRATION:
            body[name] = bool(body.get(name))
    return response.status_code, headers, body


async def test_a_valid_registration_skips_fastapis_dependency_solving(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    solved = _solved(monkeypatch)
    response = await harness.client.post(
        "/v1/registrations", json=registration("p-1", domain="fast-one.com"),
        headers={"Prefer": "wait=5"})
    assert response.status_code == 201, response.text
    assert response.json()["decision"]["rule"] == "no_conflict"
    assert solved == []
    # A refused one is FastAPI's: solved once.
    refused = await harness.client.post("/v1/registrations",
                                        json=registration("p-1", motion="bribery"))
    assert refused.status_code == 422
    assert solved == [1]


VALID = [
    ({"Prefer": "wait=5"}, "admin", None),
    ({}, "admin", None),
    ({"Prefer": "wait=5", "Idempotency-Key": "k-{n}"}, "admin", None),
    ({"Prefer": "wait=5"}, "partner", "p-7"),
    ({"Prefer": "wait=5"}, "integration", None),
]


@pytest.mark.parametrize(("headers", "role", "subject"), VALID)
async def test_valid_answers_are_fastapis(harness: Harness, monkeypatch: pytest.MonkeyPatch,
                                          headers: dict[str, str], role: str,
                                          subject: str | None) -> None:
    answers = []
    for n, fast in enumerate((True, False)):
        if not fast:
            monkeypatch.setattr(routes, "_registration_fast", _declined)
        domain = f"valid-{role}-{len(headers)}-{n}.com"
        sent = {k: v.format(n=f"{domain}") for k, v in headers.items()}
        response = await harness.client.post(
            "/v1/registrations",
            json=registration("p-7" if role != "partner" else None, domain=domain),
            headers={**sent, **await harness.as_(role, subject)})
        assert response.status_code in (201, 202), response.text
        answers.append(_answer(response, domain))
    assert answers[0] == answers[1]


async def _declined(_request: Any) -> None:
    return None


def _nested(depth: int) -> bytes:
    return b'{"partner_id": "p-1", "account": ' + b"[" * depth + b"]" * depth + b"}"


INVALID: list[tuple[str, bytes, dict[str, str]]] = [
    ("bad field", json.dumps(registration("p-1", motion="bribery")).encode(), {}),
    ("extra field", json.dumps(registration("p-1", color="red")).encode(), {}),
    ("not json", b'{"partner_id": ', {}),
    ("empty", b"", {}),
    ("null", b"null", {}),
    ("NaN amount", json.dumps(registration("p-1")).encode().replace(
        b'"120000.00"', b"NaN"), {}),
    ("huge integer", json.dumps(registration("p-1")).encode().replace(
        b'"120000.00"', b"1" + b"0" * 40), {}),
    ("deep", _nested(3000), {}),
    ("charset", json.dumps(registration("p-1", motion="bribery")).encode(),
     {"content-type": "application/json; charset=utf-8"}),
    ("+json", json.dumps(registration("p-1", motion="bribery")).encode(),
     {"content-type": "application/merge-patch+json"}),
    ("key too long", json.dumps(registration("p-1", motion="bribery")).encode(),
     {"idempotency-key": "k" * 256}),
    ("empty key", json.dumps(registration("p-1", domain="empty-key.com")).encode(),
     {"idempotency-key": ""}),
    ("no partner", json.dumps(registration(None)).encode(), {}),
]


@pytest.mark.parametrize(("case", "body", "headers"), INVALID, ids=[c for c, _, _ in INVALID])
async def test_refused_answers_are_fastapis_byte_for_byte(
        harness: Harness, monkeypatch: pytest.MonkeyPatch, case: str, body: bytes,
        headers: dict[str, str]) -> None:
    before = await log_size(harness, harness.runtime.topics.intake)
    sent = {"content-type": "application/json", **headers}
    fast = await harness.client.post("/v1/registrations", content=body, headers=sent)
    monkeypatch.setattr(routes, "_registration_fast", _declined)
    full = await harness.client.post("/v1/registrations", content=body, headers=sent)
    assert fast.status_code >= 400, case
    assert _answer(fast) == _answer(full)
    assert await log_size(harness, harness.runtime.topics.intake) == before


async def test_a_role_that_may_not_register_is_fastapis_403(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    rep = await harness.as_("rep", "rep-1")
    solved = _solved(monkeypatch)
    response = await harness.client.post(
        "/v1/registrations", json=registration("p-1", domain="rep.com"), headers=rep)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert solved == [1]
