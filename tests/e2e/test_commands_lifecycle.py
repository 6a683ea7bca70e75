"""Every command of the contract, end to end, on both backends (`system` runs each)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.e2e.conftest import System
from tests.integration.registration.harness import registration

WAIT = {"Prefer": "wait=15"}


async def key(system: System, role: str, subject: str) -> dict[str, str]:
    minted = await system.commands.post("/v1/api-keys", json={"role": role,
                                                              "subject_id": subject})
    assert minted.status_code == 201, minted.text
    return {"Authorization": f"Bearer {minted.json()['token']}"}


async def settled(client: httpx.AsyncClient, path: str, done: Any) -> dict[str, Any]:
    for _ in range(300):
        response = await client.get(path)
        if response.status_code == 200 and done(response.json()):
            result: dict[str, Any] = response.json()
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never settled: {response.text}")


async def test_the_command_side_of_the_contract(system: System) -> None:
    client = system.commands
    assert (await client.put("/v1/owners/cm-1", json={"name": "Channel manager"})
            ).status_code == 201
    for partner, tier in (("p-1", "gold"), ("p-2", "gold")):
        assert (await client.put(f"/v1/partners/{partner}", json={
            "name": partner, "type": "reseller", "tier": tier})).status_code == 201
    p1 = await key(system, "partner", "p-1")
    owner = await key(system, "owner", "cm-1")

    # Register, extend (once), withdraw.
    first = await client.post("/v1/registrations", json=registration(None, "life.com"),
                              headers={**p1, **WAIT})
    assert first.status_code == 201, first.text
    reg = first.json()
    assert reg["status"] == "approved" and reg["decision"]["policy_version"] == 1
    # 90 days of protection and extension.window P30D: too early to extend.
    early = await client.post(f"/v1/registrations/{reg['id']}/extend", headers={**p1, **WAIT})
    assert early.status_code == 409, early.text
    assert "only in the last P30D" in early.json()["detail"]
    # With 20 days of protection the window is open at once.
    assert (await client.put("/v1/policy", json={"protection_period": "P20D"})
            ).status_code in (200, 201)
    short = await client.post("/v1/registrations", json=registration(None, "life2.com"),
                              headers={**p1, **WAIT})
    assert short.json()["status"] == "approved", short.text
    extended = await client.post(f"/v1/registrations/{short.json()['id']}/extend",
                                 headers={**p1, **WAIT})
    assert extended.status_code == 200, extended.text
    assert extended.json()["extensions"] == 1
    assert extended.headers["preference-applied"] == "wait=15"
    refused = await client.post(f"/v1/registrations/{short.json()['id']}/extend", headers=p1)
    assert refused.status_code == 409
    withdrawn = await client.post(f"/v1/registrations/{reg['id']}/withdraw",
                                  headers={**p1, **WAIT})
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert (await client.post(f"/v1/registrations/{reg['id']}/withdraw", headers=p1)
            ).status_code == 409

    # A direct named account beats p-1; p-1 contests; the owner settles it.
    claim = await client.post("/v1/claims", json={
        "kind": "named_account", "rep_id": "r-1",
        "account": {"name": "Contest Corp", "domain": "contest.com", "country": "US"}},
        headers=WAIT)
    assert claim.status_code == 201 and claim.json()["status"] == "approved", claim.text
    lost = await client.post("/v1/registrations", json=registration(None, "contest.com"),
                             headers={**p1, **WAIT})
    assert lost.json()["status"] == "rejected"
    assert lost.json()["decision"]["rule"] == "direct_named_account"
    # A partner learns that someone holds the account, not who.
    assert all(c["registration_id"] is None for c in lost.json()["decision"]["conflicts"])
    filed = await client.post(f"/v1/registrations/{lost.json()['id']}/disputes",
                              json={"reason": "We sourced this deal."},
                              headers={**p1, **WAIT})
    assert filed.status_code == 201, filed.text
    dispute = filed.json()
    assert dispute["status"] == "open"
    dispute = await settled(system.queries, f"/v1/disputes/{dispute['id']}",
                            lambda d: d["owner_id"] is not None)
    assert dispute["owner_id"] == "cm-1"
    acked = await client.post(f"/v1/disputes/{dispute['id']}/acknowledge",
                              headers={**owner, **WAIT})
    assert acked.status_code == 200, acked.text
    assert acked.json()["acknowledged_at"] is not None
    resolved = await client.post(f"/v1/disputes/{dispute['id']}/resolve", json={
        "outcome": "award", "registration_id": lost.json()["id"], "note": "Partner-sourced"},
        headers={**owner, **WAIT})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    assert (await client.post(f"/v1/disputes/{dispute['id']}/acknowledge", headers=owner)
            ).status_code == 409
    awarded = await settled(system.queries, f"/v1/registrations/{lost.json()['id']}",
                            lambda r: r["status"] == "approved")
    assert awarded["decision"]["rule"] == "dispute_resolution"

    # A CRM closes a deal; protection ends with the outcome.
    won = await client.post(f"/v1/registrations/{lost.json()['id']}/close",
                            json={"outcome": "won"}, headers=WAIT)
    assert won.status_code == 200 and won.json()["status"] == "won", won.text
