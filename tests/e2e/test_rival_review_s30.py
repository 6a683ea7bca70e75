"""Session 30 rival review: session 29's fairness rules (a name filed without a country
asks but does not hold; a rejected filing's names taken back; a rejection undone files
them again) attacked by a rival partner through the HTTP API on the embedded backend.
Each test here failed before its fix."""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import Settings
from tests.e2e import test_rival_fairness as rival_fairness
from tests.e2e.test_rejected_names_read_model import _owner_keys, running
from tests.e2e.test_rejected_names_read_model import settings as settings
from tests.e2e.test_rival_fairness import (
    companies,
    registration,
    status_becomes,
    submit,
    weighed,
)
from tests.integration.registration.harness import eventually

WAIT = rival_fairness.WAIT
client = rival_fairness.client  # the same embedded app fixture


async def _trade_name_taken_while_rejected(client: httpx.AsyncClient, seed: int, crm: str
                                           ) -> tuple[dict[str, Any], ...]:
    """p-1 holds B by its CRM id; p-2's "B dba T" under that id loses (first to file) and
    T is taken back (`match.rejected_names: unfiled`); p-3 then registers T by name alone
    and, T being nobody's name, is approved `no_conflict`."""
    put = await client.put("/v1/policy", json={"tie_window": "PT0S"})
    assert put.status_code in (200, 201), put.text
    held, trade = companies(2, seed=seed)
    country = held.country
    holder = await submit(client, "p-1", {"name": held.name, "country": country,
                                          "crm_account_id": crm})
    assert holder["status"] == "approved", holder
    lost = await submit(client, "p-2", {"name": f"{held.name} dba {trade.name}",
                                        "country": country, "crm_account_id": crm})
    assert lost["status"] == "rejected", lost["decision"]
    third = await submit(client, "p-3", {"name": trade.name, "country": country})
    assert (third["status"], third["decision"]["rule"]) == ("approved", "no_conflict"), third
    return holder, lost, third


async def _dispute_of(client: httpx.AsyncClient, registration_id: str) -> str:
    async def found() -> str | None:
        row = await registration(client, registration_id)
        dispute: str | None = row["dispute_id"]
        return dispute

    return await eventually(found)


async def test_a_promotion_weighs_the_names_its_rejection_took_back(
    client: httpx.AsyncClient,
) -> None:
    """Attack: get T while it is nobody's, then let the undone rejection bring it back.
    After p-3 held T, p-1 withdrew and p-2's "B dba T" was promoted (`promote_next`):
    approved outright, its T filed again under B's key -- two partners held T (a fourth
    filing of T was weighed against both), and nobody had weighed p-2 against p-3: a
    promotion looked at its key and links only. It now weighs the names it brings back as
    a newcomer's: p-3's T (a name-only key beside B's CRM id, `match.name_only: review`)
    is a possible duplicate, so p-2 waits for a person with p-3 in its dispute."""
    holder, lost, third = await _trade_name_taken_while_rejected(client, 3001, "ACC-300112")
    withdrawn = await client.post(f"/v1/registrations/{holder['id']}/withdraw", headers=WAIT)
    assert withdrawn.status_code == 200, withdrawn.text
    await status_becomes(client, lost["id"], "in_review")
    dispute = await _dispute_of(client, lost["id"])
    assert (await registration(client, third["id"]))["dispute_id"] == dispute
    assert (await registration(client, third["id"]))["status"] == "approved"


async def test_a_contest_weighs_the_names_its_rejection_took_back(
    client: httpx.AsyncClient,
) -> None:
    """As above, undone by a contest: p-2 contests losing to p-1 and the dispute weighed
    p-1 alone; the person's award approved p-2 and filed T again beside p-3's T -- two
    holders of T nobody weighed together. The contest now draws p-3 in (a possible
    duplicate of the names brought back), so the person decides with it in view."""
    _, lost, third = await _trade_name_taken_while_rejected(client, 3002, "ACC-300215")
    contested = await client.post(f"/v1/registrations/{lost['id']}/disputes", headers=WAIT,
                                  json={"reason": "we met the buyer first"})
    assert contested.status_code in (200, 201, 202), contested.text
    await status_becomes(client, lost["id"], "in_review")
    dispute = await _dispute_of(client, lost["id"])
    assert (await registration(client, third["id"]))["dispute_id"] == dispute
    fourth = await submit(client, "p-4", {"name": companies(2, seed=3002)[1].name,
                                          "country": companies(2, seed=3002)[0].country})
    assert third["id"] in weighed(fourth), fourth["decision"]


