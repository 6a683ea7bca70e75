"""Session 29 second rival review: session 29's own fairness changes (a rejected filing's
names taken back, a holder's close past a pending row) attacked by a rival partner through
the HTTP API on the embedded backend. Each test here failed before its fix."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import httpx

from dealreg.app import create_app
from shared.settings import Settings
from tests.e2e import test_rival_fairness as rival_fairness
from tests.e2e.conftest import ADMIN, _serve
from tests.e2e.test_rival_fairness import (
    companies,
    crm_close,
    registration,
    status_becomes,
    submit,
    submit_ref,
    weighed,
)

WAIT = rival_fairness.WAIT
client = rival_fairness.client  # the same embedded app fixture


async def test_a_pending_row_filed_first_never_takes_the_crm_s_re_sent_close(
    client: httpx.AsyncClient,
) -> None:
    """A rival files the customer without a country under the opportunity's reference
    first (it waits for a person); the holder registers it under that reference and is
    approved; the CRM closes the reference won, and the close ends the holder's row (a
    row in review no longer blocks it). The CRM then re-sent the close (an amount
    update): the rival's row in review was the one closable row and was closed `won`,
    the holder's win and incumbency taken by a row that never held anything. Now a row
    still pending beside another partner's closed row is never chosen (422)."""
    known, customer = companies(2, seed=53)
    named = await submit(client, "p-3", {"name": known.name, "country": known.country})
    assert named["status"] == "approved", named
    waiting = await submit_ref(client, "p-1", {"name": known.name,
                                               "crm_account_id": "CRM-OPP-56001"},
                               "OPP-56001")
    assert waiting["status"] == "in_review", waiting["decision"]
    holder = await submit_ref(client, "p-2", {"name": customer.name,
                                              "country": customer.country,
                                              "domain": customer.domains[0]}, "OPP-56001")
    assert holder["status"] == "approved", holder
    first = await crm_close(client, "OPP-56001", "won", "e-56001")
    assert first["status"] == "accepted", first
    await status_becomes(client, holder["id"], "won")
    again = await crm_close(client, "OPP-56001", "won", "e-56002")
    assert again["status"] != "accepted", again
    assert (await registration(client, waiting["id"]))["status"] == "in_review"
    assert (await registration(client, holder["id"]))["status"] == "won"


async def test_a_rejected_filing_approved_later_has_its_names_again(
    client: httpx.AsyncClient,
) -> None:
    """A filing rejected at its decision has the names it brought taken back (session 29).
    Partner p-2 files "B dba T" under the CRM id p-1 holds B by and loses to p-1 (first to
    file): "T" is taken back from B's key. p-1 withdraws and p-2's registration is
    promoted (policy `release: promote_next`; a contest approves it as well). It holds
    B, whose trade name T was no name of B's key any more: a third partner registering T
    by name alone was approved `no_conflict` beside p-2, unseen. An approval (or a
    review) files the names its rejection took back, at the edge and in the adjudicator."""
    put = await client.put("/v1/policy", json={"tie_window": "PT0S"})
    assert put.status_code in (200, 201), put.text
    held, trade = companies(2, seed=61)
    country = held.country
    crm = "ACC-61001"
    holder = await submit(client, "p-1", {"name": held.name, "country": country,
                                          "crm_account_id": crm})
    assert holder["status"] == "approved", holder
    lost = await submit(client, "p-2", {"name": f"{held.name} dba {trade.name}",
                                        "country": country, "crm_account_id": crm})
    assert lost["status"] == "rejected", lost["decision"]
    withdrawn = await client.post(f"/v1/registrations/{holder['id']}/withdraw", headers=WAIT)
    assert withdrawn.status_code == 200, withdrawn.text
    # The policy's release (`promote_next`) approves the one it beat; a contest would too.
    await status_becomes(client, lost["id"], "approved")
    newcomer = await submit(client, "p-3", {"name": trade.name, "country": country})
    assert lost["id"] in weighed(newcomer), newcomer["decision"]
    assert newcomer["status"] != "approved", newcomer["decision"]


async def test_a_rejected_filing_approved_later_has_its_names_again_after_a_restart(
    tmp_path: Path,
) -> None:
    """As above, with a restart after the promotion: the directory read model removed
    the rejected "B dba T"'s T (`unfiled_names`) and nothing filed it back, so the edge,
    warmed from the directory, resolved a third partner's name-only T to a key of its
    own and it was approved `no_conflict` beside the promoted holder of B. The approving
    decision lists the names filed again (`refiled_names`) and the directory files them."""
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN)
    held, trade = companies(2, seed=61)
    country = held.country
    crm = "ACC-61002"
    async with AsyncExitStack() as stack:
        client = await _serve(stack, create_app(settings))
        put = await client.put("/v1/policy", json={"tie_window": "PT0S"})
        assert put.status_code in (200, 201), put.text
        holder = await submit(client, "p-1", {"name": held.name, "country": country,
                                              "crm_account_id": crm})
        assert holder["status"] == "approved", holder
        lost = await submit(client, "p-2", {"name": f"{held.name} dba {trade.name}",
                                            "country": country, "crm_account_id": crm})
        assert lost["status"] == "rejected", lost["decision"]
        withdrawn = await client.post(f"/v1/registrations/{holder['id']}/withdraw",
                                      headers=WAIT)
        assert withdrawn.status_code == 200, withdrawn.text
        await status_becomes(client, lost["id"], "approved")
    async with AsyncExitStack() as stack:
        client = await _serve(stack, create_app(settings))
        owners = await client.get("/v1/ownership", params={"name": trade.name,
                                                           "country": country})
        assert owners.status_code == 200, owners.text
        assert owners.json()["account_key"] == lost["account_key"], owners.json()
        newcomer = await submit(client, "p-3", {"name": trade.name, "country": country})
        assert lost["id"] in weighed(newcomer), newcomer["decision"]
        assert newcomer["status"] != "approved", newcomer["decision"]
