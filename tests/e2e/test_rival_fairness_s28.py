"""Session 28 fairness decisions through the HTTP API on both backends (the embedded one on
SQLite, the distributed one on Kafka and PostgreSQL), with the seeded Faker companies of
`tests/support/companies.py`. Each test here failed before its change."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import System
from tests.e2e.test_rival_fairness import (
    WAIT,
    companies,
    crm_close,
    registration,
    status_becomes,
    submit,
    submit_ref,
    weighed,
)
from tests.integration.registration.harness import eventually


async def submit_motion(client: httpx.AsyncClient, partner: str, account: dict[str, Any],
                        external_ref: str, motion: str) -> dict[str, Any]:
    response = await client.post("/v1/registrations", headers=WAIT, json={
        "partner_id": partner, "account": account, "external_ref": external_ref,
        "opportunity": {"title": "Rollout", "products": ["analytics"]}, "motion": motion})
    assert response.status_code == 201, response.text
    decided: dict[str, Any] = response.json()
    return decided


async def test_a_rival_s_copy_of_the_reference_in_review_does_not_block_the_holder_s_close(
    system: System,
) -> None:
    """A rival registers the holder's customer under the holder's `external_ref` inside
    the tie window (in review beside the holder) and another as a referral (approved
    non-exclusive): two other partners' closable registrations carry the reference, and
    the CRM's close by reference was a 422 -- the holder's win and incumbency never
    recorded. Now the close goes to the one protection holder, which filed the reference
    first; neither copy is closed."""
    client, reads = system.commands, system.queries
    put = await client.put("/v1/policy", json={"tie_window": "PT1H"})
    assert put.status_code in (200, 201), put.text
    (held,) = companies(1, seed=41)
    account = {"name": held.name, "country": held.country, "domain": held.domains[0]}
    holder = await submit_ref(client, "p-1", account, "OPP-99001")
    assert holder["status"] == "approved", holder
    rival = await submit_ref(client, "p-2", account, "OPP-99001")
    assert rival["status"] == "in_review", rival
    referral = await submit_motion(client, "p-3", account, "OPP-99001", "referral")
    assert (referral["status"], referral["decision"]["rule"]) == ("approved",
                                                                  "non_exclusive"), referral
    result = await crm_close(client, "OPP-99001", "won", "e-99001")
    assert result["status"] == "accepted", result
    await status_becomes(reads, holder["id"], "won")
    for copy in (rival, referral):
        assert (await registration(reads, copy["id"]))["status"] not in ("won", "lost")


_PLACE = {"US": "USA", "GB": "UK", "DE": "Deutschland", "FR": "France"}


async def test_a_qualifier_naming_the_customer_s_country_or_a_trade_name_is_the_holder_s(
    system: System,
) -> None:
    """A rival registered the name-only holder's customer as "<name> (UK)" in GB (or
    "<name> - EMEA"): another normalised name, scoring below the threshold, so a new
    customer approved `no_conflict` beside the holder, unseen. Likewise "Northwind dba
    <holder's name>" and, the other way round, the trade name alone beside a holder
    registered as "<legal name> dba <trade name>". Now both are the holder's customer:
    the rival is weighed against the holder and not approved."""
    client = system.commands
    first, second, third, legal = companies(4, seed=43)
    held = await submit(client, "p-1", {"name": first.name, "country": first.country})
    assert held["status"] == "approved", held
    rival = await submit(client, "p-2", {"name": f"{first.name} ({_PLACE[first.country]})",
                                         "country": first.country})
    assert rival["account_key"] == held["account_key"], rival
    assert rival["status"] != "approved" and held["id"] in weighed(rival), rival["decision"]
    held = await submit(client, "p-1", {"name": second.name, "country": second.country})
    region = "AMER" if second.country == "US" else "EMEA"
    rival = await submit(client, "p-2", {"name": f"{second.name} - {region}",
                                         "country": second.country})
    assert rival["status"] != "approved" and held["id"] in weighed(rival), rival["decision"]

    held = await submit(client, "p-1", {"name": third.name, "country": third.country})
    rival = await submit(client, "p-2", {"name": f"{legal.name} dba {third.name}",
                                         "country": third.country})
    assert rival["status"] != "approved" and held["id"] in weighed(rival), rival["decision"]
    held = await submit(client, "p-3", {"name": f"{legal.name} d/b/a {first.name} Cloud",
                                        "country": legal.country})
    rival = await submit(client, "p-4", {"name": f"{first.name} Cloud",
                                         "country": legal.country})
    assert rival["status"] != "approved" and held["id"] in weighed(rival), rival["decision"]

    # The ownership look-up by either name finds the holder's account (once projected).
    async def owned_by_trade_name() -> str | None:
        answer = await system.queries.get("/v1/ownership", params={
            "name": f"{first.name} Cloud", "country": legal.country})
        assert answer.status_code == 200, answer.text
        key: str | None = answer.json()["account_key"]
        return key if key == held["account_key"] else None

    assert await eventually(owned_by_trade_name) == held["account_key"]


async def test_a_crm_id_reformatted_by_hand_is_the_holder_s(system: System) -> None:
    """A non-Salesforce CRM id is compared exactly: the holder's "CRM 00123" submitted as
    "crm-00123" was another CRM id, another customer, and the rival was approved
    `no_conflict` beside the holder, unseen. Under `match.crm_ids: any_spelling` (the new
    default) it is the holder's customer."""
    client = system.commands
    held = await submit(client, "p-1", {"crm_account_id": "CRM 00123"})
    assert held["status"] == "approved", held
    rival = await submit(client, "p-2", {"crm_account_id": "crm-00123"})
    assert rival["status"] != "approved" and held["id"] in weighed(rival), rival["decision"]


