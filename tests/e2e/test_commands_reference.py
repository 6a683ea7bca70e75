"""Reference data: policy versions, partners and owners, durable on the log before use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.eventlog import TopicPartition
from shared.events import PartnerStatusChanged, RegistrationSubmitted
from shared.events.codec import decode
from shared.events.reference import OwnerUpdated, PartnerUpdated, PolicyPublished
from shared.settings import Settings
from tests.integration.registration.harness import Harness, registration, serve


@pytest.fixture(scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("reference"),
                        admin_token="test-admin-token", topic_partitions=4)
    async with serve(settings) as running:
        yield running


async def events_on(harness: Harness, topic: str) -> list[tuple[str, Any]]:
    log = harness.runtime.eventlog
    out: list[tuple[str, Any]] = []
    for tp, end in sorted((await log.end_positions(topic)).items()):
        async for batch in log.read(TopicPartition(tp.topic, tp.partition), 0, end):
            out.extend((r.key, decode(r.value)[1]) for r in batch)
    return out


async def test_policy_versions_count_up_and_never_change(harness: Harness) -> None:
    client = harness.client
    current = (await client.get("/v1/policy")).json()
    assert current["version"] == 1  # the defaults, published at start
    published = await client.put("/v1/policy", json={"tie_window": "PT1H",
                                                      "protection_period": "P60D"})
    assert published.status_code == 201
    assert published.json()["version"] == 2
    assert published.json()["tie_window"] == "PT1H"
    assert published.headers["location"] == "/v1/policy/2"
    assert (await client.get("/v1/policy")).json()["version"] == 2
    assert (await client.get("/v1/policy/1")).json()["tie_window"] == "P1D"
    again = await client.put("/v1/policy", json={"tie_window": "PT1H",
                                                  "protection_period": "P60D"})
    assert again.status_code == 200 and again.json()["version"] == 2
    stale = await client.put("/v1/policy", json={"version": 2, "tie_window": "PT2H"})
    assert stale.status_code == 409
    invalid = await client.put("/v1/policy", json={"precedence": ["coin_toss"],
                                                   "protection_period": "90 days"})
    assert invalid.status_code == 422
    assert {e["field"] for e in invalid.json()["errors"]} == {"precedence",
                                                              "protection_period"}
    published_events = [e for k, e in await events_on(harness, harness.runtime.topics.reference)
                        if isinstance(e, PolicyPublished)]
    assert [e.version for e in published_events] == [1, 2]
    assert published_events[1].document["tie_window"] == "PT1H"


async def test_registrations_are_stamped_with_the_policy_and_partner_in_force(
    harness: Harness,
) -> None:
    client = harness.client
    put = await client.put("/v1/partners/p-gold", json={
        "name": "Gold Partner", "type": "si", "tier": "gold", "region": "EMEA"})
    assert put.status_code == 201
    assert put.json()["status"] == "active"
    assert (await client.put("/v1/partners/p-gold", json={
        "name": "Gold Partner", "type": "si", "tier": "gold", "region": "EMEA"})
    ).status_code == 200
    version = (await client.put("/v1/policy", json={"tie_window": "PT3H"})).json()["version"]
    submitted = await client.post("/v1/registrations",
                                  json=registration("p-gold", "stamped.com"))
    assert submitted.status_code == 202
    [event] = [e for _, e in await events_on(harness, harness.runtime.topics.intake)
               if isinstance(e, RegistrationSubmitted)
               and e.registration_id == submitted.json()["id"]]
    assert event.policy_version == version
    assert (event.partner.tier, event.partner.status, event.partner.type) == \
        ("gold", "active", "si")


async def test_a_partner_status_change_reaches_every_intake_partition(harness: Harness
                                                                      ) -> None:
    client = harness.client
    await client.put("/v1/partners/p-leaving", json={"name": "Leaving", "type": "msp",
                                                     "tier": "silver"})
    changed = await client.put("/v1/partners/p-leaving", json={
        "name": "Leaving", "type": "msp", "tier": "silver", "status": "suspended"})
    assert changed.status_code == 200 and changed.json()["status"] == "suspended"
    log = harness.runtime.eventlog
    topic = harness.runtime.topics.intake
    partitions = set()
    for tp, end in (await log.end_positions(topic)).items():
        async for batch in log.read(tp, 0, end):
            for record in batch:
                event = decode(record.value)[1]
                if isinstance(event, PartnerStatusChanged) and event.partner_id == "p-leaving":
                    assert event.status == "suspended"
                    partitions.add(record.partition)
    assert partitions == set(range(4))
    reference = [e for _, e in await events_on(harness, harness.runtime.topics.reference)
                 if isinstance(e, PartnerUpdated) and e.partner_id == "p-leaving"]
    assert [e.status for e in reference] == ["active", "suspended"]
    read = await client.get("/v1/partners/p-leaving",
                            headers=await harness.as_("partner", "p-leaving"))
    assert read.json()["status"] == "suspended"
    other = await client.get("/v1/partners/p-leaving",
                             headers=await harness.as_("partner", "p-gold"))
    assert other.status_code == 404


async def test_owners_get_a_standard_webhooks_secret_that_is_kept(harness: Harness) -> None:
    client = harness.client
    created = await client.put("/v1/owners/cm-9", json={
        "name": "Channel manager", "webhook_url": "https://hooks.example.com/x"})
    assert created.status_code == 201
    secret = created.json()["webhook_secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    renamed = await client.put("/v1/owners/cm-9", json={"name": "Channel manager EMEA"})
    assert renamed.status_code == 200
    assert renamed.json()["webhook_secret"] == secret
    assert renamed.json()["webhook_url"] is None
    given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    replaced = await client.put("/v1/owners/cm-9", json={"name": "x", "webhook_secret": given})
    assert replaced.json()["webhook_secret"] == given
    assert (await client.get("/v1/owners/cm-9")).json()["webhook_secret"] == given
    owners = [e for _, e in await events_on(harness, harness.runtime.topics.reference)
              if isinstance(e, OwnerUpdated) and e.owner_id == "cm-9"]
    assert len(owners) == 3 and owners[0].webhook_secret == secret


async def test_unknown_partners_can_be_refused(tmp_path_factory: pytest.TempPathFactory
                                               ) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path_factory.mktemp("strict"),
                        admin_token="test-admin-token", unknown_partners="reject")
    async with serve(settings, frozenset({"registration"})) as strict:
        refused = await strict.client.post("/v1/registrations",
                                           json=registration("p-x", "x.com"))
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "partner_id"
        await strict.client.put("/v1/partners/p-x", json={"name": "X", "type": "isv",
                                                          "tier": "registered"})
        accepted = await strict.client.post("/v1/registrations",
                                            json=registration("p-x", "x.com"))
        assert accepted.status_code == 202


async def test_the_reference_tables_are_a_fold_of_the_reference_topic(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data_dir = tmp_path_factory.mktemp("refold")
    settings = Settings(backend="embedded", data_dir=data_dir, admin_token="test-admin-token")
    async with serve(settings, frozenset({"registration"})) as first:
        await first.client.put("/v1/policy", json={"tie_window": "PT5H"})
        await first.client.put("/v1/partners/p-1", json={"name": "One", "type": "isv",
                                                         "tier": "gold"})
    (data_dir / "readmodel.sqlite3").unlink()  # read models are disposable
    async with serve(settings, frozenset({"registration"})) as second:
        assert (await second.client.get("/v1/policy")).json()["tie_window"] == "PT5H"
        assert (await second.client.get("/v1/partners/p-1")).json()["tier"] == "gold"
        nxt = await second.client.put("/v1/policy", json={"tie_window": "PT6H"})
        assert nxt.json()["version"] == 3
