"""`Idempotency-Key`: one command per key, the first answer replayed, across processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from shared.api.problems import Problem
from shared.eventlog import TopicPartition
from shared.events import DisputeFiled, RegistrationSubmitted
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


class Killed(BaseException):
    """The process dying: nothing after it runs (no answer stored, no reservation dropped)."""


def die_after_the_next_append(harness: Harness) -> list[object]:
    """The crash window: the next append is durable, then the process dies before the
    Idempotency-Key's answer is stored. Returns the list the appended positions go to."""
    log = harness.runtime.eventlog
    real = log.append
    landed: list[object] = []

    async def append_then_die(records):  # type: ignore[no-untyped-def]
        log.append = real  # type: ignore[method-assign]
        landed.extend(await real(records))
        raise Killed

    log.append = append_then_die  # type: ignore[method-assign]
    return landed


async def intake_events(harness: Harness) -> list[tuple[str, object]]:
    log = harness.runtime.eventlog
    out: list[tuple[str, object]] = []
    for tp, end in (await log.end_positions(harness.runtime.topics.intake)).items():
        async for batch in log.read(TopicPartition(tp.topic, tp.partition), 0, end):
            out.extend((env.id, event) for env, event in (decode(r.value) for r in batch))
    return out


async def crash_between_append_and_answer_then_retry(harness: Harness, lease: float) -> None:
    """A command whose process died after its append is retried once its lease lapsed:
    the retry answers from the event in the log, and nothing is appended twice."""
    body = registration("p-1", "stranded.com")
    key = {"Idempotency-Key": "k-stranded"}
    landed = die_after_the_next_append(harness)
    with pytest.raises(Killed):
        await harness.client.post("/v1/registrations", json=body, headers=key)
    assert len(landed) == 1
    early = await harness.client.post("/v1/registrations", json=body, headers=key)
    assert early.status_code == 409  # the lease has not lapsed yet
    await asyncio.sleep(lease + 0.3)
    retried = await harness.client.post("/v1/registrations", json=body, headers=key)
    assert retried.status_code == 202, retried.text
    events = [(i, e) for i, e in await intake_events(harness)
              if isinstance(e, RegistrationSubmitted)
              and e.opportunity.title == body["opportunity"]["title"]]
    assert len(events) == 1
    [(event_id, event)] = events
    assert retried.json()["id"] == event.registration_id  # type: ignore[attr-defined]
    position = landed[0]
    assert retried.headers["x-log-position"] == (
        f"{position.topic}/{position.partition}/{position.offset}")  # type: ignore[attr-defined]
    again = await harness.client.post("/v1/registrations", json=body, headers=key)
    assert again.status_code == 202 and again.json() == retried.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert [i for i, _ in await intake_events(harness)].count(event_id) == 1


async def test_a_command_stranded_between_append_and_answer_is_appended_once(
    tmp_path: Path,
) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token="test-admin-token",
                        idempotency_lease_seconds=0.6)
    async with serve(settings, frozenset({"registration"})) as running:
        await crash_between_append_and_answer_then_retry(running, 0.6)


async def test_a_stranded_command_is_appended_once_on_kafka_and_postgresql(
    kafka_server: ServerHandle, postgres_server: ServerHandle, unique: str,
) -> None:
    database = await create_database(postgres_server.url, f"strand_{unique}")
    settings = Settings(backend="distributed", admin_token="test-admin-token",
                        kafka_bootstrap_servers=kafka_server.url, database_url=database,
                        topic_prefix=f"strand-{unique}", topic_partitions=3,
                        idempotency_lease_seconds=1.0)
    async with serve(settings, frozenset({"registration"})) as running:
        await crash_between_append_and_answer_then_retry(running, 1.0)
        # Another process takes the next stranded command over (the first one died).
        body = registration("p-1", "elsewhere-stranded.com")
        key = {"Idempotency-Key": "k-stranded-across"}
        die_after_the_next_append(running)
        with pytest.raises(Killed):
            await running.client.post("/v1/registrations", json=body, headers=key)
        async with serve(settings, frozenset({"registration"})) as other:
            await asyncio.sleep(1.3)
            retried = await other.client.post("/v1/registrations", json=body, headers=key)
            assert retried.status_code == 202, retried.text
            ids = await submitted_ids(other)
            assert ids.count(retried.json()["id"]) == 1


