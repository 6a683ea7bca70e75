"""Session 29 fairness decisions through the HTTP API on both backends (the embedded one on
SQLite, the distributed one on Kafka and PostgreSQL), with the seeded Faker companies of
`tests/support/companies.py`. Each test here failed before its change."""

from __future__ import annotations

from tests.e2e.conftest import System
from tests.e2e.test_rival_fairness import (
    companies,
    crm_close,
    registration,
    status_becomes,
    submit,
    submit_ref,
    weighed,
)


async def test_a_row_in_review_filed_first_does_not_block_the_holder_s_crm_close(
    system: System,
) -> None:
    """A partner files a name without a country under a CRM opportunity's reference; it
    waits for a person (a possible duplicate of a holder elsewhere). Another partner then
    registers the opportunity's customer under that reference and is approved. The CRM's
    close by the reference was a 422 (a closable row of another partner filed first): the
    holder's win never recorded while the other waited. A row in review holds nothing, so
    the close now ends the holder's registration, and the row in review stays in review."""
    client, reads = system.commands, system.queries
    known, customer = companies(2, seed=53)
    named = await submit(client, "p-3", {"name": known.name, "country": known.country})
    assert named["status"] == "approved", named
    waiting = await submit_ref(client, "p-1", {"name": known.name,
                                               "crm_account_id": "CRM-OPP-55001"},
                               "OPP-55001")
    assert (waiting["status"], waiting["decision"]["rule"]) == (
        "in_review", "possible_duplicate"), waiting["decision"]
    holder = await submit_ref(client, "p-2", {"name": customer.name,
                                              "country": customer.country,
                                              "domain": customer.domains[0]}, "OPP-55001")
    assert holder["status"] == "approved", holder
    result = await crm_close(client, "OPP-55001", "won", "e-55001")
    assert result["status"] == "accepted", result
    await status_becomes(reads, holder["id"], "won")
    assert (await registration(reads, waiting["id"]))["status"] == "in_review"
    assert named["id"] in weighed(waiting)


async def test_a_rejected_filing_adds_no_trade_name_to_its_customer(system: System) -> None:
    """Partner p-2 holds customer B by its domain and files "B dba A" with B's domain (A:
    another partner's customer, held by domain): rejected as p-2's own duplicate, yet its
    names stayed filed, so A's name became a name of B's key and a later name-only filing
    of A was weighed against p-2's B registration too (session 28 rival review). A filing
    that never held anything now adds no names that join customers: the newcomer is
    weighed against A's holder alone."""
    client = system.commands
    first, second = companies(2, seed=59)
    country = first.country
    a_holder = await submit(client, "p-1", {"name": first.name, "country": country,
                                            "domain": first.domains[0]})
    b_holder = await submit(client, "p-2", {"name": second.name, "country": country,
                                            "domain": second.domains[0]})
    assert a_holder["status"] == b_holder["status"] == "approved", (a_holder, b_holder)
    rejected = await submit(client, "p-2", {"name": f"{second.name} dba {first.name}",
                                            "country": country,
                                            "domain": second.domains[0]})
    assert (rejected["status"], rejected["decision"]["rule"]) == (
        "rejected", "duplicate"), rejected["decision"]
    newcomer = await submit(client, "p-3", {"name": first.name, "country": country})
    assert a_holder["id"] in weighed(newcomer), newcomer["decision"]
    assert b_holder["id"] not in weighed(newcomer), newcomer["decision"]
