"""Session 27 rival review, round 2: the session's own fairness fixes attacked again
through the HTTP API on both backends, with the seeded Faker companies of
`tests/support/companies.py`. Each test here failed before its fix."""

from __future__ import annotations

from tests.e2e.conftest import System
from tests.e2e.test_rival_fairness import (
    companies,
    crm_close,
    registration,
    status_becomes,
    submit_ref,
)


async def test_a_rival_s_active_copy_of_the_reference_does_not_take_an_expired_holder_s_close(
    system: System,
) -> None:
    """A close by `external_ref` went to the one active registration carrying it, else to
    the one expired -- whoever's it was. The holder's protection ends while its deal is
    still open in the CRM; a rival registers the same customer under the holder's
    reference (approved: nothing protects the customer any more); the CRM then reports
    the holder's opportunity won, by its reference. The close went to the rival: its
    registration read `won` (the win and the incumbency the holder earned) and the
    holder's stayed `expired`. Registrations of one reference filed by different partners
    now leave the close ambiguous (422: the CRM must send `registration_id`); a partner's
    own active re-registration still takes the close before its own expired one. Both
    backends (the look-up reads the edge's read model: SQLite or PostgreSQL)."""
    client, reads = system.commands, system.queries
    put = await client.put("/v1/policy", json={"tie_window": "PT0S",
                                               "protection_period": "PT2S"})
    assert put.status_code in (200, 201), put.text
    held, own = companies(2, seed=31)
    account = {"name": held.name, "country": held.country, "domain": held.domains[0]}
    holder = await submit_ref(client, "p-1", account, "OPP-88001")
    assert holder["status"] == "approved", holder
    await status_becomes(reads, holder["id"], "expired")
    rival = await submit_ref(client, "p-2", account, "OPP-88001")
    assert rival["status"] == "approved", rival
    result = await crm_close(client, "OPP-88001", "won", "e-88001")
    assert (result["status"], result["http_status"]) == ("rejected", 422), result
    assert (await registration(reads, rival["id"]))["status"] == "approved"
    assert (await registration(reads, holder["id"]))["status"] == "expired"

    # One partner's own re-registration of the opportunity after its first expired.
    account = {"name": own.name, "country": own.country, "domain": own.domains[0]}
    first = await submit_ref(client, "p-3", account, "OPP-88002")
    await status_becomes(reads, first["id"], "expired")
    again = await submit_ref(client, "p-3", account, "OPP-88002", products=["crm"])
    assert again["status"] == "approved", again
    result = await crm_close(client, "OPP-88002", "lost", "e-88002")
    assert result["status"] == "accepted", result
    await status_becomes(reads, again["id"], "lost")
    assert (await registration(reads, first["id"]))["status"] == "expired"