async def test_a_holder_that_left_its_country_out_may_give_it_later(settings: Settings
                                                                   ) -> None:
    """Attack on `countryless_names: ask` with `rejected_names: unfiled`: a holder filed
    its name without a country (it asks but does not hold: a namesake with a country and
    another CRM id is approved beside it), and the remedy DESIGN.md gives -- "a holder that
    wants its name to protect it gives the country" -- was out of reach: filing again with
    the country was rejected as its own duplicate and the name in that country taken back
    with it (withdrawing to file afresh meets the re-registration cool-off). A rival then
    registered the name in that country under another CRM id, approved `no_conflict`,
    unseen. Giving the country to a name the key already has now stays filed, in the
    adjudicator, the edge and the directory read model (a restart between), on both
    backends."""
    (quiet,) = companies(1, seed=3010)
    account = {"name": quiet.name, "crm_account_id": "CRM-QUIET-3010"}
    async with running(settings) as (client, _):
        held = await submit(client, "p-1", account)
        assert held["status"] == "approved", held
        again = await submit(client, "p-1", {**account, "country": quiet.country})
        assert (again["status"], again["decision"]["rule"]) == ("rejected", "duplicate")
        rival = await submit(client, "p-2", {"name": quiet.name, "country": quiet.country,
                                             "crm_account_id": "CRM-RIVAL-3010"})
        assert (rival["status"], rival["decision"]["rule"]) == (
            "in_review", "possible_duplicate"), rival["decision"]
        assert held["id"] in weighed(rival), rival["decision"]
    async with running(settings) as (client, queries):
        async def owned() -> list[str] | None:
            keys = await _owner_keys(queries, quiet.name, quiet.country)
            return keys if held["account_key"] in keys else None

        await eventually(owned)
        later = await submit(client, "p-3", {"name": quiet.name, "country": quiet.country,
                                             "crm_account_id": "CRM-LATER-3010"})
        assert later["status"] != "approved", later["decision"]
        assert held["id"] in weighed(later), later["decision"]


async def test_a_promotion_weighs_the_names_taken_back_after_a_restart(settings: Settings
                                                                      ) -> None:
    """The promotion attack with a restart between the rejection and the holder's
    withdrawal, on both backends: the adjudicator rebuilt from its snapshot and log still
    knows which names the rejection took back (`Entry.unfiled`), so the promoted filing
    waits for a person beside the partner that came to hold T meanwhile."""
    async with running(settings) as (client, _):
        holder, lost, third = await _trade_name_taken_while_rejected(
            client, 3003, "ACC-300307")
    async with running(settings) as (client, queries):
        withdrawn = await client.post(f"/v1/registrations/{holder['id']}/withdraw",
                                      headers=WAIT)
        assert withdrawn.status_code == 200, withdrawn.text
        await status_becomes(queries, lost["id"], "in_review")
        dispute = await _dispute_of(queries, lost["id"])
        assert (await registration(queries, third["id"]))["dispute_id"] == dispute


async def test_a_countryless_rival_meets_a_holder_of_its_spelling_with_a_foreign_qualifier(
        settings: Settings) -> None:
    """Session 30 (fairopen): a holder filed in the US as "Qorvantis Robotics Corp (UK)"
    ("qorvantis robotics corp uk": a qualifier naming another country is part of the
    name); a rival filing that very spelling without a country read it as "qorvantis
    robotics" (any country's qualifier dropped) and matched nothing -- approved
    `no_conflict`, where giving US met the holder exactly. A country-less name is now also
    weighed as each country reads its spelling (`countryless_readings`), by the adjudicator
    and by the edge's fall-back query alike: a restart between, so the edge asks the
    directory tables, on both backends."""
    spelling = "Qorvantis Robotics Corp (UK)"
    async with running(settings) as (client, _):
        held = await submit(client, "p-1", {"name": spelling, "country": "US",
                                            "crm_account_id": "CRM-QORV-US"})
        assert held["status"] == "approved", held
    async with running(settings) as (client, _):
        rival = await submit(client, "p-2", {"name": spelling,
                                             "crm_account_id": "CRM-QORV-RIVAL"})
        assert rival["status"] != "approved", rival["decision"]
        assert held["id"] in weighed(rival), rival["decision"]