async def test_lifecycle_commands_and_claims_stranded_after_their_append_are_appended_once(
    tmp_path: Path,
) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token="test-admin-token",
                        idempotency_lease_seconds=0.5)
    async with serve(settings, frozenset({"registration"})) as running:
        made = await running.client.post("/v1/registrations",
                                         json=registration("p-1", "lifecycle-stranded.com"))
        rid = made.json()["id"]
        claim = {"kind": "named_account", "rep_id": "r-9",
                 "account": {"domain": "claim-stranded.com"}}
        for path, body in ((f"/v1/registrations/{rid}/withdraw", None),
                           ("/v1/claims", claim)):
            key = {"Idempotency-Key": f"k-{path}"}
            die_after_the_next_append(running)
            with pytest.raises(Killed):
                await running.client.post(path, json=body, headers=key)
            before = await intake_events(running)
            await asyncio.sleep(0.8)
            retried = await running.client.post(path, json=body, headers=key)
            assert retried.status_code in (201, 202), retried.text
            assert await intake_events(running) == before  # nothing appended again
            again = await running.client.post(path, json=body, headers=key)
            assert again.json() == retried.json()
            if path == "/v1/claims":
                assert retried.json()["id"] in {getattr(e, "claim_id", None)
                                                for _, e in before}


async def test_a_request_slower_than_its_lease_keeps_its_key(tmp_path: Path) -> None:
    """The lease is renewed while the request runs: a slow append (a broker restarting) is
    not taken over by the client's retry, which would append the command a second time."""
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token="test-admin-token",
                        idempotency_lease_seconds=0.3)
    async with serve(settings, frozenset({"registration"})) as running:
        log = running.runtime.eventlog
        real = log.append

        async def slow(records):  # type: ignore[no-untyped-def]
            await asyncio.sleep(1.5)
            return await real(records)

        log.append = slow  # type: ignore[method-assign]
        body = registration("p-1", "slow.com")
        key = {"Idempotency-Key": "k-slow"}
        first = asyncio.create_task(running.client.post("/v1/registrations", json=body,
                                                        headers=key))
        await asyncio.sleep(0.9)
        twin = await running.client.post("/v1/registrations", json=body, headers=key)
        log.append = real  # type: ignore[method-assign]
        assert twin.status_code == 409
        assert (await first).status_code == 202
        assert (await submitted_ids(running)).count((await first).json()["id"]) == 1


async def test_a_refusal_given_after_the_append_is_replayed_not_appended_again(
    tmp_path: Path,
) -> None:
    """A contest adjudication refuses within the wait is a 409 given after its append: a
    retry with the key replays the refusal; dropping the key would append it again."""
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token="test-admin-token")
    async with serve(settings, frozenset({"registration"})) as running:
        made = await running.client.post("/v1/registrations",
                                         json=registration("p-1", "refused-contest.com"))
        rid = made.json()["id"]
        commands = running.app.state.commands

        async def refused(*_: object) -> object:
            raise Problem(409, "Conflict", f"The contest of {rid} was refused (window).")

        commands._contested = refused
        key = {"Idempotency-Key": "k-refused-contest"}
        path = f"/v1/registrations/{rid}/disputes"
        first = await running.client.post(path, json={"reason": "We were first."},
                                          headers=key)
        again = await running.client.post(path, json={"reason": "We were first."},
                                          headers=key)
        assert first.status_code == again.status_code == 409
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        filed = [e for _, e in await intake_events(running) if isinstance(e, DisputeFiled)]
        assert len(filed) == 1


