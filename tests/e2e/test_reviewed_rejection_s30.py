"""A filing in review that a person later rejects adds no names that join customers, as
one rejected at its decision (session 29 decision, implemented in session 30; policy
`match.rejected_names: unfiled`), on both backends (the embedded one on SQLite, the
distributed one on Kafka and PostgreSQL), across a restart: the twin of
`test_rival_fairness_s29.py::test_a_rejected_filing_adds_no_trade_name_to_its_customer`."""

from __future__ import annotations

from shared.settings import Settings
from tests.e2e.test_rejected_names_read_model import (  # noqa: F401 (the fixture)
    _owner_keys,
    running,
    settings,
)
from tests.e2e.test_rival_fairness import WAIT, companies, status_becomes, submit, weighed


async def test_a_filing_rejected_after_review_adds_no_trade_name_to_its_customer(
    settings: Settings,  # noqa: F811
) -> None:
    """p-1 holds A and p-2 holds B, each by its domain. p-3 files "B dba A" with B's
    domain within the tie window: it waits for a person beside p-2's B (A's name weighed
    as B's meanwhile). The person awards the review to p-2: p-3's filing is rejected, and
    A's name, which only it brought to B's key, goes from the adjudicator, the edge and
    the directory read model. Before, it stayed: the ownership look-up by A's name
    answered B's key too, and a later name-only filing of A was weighed against p-2's B
    registration (before and after a restart)."""
    first, second = companies(2, seed=67)
    country = first.country
    async with running(settings) as (client, queries):
        a_holder = await submit(client, "p-1", {"name": first.name, "country": country,
                                                "domain": first.domains[0]})
        b_holder = await submit(client, "p-2", {"name": second.name, "country": country,
                                                "domain": second.domains[0]})
        assert a_holder["status"] == b_holder["status"] == "approved", (a_holder, b_holder)
        waiting = await submit(client, "p-3", {"name": f"{second.name} dba {first.name}",
                                               "country": country,
                                               "domain": second.domains[0]})
        assert waiting["status"] == "in_review", waiting["decision"]
        assert b_holder["id"] in weighed(waiting), waiting["decision"]
        resolved = await client.post(f"/v1/disputes/{waiting['dispute_id']}/resolve",
                                     headers=WAIT, json={"outcome": "award",
                                                         "registration_id": b_holder["id"]})
        assert resolved.status_code in (200, 202), resolved.text
        await status_becomes(queries, waiting["id"], "rejected")
        await status_becomes(queries, b_holder["id"], "approved")
        owners = await _owner_keys(queries, first.name, country)
        assert a_holder["account_key"] in owners, owners
        assert b_holder["account_key"] not in owners, owners
    async with running(settings) as (client, queries):
        owners = await _owner_keys(queries, first.name, country)
        assert a_holder["account_key"] in owners, owners
        assert b_holder["account_key"] not in owners, owners
        newcomer = await submit(client, "p-4", {"name": first.name, "country": country})
        assert a_holder["id"] in weighed(newcomer), newcomer["decision"]
        assert b_holder["id"] not in weighed(newcomer), newcomer["decision"]
        # B keeps its own name.
        assert b_holder["account_key"] in await _owner_keys(queries, second.name, country)
