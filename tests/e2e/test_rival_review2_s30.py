"""Session 30 rival review, second round: the session's own fairness fixes (t/a and aka
read as dba; settlements' name evidence by countries_weighed; undone rejections weigh the
names they bring back; a country-less holder gives its country later) attacked by a rival
partner through the HTTP API (embedded backend unless a test says both). Each test here
failed before its fix."""

from __future__ import annotations

import httpx

from shared.settings import Settings
from tests.e2e import test_rival_fairness as rival_fairness
from tests.e2e.test_rejected_names_read_model import _owner_keys, running
from tests.e2e.test_rejected_names_read_model import settings as settings
from tests.e2e.test_rival_fairness import companies, registration, status_becomes, submit, weighed
from tests.integration.registration.harness import eventually

WAIT = rival_fairness.WAIT
client = rival_fairness.client  # the same embedded app fixture


async def _not_owned_by(client: httpx.AsyncClient, name: str, country: str, key: str,
                        holder_key: str) -> None:
    async def settled() -> list[str] | None:
        keys = await _owner_keys(client, name, country)
        return keys if holder_key in keys else None

    keys = await eventually(settled)
    assert key not in keys, keys


async def test_a_squat_in_review_gives_no_country_beside_its_holder(
    client: httpx.AsyncClient,
) -> None:
    """Attack on "a holder that left its country out may give it later": H holds a name in
    DE by name alone; p-2's country-less filing of it with a made-up CRM id waits in review
    beside H (asks, never confidently). p-2 then files the name again with DE under that
    CRM id: rejected as its own duplicate, and -- its key having the name without a
    country -- the DE form was kept. The key thus held H's name in DE, a name no filing of
    p-2's was ever approved for: even after a person awarded H, `GET /v1/ownership` of
    the name in DE answered p-2's made-up key alone. Giving the country beside another
    key's name in that country now takes it back (`AccountIndex.taken_back_if_rejected`)."""
    # (The made-up CRM id's key shares the holder's adjudicator partition: see the last
    # paragraph of DESIGN.md's second round for a holder on another one.)
    (quiet,) = companies(1, seed=3110)
    holder = await submit(client, "p-1", {"name": quiet.name, "country": quiet.country})
    assert holder["status"] == "approved", holder
    squat = await submit(client, "p-2", {"name": quiet.name, "crm_account_id": "CRM-X-10"})
    assert (squat["status"], squat["decision"]["rule"]) == (
        "in_review", "possible_duplicate"), squat["decision"]
    again = await submit(client, "p-2", {"name": quiet.name, "country": quiet.country,
                                         "crm_account_id": "CRM-X-10"})
    assert again["status"] == "rejected", again["decision"]
    dispute = (await registration(client, squat["id"]))["dispute_id"]
    resolved = await client.post(f"/v1/disputes/{dispute}/resolve", headers=WAIT,
                                 json={"outcome": "award", "registration_id": holder["id"]})
    assert resolved.status_code in (200, 202), resolved.text
    await status_becomes(client, squat["id"], "rejected")
    await _not_owned_by(client, quiet.name, quiet.country, squat["account_key"],
                        holder["account_key"])


async def test_a_country_less_name_given_its_country_later_takes_no_holder_s_name(
    client: httpx.AsyncClient,
) -> None:
    """Attack: p-2 files a name without a country under a made-up CRM id, approved (nobody
    holds it); H then registers the name in DE by name alone, approved `no_conflict` (a
    country-less name asks but does not hold). p-2 "gives the country later": its DE
    filing is rejected as its own duplicate and the DE form was kept, so p-2's key held
    H's name in DE without anyone weighing it (a fresh filing of it in DE would wait for a
    person beside H): the ownership look-up answered p-2's key, and a later name-only DE
    filing was weighed against p-2's registration too. The form is now taken back."""
    (quiet,) = companies(1, seed=3111)  # one partition, as above
    squat = await submit(client, "p-2", {"name": quiet.name, "crm_account_id": "CRM-X-20"})
    assert squat["status"] == "approved", squat["decision"]
    holder = await submit(client, "p-1", {"name": quiet.name, "country": quiet.country})
    assert (holder["status"], holder["decision"]["rule"]) == (
        "approved", "no_conflict"), holder["decision"]
    again = await submit(client, "p-2", {"name": quiet.name, "country": quiet.country,
                                         "crm_account_id": "CRM-X-20"})
    assert again["status"] == "rejected", again["decision"]
    await _not_owned_by(client, quiet.name, quiet.country, squat["account_key"],
                        holder["account_key"])
    later = await submit(client, "p-3", {"name": quiet.name, "country": quiet.country})
    assert squat["id"] not in weighed(later), later["decision"]


async def test_a_marker_in_quotes_or_with_a_colon_is_the_holder_s_customer(
    client: httpx.AsyncClient,
) -> None:
    """Attack on "t/a and aka read as dba": p-1 holds a company by its name alone; a rival
    filed "<name> AKA: Rocket Cafe" or '<name> "t/a" Rocket Cafe' (name only, same
    country): "dba" in those spellings was read (through the folded tokens), "t/a" and
    "aka" were not, so each was one odd name ("... aka rocket cafe"), another customer than
    the holder's, approved `no_conflict` beside it. Now read as "dba" in
    `normalize._TRADE_NAME_RAW`: the holder's customer, weighed against it."""
    (first,) = companies(1, seed=3112)
    held = await submit(client, "p-1", {"name": first.name, "country": first.country})
    assert held["status"] == "approved", held
    for partner, marker in (("p-2", "AKA:"), ("p-3", '"t/a"'), ("p-4", "\u2018a.k.a.\u2019")):
        rival = await submit(client, partner, {"name": f"{first.name} {marker} Rocket Cafe",
                                               "country": first.country})
        assert rival["account_key"] == held["account_key"], rival
        assert rival["status"] != "approved" and held["id"] in weighed(rival), \
            rival["decision"]


async def test_a_country_given_beside_a_holder_stays_taken_back_after_a_restart(
    settings: Settings,
) -> None:
    """The second attack with a restart between the rejected refiling and the look-ups, on
    both backends: the rebuilt adjudicator, the directory read model (a warmed edge, the
    ownership look-up) and the decision's `unfiled_names` agree that p-2's key does not
    hold the holder's name in its country."""
    (quiet,) = companies(1, seed=3111)  # CRM-X-20's key on the holder's partition
    async with running(settings) as (client, _):
        squat = await submit(client, "p-2", {"name": quiet.name,
                                             "crm_account_id": "CRM-X-20"})
        assert squat["status"] == "approved", squat["decision"]
        holder = await submit(client, "p-1", {"name": quiet.name, "country": quiet.country})
        assert holder["status"] == "approved", holder["decision"]
        again = await submit(client, "p-2", {"name": quiet.name, "country": quiet.country,
                                             "crm_account_id": "CRM-X-20"})
        assert again["status"] == "rejected", again["decision"]
    async with running(settings) as (client, queries):
        await _not_owned_by(queries, quiet.name, quiet.country, squat["account_key"],
                            holder["account_key"])
        later = await submit(client, "p-3", {"name": quiet.name, "country": quiet.country})
        assert squat["id"] not in weighed(later), later["decision"]
        assert holder["id"] in weighed(later), later["decision"]