async def test_a_failed_look_up_keeps_the_stranded_reservation(tmp_path: Path) -> None:
    """The retry that takes a stranded reservation over cannot read the log (a broker
    restarting): it fails, and the reservation stays, so the next retry looks again. A
    dropped reservation would give the next retry a new identity, and a second event."""
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token="test-admin-token",
                        idempotency_lease_seconds=0.5)
    async with serve(settings, frozenset({"registration"})) as running:
        body = registration("p-1", "lookup-fails.com")
        key = {"Idempotency-Key": "k-lookup-fails"}
        die_after_the_next_append(running)
        with pytest.raises(Killed):
            await running.client.post("/v1/registrations", json=body, headers=key)
        log = running.runtime.eventlog
        real = log.find

        async def unreadable(*_: object) -> object:
            log.find = real  # type: ignore[method-assign]
            raise OSError("the log is restarting")

        log.find = unreadable  # type: ignore[method-assign]
        await asyncio.sleep(0.7)
        failed = await running.client.post("/v1/registrations", json=body, headers=key)
        assert failed.status_code == 503 and failed.headers["retry-after"] == "1"
        await asyncio.sleep(0.7)
        retried = await running.client.post("/v1/registrations", json=body, headers=key)
        assert retried.status_code == 202, retried.text
        titled = [e.registration_id for _, e in await intake_events(running)
                  if isinstance(e, RegistrationSubmitted)
                  and e.opportunity.title == body["opportunity"]["title"]]
        assert titled == [retried.json()["id"]]


async def test_a_request_whose_reservation_was_taken_over_cannot_drop_the_takers_reservation(
    tmp_path: Path,
) -> None:
    """A request alive but cut off from the store for a whole lease (renewals failing) is
    taken over by a retry, which appends the command. When the first request then fails
    before its own append, its clean-up must not delete the taker's reservation: the taker's
    answer would not be stored, and the next retry would get a fresh identity and append the
    command a second time."""
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token="test-admin-token",
                        idempotency_lease_seconds=0.4)
    async with serve(settings, frozenset({"registration"})) as running:
        commands = running.app.state.commands
        store = commands.idempotency
        real_renew, real_submit = store.renew, commands.submit_registration
        a_may_fail, a_done = asyncio.Event(), asyncio.Event()
        calls = 0

        async def unreachable(*_: object) -> bool:
            raise OSError("the store is unreachable")

        async def submit(*args: object, **kw: object) -> object:
            nonlocal calls
            calls += 1
            if calls == 1:  # the first request: stalls, then is refused before appending
                await a_may_fail.wait()
                try:
                    raise Problem(422, "Validation failed", "Refused before the append.")
                finally:
                    a_done.set()
            store.renew = real_renew  # type: ignore[method-assign]
            outcome = await real_submit(*args, **kw)  # the taker appends
            a_may_fail.set()
            await a_done.wait()
            await asyncio.sleep(0.05)  # the first request's clean-up runs
            return outcome

        store.renew = unreachable  # type: ignore[method-assign]
        commands.submit_registration = submit
        body = registration("p-1", "taken-over.com")
        key = {"Idempotency-Key": "k-taken-over"}
        first = asyncio.create_task(running.client.post("/v1/registrations", json=body,
                                                        headers=key))
        await asyncio.sleep(0.7)  # its lease lapses
        taker = await running.client.post("/v1/registrations", json=body, headers=key)
        assert taker.status_code == 202, taker.text
        assert (await first).status_code == 422
        commands.submit_registration = real_submit
        again = await running.client.post("/v1/registrations", json=body, headers=key)
        assert again.status_code == 202 and again.json() == taker.json()
        titled = [e.registration_id for _, e in await intake_events(running)
                  if isinstance(e, RegistrationSubmitted)
                  and e.opportunity.title == body["opportunity"]["title"]]
        assert titled == [taker.json()["id"]]


