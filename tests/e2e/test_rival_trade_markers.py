"""Session 30 fairness: "t/a" (trading as) and "aka" join a legal name and a trade name as
"dba" does, through the HTTP API on both backends (the embedded one on SQLite, the
distributed one on Kafka and PostgreSQL), with the seeded Faker companies of
`tests/support/companies.py`. Failed before: each rival was approved `no_conflict` beside
the holder, unseen."""

from __future__ import annotations

from tests.e2e.conftest import System
from tests.e2e.test_rival_fairness import companies, submit, weighed
from tests.integration.registration.harness import eventually


async def test_a_trading_as_or_aka_name_is_the_holder_s_customer(system: System) -> None:
    """p-1 holds a company by its name alone; p-2 files "<name> t/a <trade>" and p-3
    "<name> AKA <trade>": the holder's customer known by a trade name, each weighed against
    the holder and not approved. The other way round, a holder filed as "<legal> T/A
    <trade>" holds the trade name: a rival's trade name alone is weighed against it, and
    the ownership look-up by the trade name finds the holder."""
    client = system.commands
    first, legal = companies(2, seed=53)
    held = await submit(client, "p-1", {"name": first.name, "country": first.country})
    assert held["status"] == "approved", held
    for partner, marker in (("p-2", "t/a"), ("p-3", "AKA")):
        rival = await submit(client, partner, {"name": f"{first.name} {marker} Rocket Cafe",
                                               "country": first.country})
        assert rival["account_key"] == held["account_key"], rival
        assert rival["status"] != "approved" and held["id"] in weighed(rival), \
            rival["decision"]

    trade = f"{first.name.split()[0]} Harbour Works"
    held = await submit(client, "p-4", {"name": f"{legal.name} T/A {trade}",
                                        "country": legal.country})
    assert held["status"] == "approved", held
    rival = await submit(client, "p-5", {"name": trade, "country": legal.country})
    assert rival["status"] != "approved" and held["id"] in weighed(rival), rival["decision"]

    async def owned_by_trade_name() -> str | None:
        answer = await system.queries.get("/v1/ownership", params={
            "name": trade, "country": legal.country})
        assert answer.status_code == 200, answer.text
        key: str | None = answer.json()["account_key"]
        return key if key == held["account_key"] else None

    assert await eventually(owned_by_trade_name) == held["account_key"]
