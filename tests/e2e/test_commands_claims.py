"""Direct claims end to end: a named-account claim can be released by its rep, an
integration (HTTP or CloudEvent) or an admin, also after the process restarted (the claim is
looked up in the read model, not only in this process's memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from shared.settings import Settings
from tests.integration.registration.harness import Harness, eventually, registration, serve

WAIT = {"Prefer": "wait=10"}
CLOUDEVENTS = {"content-type": "application/cloudevents+json"}


async def _claim(harness: Harness, rep: str, domain: str) -> dict[str, Any]:
    filed = await harness.client.post("/v1/claims", headers={**WAIT, **await harness.as_(
        "rep", rep)}, json={"kind": "named_account",
                            "account": {"name": f"{domain} Corp", "domain": domain,
                                        "country": "US"}})
    assert filed.status_code == 201, filed.text
    assert filed.json()["status"] == "approved", filed.text
    result: dict[str, Any] = filed.json()
    return result


async def _register(harness: Harness, partner: str, domain: str) -> dict[str, Any]:
    answer = await harness.client.post("/v1/registrations", json=registration(partner, domain),
                                       headers={**WAIT, **await harness.as_("partner", partner)})
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_a_named_account_claim_is_released_after_a_restart(tmp_path: Path) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token="test-admin-token")
    async with serve(settings) as first:
        by_rep = await _claim(first, "r-1", "named-one.com")
        by_crm = await _claim(first, "r-1", "named-two.com")
        by_admin = await _claim(first, "r-1", "named-three.com")
        blocked = await _register(first, "p-1", "named-one.com")
        assert blocked["decision"]["rule"] == "direct_named_account"

    async with serve(settings) as second:  # nothing of the claims in this process's memory
        client = second.client
        path = f"/v1/claims/{by_rep['id']}/release"
        assert (await client.post(path, headers=await second.as_("rep", "r-2"))
                ).status_code == 404  # another rep's claim does not exist for it
        assert (await client.post(path, headers=await second.as_("partner", "p-1"))
                ).status_code == 403
        released = await client.post(path, headers={**WAIT, **await second.as_("rep", "r-1")})
        assert released.status_code == 200, released.text
        assert (released.json()["id"], released.json()["status"]) == (by_rep["id"], "withdrawn")
        assert (await client.post(path, headers=await second.as_("rep", "r-1"))
                ).status_code == 409  # released already
        # The account is free: the partner the claim beat is next in line (on_release).

        async def promoted() -> dict[str, Any] | None:
            row = (await client.get(f"/v1/registrations/{blocked['id']}")).json()
            return row if row["status"] == "approved" else None

        assert (await eventually(promoted))["decision"]["rule"] == "promoted_on_release"
        owners = (await client.get("/v1/ownership", params={"domain": "named-one.com"})
                  ).json()["owners"]
        assert [(o["party_type"], o["registration_id"]) for o in owners] == [
            ("partner", blocked["id"])]

        # The CRM releases one with a CloudEvent.
        integration = await second.as_("integration")
        event = {"specversion": "1.0", "id": "crm-rel-1", "source": "urn:crm:test",
                 "type": "dealreg.claim.released.v1", "data": {"claim_id": by_crm["id"]}}
        ingested = await client.post("/v1/events", content=orjson.dumps(event),
                                     headers={**integration, **CLOUDEVENTS})
        assert ingested.status_code == 202, ingested.text
        [result] = ingested.json()["results"]
        assert result["status"] == "accepted", result
        assert (await _register(second, "p-2", "named-two.com"))["status"] == "approved"

        # An admin withdraws one the way registrations are withdrawn.
        withdrawn = await client.post(f"/v1/registrations/{by_admin['id']}/withdraw",
                                      headers=WAIT)
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["status"] == "withdrawn"
        assert (await _register(second, "p-3", "named-three.com"))["status"] == "approved"


async def test_releasing_an_unknown_claim_is_404_and_appends_nothing(tmp_path: Path) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token="test-admin-token")
    async with serve(settings) as harness:
        intake = harness.runtime.topics.intake
        before = sum((await harness.runtime.eventlog.end_positions(intake)).values())
        missing = await harness.client.post("/v1/claims/clm_01jd2vb0c1d2e3f4g5h6j7k8m9/release")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert sum((await harness.runtime.eventlog.end_positions(intake)).values()) == before
