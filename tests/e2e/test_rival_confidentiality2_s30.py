"""Session 30 rival review, second round (confidentiality): a partner, with only the
public API, tries to read a rival's moment through the edges of `partner_view.entered_by`
(fixtures of `test_rival_confidentiality_s30`). Each test here failed before its fix."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tests.e2e.test_rival_confidentiality_s30 import (
    WAIT,
    as_partner,
    assert_no_rival_moment,
    at,
    client,
    what_a_partner_reads,
)
from tests.e2e.test_rival_fairness import companies

__all__ = ["client"]


async def register(client: httpx.AsyncClient, key: dict[str, str], partner: str,
                   account: dict[str, Any], products: list[str]) -> dict[str, Any]:
    response = await client.post("/v1/registrations", headers={**WAIT, **key}, json={
        "partner_id": partner, "account": account,
        "opportunity": {"title": "Rollout", "products": products}, "motion": "resell"})
    assert response.status_code == 201, response.text
    decided: dict[str, Any] = response.json()
    return decided


async def test_a_holder_drawn_into_rivals_dispute_does_not_read_when_the_rival_came(
    client: httpx.AsyncClient,
) -> None:
    """p-1 holds the customer for analytics; p-2 holds it for crm and p-4 ties with p-2
    (a dispute over those two, not p-1). p-3 then registers it for analytics and crm: it
    ties with both, joins their dispute, and draws p-1's approval in beside it
    (`dealreg.dispute.joined.v1`, p-1 among `added_ids`). p-1 entered the dispute at
    p-3's submission, a rival's act, but `entered_by` rounded only openings: p-1 read the
    dispute's `opened_at`, its timeline's opening (`at`, `opened_at`, and an event id
    with p-3's intake ULID) and the `as_of` look-up to p-3's microsecond. Now a joining
    at none of its own acts is entered at the hour after, as an opening is; p-3, whose
    own submission joined, reads its entry exactly."""
    (target,) = companies(1, seed=303)
    account = {"name": target.name, "domain": target.domains[0], "country": target.country}
    k1, k2, k3, k4 = (await as_partner(client, "p-1"), await as_partner(client, "p-2"),
                      await as_partner(client, "p-3"), await as_partner(client, "p-4"))
    held = await register(client, k1, "p-1", account, ["analytics"])
    assert held["status"] == "approved", held
    assert (await register(client, k2, "p-2", account, ["crm"]))["status"] == "approved"
    tied = await register(client, k4, "p-4", account, ["crm"])
    assert tied["status"] == "in_review", tied["decision"]
    rival = await register(client, k3, "p-3", account, ["analytics", "crm"])
    assert rival["dispute_id"] == tied["dispute_id"], rival["decision"]
    dispute = rival["dispute_id"]

    seen = await what_a_partner_reads(client, k1, held["id"], dispute)
    shown = seen[f"/v1/disputes/{dispute}"]
    assert shown["registration_ids"] == [held["id"]], shown
    assert at(shown["opened_at"]).minute == at(shown["opened_at"]).second == 0, shown
    assert shown["reminder_at"] is None, shown
    assert_no_rival_moment(seen, rival["submitted_at"])

    async def listed(moment: Any) -> bool:
        look = await client.get("/v1/ownership", headers=k1, params={
            "domain": target.domains[0], "as_of": moment.isoformat()})
        assert look.status_code == 200, look.text
        return dispute in look.json()["open_disputes"]

    joined = at(rival["submitted_at"])
    hour = joined.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert not await listed(joined + timedelta(microseconds=1))
    assert not await listed(hour - timedelta(microseconds=1))
    assert await listed(hour)

    # p-3's own submission joined: its entry is its own moment.
    own = (await client.get(f"/v1/disputes/{dispute}", headers=k3)).json()
    assert at(own["opened_at"]) == joined, own