async def test_a_request_that_lost_its_lease_does_not_append_after_the_taker(
    tmp_path: Path,
) -> None:
    """A request alive but cut off from the store for a whole lease is taken over by a
    retry, which appends the command and answers. When the first request then reaches its
    own append, it must not append: it can no longer know the key is still its own, and
    the command would be in the log twice (the same event id, an extension spent twice)."""
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token="test-admin-token",
                        idempotency_lease_seconds=0.4)
    async with serve(settings, frozenset({"registration"})) as running:
        commands = running.app.state.commands
        store = commands.idempotency
        real_renew, real_submit = store.renew, commands.submit_registration
        taker_done = asyncio.Event()
        calls = 0

        async def unreachable(*_: object) -> bool:
            raise OSError("the store is unreachable")

        async def submit(*args: object, **kw: object) -> object:
            nonlocal calls
            calls += 1
            if calls == 1:  # the first request stalls before its append
                await taker_done.wait()
            else:
                store.renew = real_renew  # type: ignore[method-assign]
            return await real_submit(*args, **kw)

        store.renew = unreachable  # type: ignore[method-assign]
        commands.submit_registration = submit
        body = registration("p-1", "lost-lease.com")
        key = {"Idempotency-Key": "k-lost-lease"}
        first = asyncio.create_task(running.client.post("/v1/registrations", json=body,
                                                        headers=key))
        await asyncio.sleep(0.7)  # its lease lapses
        taker = await running.client.post("/v1/registrations", json=body, headers=key)
        assert taker.status_code == 202, taker.text
        taker_done.set()
        late = await first
        commands.submit_registration = real_submit
        assert late.status_code == 503, late.text
        assert late.headers["retry-after"] == "1"
        again = await running.client.post("/v1/registrations", json=body, headers=key)
        assert again.status_code == 202 and again.json() == taker.json()
        titled = [i for i, e in await intake_events(running)
                  if isinstance(e, RegistrationSubmitted)
                  and e.opportunity.title == body["opportunity"]["title"]]
        assert len(titled) == 1


async def test_a_taker_that_lost_its_lease_does_not_append_after_the_next_taker(
    tmp_path: Path,
) -> None:
    """The first attempt's append failed (503: the command may be in the log), so a retry
    takes the reservation over; that taker, cut off from the store for a whole lease before
    its append, is taken over in turn. The second taker appends; the first must not."""
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token="test-admin-token",
                        idempotency_lease_seconds=0.4)
    async with serve(settings, frozenset({"registration"})) as running:
        commands = running.app.state.commands
        store, log = commands.idempotency, running.runtime.eventlog
        real_renew, real_submit, real_append = (store.renew, commands.submit_registration,
                                                log.append)
        second_done = asyncio.Event()
        calls = 0

        async def refused(*_: object) -> object:
            log.append = real_append  # type: ignore[method-assign]
            raise OSError("the broker did not confirm")

        async def unreachable(*_: object) -> bool:
            raise OSError("the store is unreachable")

        async def submit(*args: object, **kw: object) -> object:
            nonlocal calls
            calls += 1
            if calls == 2:  # the first taker: cut off from the store, stalls
                store.renew = unreachable  # type: ignore[method-assign]
                await second_done.wait()
            elif calls == 3:
                store.renew = real_renew  # type: ignore[method-assign]
            return await real_submit(*args, **kw)

        log.append = refused  # type: ignore[method-assign]
        commands.submit_registration = submit
        body = registration("p-1", "taker-lost-lease.com")
        key = {"Idempotency-Key": "k-taker-lost-lease"}
        failed = await running.client.post("/v1/registrations", json=body, headers=key)
        assert failed.status_code == 503
        await asyncio.sleep(0.6)
        first_taker = asyncio.create_task(running.client.post(
            "/v1/registrations", json=body, headers=key))
        await asyncio.sleep(0.8)  # its lease lapses
        second_taker = await running.client.post("/v1/registrations", json=body, headers=key)
        assert second_taker.status_code == 202, second_taker.text
        second_done.set()
        late = await first_taker
        commands.submit_registration = real_submit
        assert late.status_code == 503, late.text
        titled = [i for i, e in await intake_events(running)
                  if isinstance(e, RegistrationSubmitted)
                  and e.opportunity.title == body["opportunity"]["title"]]
        assert len(titled) == 1
