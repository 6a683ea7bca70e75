"""The thinnest slice through all three services, on both backends."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from tests.e2e.conftest import System


def registration(partner: str, domain: str = "https://www.acme.com/about",
                 **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partner_id": partner,
        "account": {"name": "Acme Corp", "domain": domain, "country": "US"},
        "opportunity": {"title": "Analytics rollout", "products": ["analytics"],
                        "amount": {"value": "120000.00", "currency": "USD"},
                        "expected_close": "2027-03-31"},
        "motion": "resell",
        "external_ref": "PRM-123",
    }
    body.update(overrides)
    return body


async def submit(system: System, body: dict[str, Any], wait: int = 15) -> dict[str, Any]:
    response = await system.commands.post("/v1/registrations", json=body,
                                          headers={"Prefer": f"wait={wait}"})
    assert response.status_code == 201, response.text
    assert response.headers["preference-applied"] == f"wait={wait}"
    result: dict[str, Any] = response.json()
    return result


async def test_first_registration_is_approved_and_visible_through_the_api(
    system: System,
) -> None:
    decided = await submit(system, registration("p-1"))
    assert decided["status"] == "approved"
    assert decided["account_key"] == "dom:acme.com"
    assert decided["decision"]["rule"] == "no_conflict"
    assert decided["protected_until"] is not None

    read = await system.queries.get(f"/v1/registrations/{decided['id']}")
    assert read.status_code == 200
    assert read.json()["status"] == "approved"
    assert read.json()["opportunity"]["amount"] == {"value": "120000.00", "currency": "USD"}

    owners = await system.queries.get("/v1/ownership", params={"domain": "WWW.Acme.com"})
    assert owners.status_code == 200
    assert owners.json()["account_key"] == "dom:acme.com"
    assert [o["registration_id"] for o in owners.json()["owners"]] == [decided["id"]]


async def test_rival_within_the_tie_window_opens_a_dispute_and_keeps_the_approval(
    system: System,
) -> None:
    first = await submit(system, registration("p-1", domain="globex.com"))
    rival = await submit(system, registration("p-2", domain="sales@globex.com"))
    assert first["status"] == "approved"
    assert rival["status"] == "in_review"
    assert rival["account_key"] == first["account_key"] == "dom:globex.com"
    assert rival["decision"]["rule"] == "tie"
    assert rival["decision"]["policy_version"] == 1
    assert rival["dispute_id"] is not None
    assert rival["decision"]["conflicts"][0]["registration_id"] == first["id"]
    assert "tie window" in rival["decision"]["explanation"]
    # Approved registrations are never taken away without a person.
    still = await system.queries.get(f"/v1/registrations/{first['id']}")
    assert still.json()["status"] == "approved"


async def test_without_wait_the_command_is_accepted_and_decided_later(system: System) -> None:
    response = await system.commands.post("/v1/registrations",
                                          json=registration("p-9", domain="initech.com"))
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "submitted"
    for _ in range(200):
        read = await system.queries.get(f"/v1/registrations/{body['id']}")
        if read.status_code == 200 and read.json()["status"] != "submitted":
            break
        await asyncio.sleep(0.05)
    assert read.json()["status"] == "approved"


async def test_bad_input_is_a_problem_response_and_appends_nothing(system: System) -> None:
    unauthenticated = await system.commands.post(
        "/v1/registrations", json=registration("p-1"), headers={"Authorization": ""})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"] == "application/problem+json"

    invalid = await system.commands.post(
        "/v1/registrations", json=registration("p-1", motion="bribery"))
    assert invalid.status_code == 422
    problem = invalid.json()
    assert problem["status"] == 422
    assert [e["field"] for e in problem["errors"]] == ["motion"]

    malformed = await system.commands.post(
        "/v1/registrations", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400

    unidentifiable = await system.commands.post(
        "/v1/registrations", json=registration("p-1", account={"name": "Nameless"}))
    assert unidentifiable.status_code == 422
    assert unidentifiable.json()["errors"][0]["field"] == "account"

    ownership = await system.queries.get("/v1/ownership", params={"domain": "acme.com"})
    assert ownership.json()["account_key"] is None
    assert ownership.json()["owners"] == []


async def test_the_kafka_path_writes_the_event_to_the_broker(system: System) -> None:
    if system.backend != "distributed":
        return  # the embedded log is covered by the contract suite
    decided = await submit(system, registration("p-1", domain="umbrella.com"))
    consumer = AIOKafkaConsumer(
        f"{system.settings.topic_prefix}.intake",
        bootstrap_servers=system.settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest", isolation_level="read_committed",
        enable_auto_commit=False, group_id=None,
    )
    await consumer.start()
    try:
        found = None
        for _ in range(50):
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    envelope = orjson.loads(record.value)
                    if envelope["data"]["registration_id"] == decided["id"]:
                        found = (record, envelope)
            if found:
                break
    finally:
        await consumer.stop()
    assert found is not None, "the registration event is not on the intake topic"
    record, envelope = found
    assert record.key == b"dom:umbrella.com"
    assert envelope["type"] == "dealreg.registration.submitted.v1"
    assert envelope["specversion"] == "1.0"
    assert envelope["subject"] == "dom:umbrella.com"
    assert dict(record.headers)["content-type"] == b"application/cloudevents+json"


async def test_alike_names_with_different_domains_are_two_customers_both_approved(
    system: System,
) -> None:
    # Issue 12, defect 1: the edge merged these by name under one key.
    pairs = [("Anderson Ltd", "anderson-ltd.com", "Anderson Inc", "anderson.com"),
             ("Initech 7 Inc", "junk-7.example.org", "Initech 7 Inc", "initech-7.com"),
             ("Bench Account 0", "bench0.com", "Bench Account 406", "bench406.com")]
    for first_name, first_domain, second_name, second_domain in pairs:
        first = await submit(system, registration(
            "p-1", domain=first_domain,
            account={"name": first_name, "domain": first_domain, "country": "US"}))
        second = await submit(system, registration(
            "p-2", domain=second_domain,
            account={"name": second_name, "domain": second_domain, "country": "US"}))
        for decided in (first, second):
            assert (decided["status"], decided["decision"]["rule"]) == (
                "approved", "no_conflict"), decided["decision"]
            assert decided["decision"]["conflicts"] == []
        assert first["account_key"] != second["account_key"]
        assert second["account_key"] == f"dom:{second_domain}"