async def test_a_chain_of_trade_names_holds_no_customer_it_lists(system: System) -> None:
    """A rival filed one name-only registration "A dba B dba C dba D" listing four
    customers of one country: every form was filed under its key, so each customer's own
    partner, registering it later with its name and domain, was weighed against the
    rival and not approved -- one registration squatting every customer it listed. A
    name is known by at most two names; a chain naming more is one (unlikely) name."""
    client = system.commands
    listed = companies(4, seed=47)
    country = listed[0].country
    squat = await submit(client, "p-9", {"name": " dba ".join(c.name for c in listed),
                                         "country": country})
    assert squat["status"] == "approved", squat
    for n, company in enumerate(listed, start=1):
        held = await submit(client, f"p-{n}", {"name": company.name, "country": country,
                                               "domain": company.domains[0]})
        assert squat["id"] not in weighed(held), (company.name, held["decision"])
        assert held["status"] == "approved", (company.name, held["decision"])


async def test_the_ownership_look_up_finds_a_crm_id_in_any_spelling(system: System) -> None:
    """`GET /v1/ownership?crm_account_id=` asked the tables for a few spellings of the id
    (as given, squeezed, upper case): the holder's "ACC-2024-00777" asked as "acc 2024
    00777" answered nobody owns it -- a partner told the customer is free, though the
    adjudicator (`match.crm_ids: any_spelling`) holds it as the holder's. The directory
    files each id's spelling-free form too (`crm_spelling`, migration 0014)."""
    client = system.commands
    held = await submit(client, "p-1", {"crm_account_id": "ACC-2024-00777"})
    assert held["status"] == "approved", held
    rival = await submit(client, "p-2", {"crm_account_id": "acc 2024 00777"})
    assert rival["status"] != "approved" and held["id"] in weighed(rival), rival["decision"]

    async def owner(spelling: str) -> str | None:
        answer = await system.queries.get("/v1/ownership",
                                          params={"crm_account_id": spelling})
        assert answer.status_code == 200, answer.text
        key: str | None = answer.json()["account_key"]
        return key

    assert await eventually(lambda: owner("ACC-2024-00777")) == held["account_key"]
    for spelling in ("acc 2024 00777", "Acc_2024.00777", "ACC/2024/00777"):
        assert await owner(spelling) == held["account_key"], spelling
