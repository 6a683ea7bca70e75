"""Webhook URLs are checked at the door (issue 13 item 4): `PUT /v1/owners/{id}` and
`PUT /v1/partners/{id}` answer 422 with a field error naming the reason, and nothing
reaches the reference topic. The same checker runs at send time (see
tests/integration/projections/test_notifications.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.settings import Settings
from tests.integration.registration.harness import Harness, log_size, serve

OBSERVED = [  # every URL issue 13 saw accepted with 200 (or crash the sender later)
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
    ("http://[fd00:ec2::254]/", "cloud metadata address"),
    ("http://metadata.google.internal./", "metadata"),
    ("http://0x7f000001/", "loopback address (127.0.0.1)"),
    ("http://2130706433/", "loopback address (127.0.0.1)"),
    ("http://127.1/", "loopback address (127.0.0.1)"),
    ("http://100.100.100.200/", "cloud metadata address"),
    ("http://10.0.0.1/", "private address"),
    ("HTTP://127.0.0.1/", "loopback address"),
    ("http://127.0.0.1/", "loopback address"),
    ("https://hooks.example.com:99999/x", "invalid port 99999"),
    ("https://hooks.exa\u202emple.com/x", "U+202E"),
    ("https://" + "a" * 64 + ".example.com/x", "longer than 63 characters"),
]


@pytest.fixture(scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    # The strict default of `dealreg serve`: no loopback, no allowed networks.
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("door"),
                        admin_token="test-admin-token", topic_partitions=2)
    assert settings.webhook_allow_loopback is False
    async with serve(settings) as running:
        yield running


def _bodies(url: str) -> list[tuple[str, dict[str, Any]]]:
    return [("/v1/owners/cm-door", {"name": "CM", "webhook_url": url}),
            ("/v1/partners/p-door", {"name": "Door Reseller", "type": "reseller",
                                     "tier": "gold", "webhook_url": url})]


@pytest.mark.parametrize(("url", "reason"), OBSERVED,
                         ids=[f"{i}" for i in range(len(OBSERVED))])
async def test_an_unsafe_webhook_url_is_a_422_naming_the_reason_and_nothing_is_stored(
        harness: Harness, url: str, reason: str) -> None:
    topic = harness.runtime.topics.reference
    before = await log_size(harness, topic)
    for path, body in _bodies(url):
        response = await harness.client.put(path, json=body)
        assert response.status_code == 422, (path, response.text)
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        [error] = problem["errors"]
        assert error["field"] == "webhook_url"
        assert reason in error["message"], error
    assert await log_size(harness, topic) == before
    for path, _ in _bodies(url):
        assert (await harness.client.get(path)).status_code == 404


async def test_a_public_url_is_accepted_in_either_scheme_case(harness: Harness) -> None:
    for url in ("https://hooks.example.com/dealreg", "HTTPS://hooks.example.com/dealreg"):
        for path, body in _bodies(url):
            response = await harness.client.put(path, json=body)
            assert response.status_code in (200, 201), response.text
            assert response.json()["webhook_url"] == url


async def test_loopback_is_accepted_when_the_setting_allows_it(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("dev-like"),
                        admin_token="test-admin-token", topic_partitions=2,
                        webhook_allow_loopback=True)
    async with serve(settings) as running:
        for url in ("http://127.0.0.1:9000/hook", "HTTP://127.0.0.1:9000/hook",
                    "http://localhost:9000/hook", "http://[::1]:9000/hook"):
            for path, body in _bodies(url):
                response = await running.client.put(path, json=body)
                assert response.status_code in (200, 201), (url, response.text)
        # Loopback only: private networks and metadata stay refused.
        for url in ("http://10.0.0.1/", "http://169.254.169.254/"):
            for path, body in _bodies(url):
                assert (await running.client.put(path, json=body)).status_code == 422
