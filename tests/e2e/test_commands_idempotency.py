"""`Idempotency-Key`: one command per key, the first answer replayed, across processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from shared.eventlog import TopicPartition
from shared.events import RegistrationSubmitted
from shared.events.codec import decode
from shared.settings import Settings
from tests.integration.registration.harness import Harness, registration, serve
from tests.support.servers import ServerHandle, create_database


async def submitted_ids(harness: Harness) -> list[str]:
    log = harness.runtime.eventlog
    ids: list[str] = []
    for tp, end in (await log.end_positions(harness.runtime.topics.intake)).items():
        async for batch in log.read(TopicPartition(tp.topic, tp.partition), 0, end):
            ids.extend(e.registration_id for e in (decode(r.value)[1] for r in batch)
                       if isinstance(e, RegistrationSubmitted))
    return ids


@pytest.fixture(scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("idem"),
                        admin_token="test-admin-token")
    async with serve(settings, frozenset({"registration"})) as running:
        yield running


async def test_a_repeat_returns_the_first_response(harness: Harness) -> None:
    key = {"Idempotency-Key": "k-repeat"}
    first = await harness.client.post("/v1/registrations", json=registration("p-1", "a.com"),
                                      headers=key)
    # The same request, serialised differently, is still the same request.
    body = registration("p-1", "a.com")
    again = await harness.client.post("/v1/registrations", headers={
        **key, "content-type": "application/json"},
        content=str(dict(reversed(list(body.items())))).replace("'", '"').replace(
            "None", "null").encode())
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert (await submitted_ids(harness)).count(first.json()["id"]) == 1


async def test_the_same_key_with_another_body_is_422(harness: Harness) -> None:
    key = {"Idempotency-Key": "k-mismatch"}
    assert (await harness.client.post("/v1/registrations", json=registration("p-1", "b.com"),
                                      headers=key)).status_code == 202
    other = await harness.client.post("/v1/registrations", json=registration("p-1", "c.com"),
                                      headers=key)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_keys_belong_to_their_caller(harness: Harness) -> None:
    key = {"Idempotency-Key": "k-shared"}
    mine = await harness.client.post("/v1/registrations", json=registration("p-1", "d.com"),
                                     headers=key)
    theirs = await harness.client.post(
        "/v1/registrations", json=registration("p-2", "d.com"),
        headers={**key, **(await harness.as_("partner", "p-2"))})
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]


async def test_a_failed_command_does_not_bind_the_key(harness: Harness) -> None:
    key = {"Idempotency-Key": "k-failed"}
    bad = await harness.client.post("/v1/registrations",
                                    json=registration("p-1", "e.com", motion="x"), headers=key)
    assert bad.status_code == 422
    good = await harness.client.post("/v1/registrations", json=registration("p-1", "e.com"),
                                     headers=key)
    assert good.status_code == 202


async def test_concurrent_twins_append_once(harness: Harness) -> None:
    body = registration("p-1", "twins.com")
    answers = await asyncio.gather(*[
        harness.client.post("/v1/registrations", json=body,
                            headers={"Idempotency-Key": "k-twins"}) for _ in range(8)])
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {202, 409}
    ids = {a.json()["id"] for a in answers if a.status_code == 202}
    assert len(ids) == 1
    assert (await submitted_ids(harness)).count(ids.pop()) == 1


async def test_other_creating_posts_are_idempotent_too(harness: Harness) -> None:
    key = {"Idempotency-Key": "k-api-key"}
    first = await harness.client.post("/v1/api-keys", json={"role": "integration"},
                                      headers=key)
    again = await harness.client.post("/v1/api-keys", json={"role": "integration"},
                                      headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]  # one key minted
    assert again.json()["token"] != first.json()["token"]  # its token is shown only once
    assert first.json()["token"].split(".")[2] not in again.text
    claim = {"kind": "named_account", "rep_id": "r-1", "account": {"domain": "f.com"}}
    one = await harness.client.post("/v1/claims", json=claim, headers={"Idempotency-Key": "c"})
    two = await harness.client.post("/v1/claims", json=claim, headers={"Idempotency-Key": "c"})
    assert one.json()["id"] == two.json()["id"]


async def test_keys_expire(tmp_path: Path) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token="test-admin-token",
                        idempotency_ttl_seconds=0.2)
    async with serve(settings, frozenset({"registration"})) as short:
        key = {"Idempotency-Key": "k-expiring"}
        first = await short.client.post("/v1/registrations",
                                        json=registration("p-1", "g.com"), headers=key)
        await asyncio.sleep(0.3)
        later = await short.client.post("/v1/registrations",
                                        json=registration("p-1", "g.com"), headers=key)
        assert later.status_code == 202 and later.json()["id"] != first.json()["id"]


async def test_two_registration_processes_share_the_keys(
    kafka_server: ServerHandle, postgres_server: ServerHandle, unique: str,
) -> None:
    database = await create_database(postgres_server.url, f"idem_{unique}")
    settings = Settings(backend="distributed", admin_token="test-admin-token",
                        kafka_bootstrap_servers=kafka_server.url, database_url=database,
                        topic_prefix=f"idem-{unique}", topic_partitions=3)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(serve(settings, frozenset({"registration"})))
        b = await stack.enter_async_context(serve(settings, frozenset({"registration"})))
        body = registration("p-1", "across.com")
        key = {"Idempotency-Key": "k-across"}
        first = await a.client.post("/v1/registrations", json=body, headers=key)
        replay = await b.client.post("/v1/registrations", json=body, headers=key)
        assert first.status_code == replay.status_code == 202
        assert replay.json() == first.json()
        assert replay.headers["idempotent-replayed"] == "true"
        mismatch = await b.client.post("/v1/registrations",
                                       json=registration("p-1", "elsewhere.com"), headers=key)
        assert mismatch.status_code == 422

        racing = registration("p-1", "race.com")
        answers = await asyncio.gather(*[
            client.post("/v1/registrations", json=racing, headers={"Idempotency-Key": "k-race"})
            for client in (a.client, b.client, a.client, b.client)])
        assert {r.status_code for r in answers} <= {202, 409}
        winners = {r.json()["id"] for r in answers if r.status_code == 202}
        assert len(winners) == 1
        ids = await submitted_ids(a)
        assert ids.count(first.json()["id"]) == 1
        assert ids.count(winners.pop()) == 1
        # An API key minted in one process authenticates in the other.
        token = await a.token("partner", "p-1")
        assert (await b.client.get("/v1/policy", headers={
            "Authorization": f"Bearer {token}"})).status_code == 200
