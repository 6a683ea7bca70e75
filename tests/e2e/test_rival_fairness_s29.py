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
