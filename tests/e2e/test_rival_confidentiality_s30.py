"""Session 30 rival review (confidentiality): a partner, with only the public API, tries to
read when a rival acted finer than the program allows (rivals' moments to the hour; a
dispute's deadlines on `escalation.deadline_unit`). Embedded backend, two or three
partners, each with its own API key. Each test here failed before its fix."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.e2e import test_rival_fairness as rival_fairness
from tests.e2e.test_rival_fairness import companies

WAIT = rival_fairness.WAIT
client = rival_fairness.client  # the same embedded app fixture


async def as_partner(client: httpx.AsyncClient, partner: str) -> dict[str, str]:
    """`partner`'s own API key, as a header (the partner acts and reads for itself)."""
    put = await client.put(f"/v1/partners/{partner}", json={
        "name": partner, "type": "reseller", "tier": "gold", "status": "active"})
    assert put.status_code in (200, 201), put.text
    minted = await client.post("/v1/api-keys", json={"role": "partner", "subject_id": partner,
                                                     "name": partner})
    assert minted.status_code == 201, minted.text
    return {"Authorization": f"Bearer {minted.json()['token']}"}


async def register(client: httpx.AsyncClient, key: dict[str, str], partner: str,
                   account: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/registrations", headers={**WAIT, **key}, json={
        "partner_id": partner, "account": account,
        "opportunity": {"title": "Rollout", "products": ["analytics"]}, "motion": "resell"})
    assert response.status_code == 201, response.text
    decided: dict[str, Any] = response.json()
    return decided


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def moments(value: Any) -> list[str]:
    """Every ISO 8601 moment anywhere in a JSON value."""
    if isinstance(value, dict):
        return [m for item in value.values() for m in moments(item)]
    if isinstance(value, list):
        return [m for item in value for m in moments(item)]
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" \
            and value[10:11] == "T":
        return [value]
    return []


async def what_a_partner_reads(client: httpx.AsyncClient, key: dict[str, str],
                               registration_id: str, dispute_id: str) -> dict[str, Any]:
    """Everything the partner's own key reads about its registration and the dispute."""
    seen: dict[str, Any] = {}
    for url in (f"/v1/registrations/{registration_id}",
                f"/v1/registrations/{registration_id}/timeline",
                f"/v1/disputes/{dispute_id}", "/v1/disputes", "/v1/registrations"):
        response = await client.get(url, headers=key)
        assert response.status_code == 200, (url, response.text)
        seen[url] = response.json()
    return seen


def assert_no_rival_moment(seen: dict[str, Any], rival_at: str) -> None:
    """Nothing the partner reads tells the rival's moment finer than the hour: no moment
    equal to it, none but whole hours after it (the dispute's opening, reminder and
    deadlines count from it), and no event id stamped with it (a ULID's 48-bit
    millisecond time)."""
    exact = at(rival_at)
    for moment in moments(seen):
        if at(moment) >= exact:
            assert at(moment) != exact, (moment, seen)
            assert (at(moment) - exact).total_seconds() % 3600 != 0 \
                or at(moment).minute == at(moment).second == 0, (moment, seen)
    text = json.dumps(seen)
    assert rival_at.rstrip("Z")[:26] not in text
    millis = int(exact.timestamp() * 1000)
    stamped = _ulid_time_prefix(millis)
    assert stamped not in text.lower(), (stamped, seen)


_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _ulid_time_prefix(millis: int) -> str:
    """The first 10 characters of a ULID stamped at `millis` (its time part)."""
    out = ""
    for _ in range(10):
        out = _CROCKFORD[millis % 32] + out
        millis //= 32
    return out


async def test_a_holder_does_not_read_when_a_rival_tied_with_it(
    client: httpx.AsyncClient,
) -> None:
    """p-1 holds the customer; p-2 registers it inside the tie window and a dispute opens
    over both. The dispute opened at p-2's submission: p-1 read its `opened_at`, its
    level-1 `reminder_at` (the opening plus the SLA less `reminder_before`) and its
    timeline's `dispute.opened` entry (`at`, `opened_at`, `reminder_at`, and an event id
    whose ULID is p-2's submission event's, stamped to the millisecond) to the
    microsecond: when its rival registered, which a competitor's `protected_until`
    (rounded up to the hour) and a late joiner's view of the same dispute hide. Now a
    dispute opened over a partner's registration at none of its own acts reads like a
    late joiner's: opened and deadlines to the hour, no reminder, an opaque event id. The
    rival that opened it reads its own opening exactly. `GET /v1/ownership?as_of=` counted
    the dispute among p-1's open disputes from p-2's submission on (look-ups either side
    bisected it): now from the hour after."""
    (target,) = companies(1, seed=301)
    account = {"name": target.name, "domain": target.domains[0], "country": target.country}
    k1, k2 = await as_partner(client, "p-1"), await as_partner(client, "p-2")
    held = await register(client, k1, "p-1", account)
    assert held["status"] == "approved", held
    rival = await register(client, k2, "p-2", account)
    assert rival["status"] == "in_review" and rival["dispute_id"], rival["decision"]
    dispute = rival["dispute_id"]

    seen = await what_a_partner_reads(client, k1, held["id"], dispute)
    shown = seen[f"/v1/disputes/{dispute}"]
    assert shown["status"] == "open" and shown["registration_ids"] == [held["id"]], shown
    assert at(shown["opened_at"]).minute == at(shown["opened_at"]).second == 0, shown
    assert shown["reminder_at"] is None, shown
    assert_no_rival_moment(seen, rival["submitted_at"])

    # Look-ups in the past either side of the rival's submission bisected it: the dispute
    # counted among p-1's open disputes from that microsecond. Now from the hour after.
    async def listed(moment: datetime) -> bool:
        look = await client.get("/v1/ownership", headers=k1, params={
            "domain": target.domains[0], "as_of": moment.isoformat()})
        assert look.status_code == 200, look.text
        return dispute in look.json()["open_disputes"]

    opened = at(rival["submitted_at"])
    assert not await listed(opened)
    assert not await listed(opened + timedelta(microseconds=1))
    hour = opened.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert not await listed(hour - timedelta(microseconds=1))
    assert await listed(hour)

    # The rival reads the dispute its own submission opened exactly.
    own = (await client.get(f"/v1/disputes/{dispute}", headers=k2)).json()
    assert at(own["opened_at"]) == at(rival["submitted_at"]), own
    assert own["reminder_at"] is not None, own


async def test_a_holder_does_not_read_when_a_rival_contested_losing_to_it(
    client: httpx.AsyncClient,
) -> None:
    """p-2 loses to p-1 (first to submit, no tie window) and contests; the contest opens a
    dispute over p-1's approval at the moment p-2 contested. p-1 read that moment to the
    microsecond in the dispute and its timeline. Now to the hour; p-2 reads its own
    contest's opening exactly. A third partner, p-3, never sees the dispute (404)."""
    put = await client.put("/v1/policy", json={"tie_window": "PT0S"})
    assert put.status_code in (200, 201), put.text
    (target,) = companies(1, seed=302)
    account = {"name": target.name, "domain": target.domains[0], "country": target.country}
    k1, k2, k3 = (await as_partner(client, "p-1"), await as_partner(client, "p-2"),
                  await as_partner(client, "p-3"))
    held = await register(client, k1, "p-1", account)
    assert held["status"] == "approved", held
    lost = await register(client, k2, "p-2", account)
    assert (lost["status"], lost["decision"]["rule"]) == ("rejected", "first_submitted"), lost
    contest = await client.post(f"/v1/registrations/{lost['id']}/disputes",
                                headers={**WAIT, **k2}, json={"reason": "we sourced it"})
    assert contest.status_code == 201, contest.text
    dispute = contest.json()["id"]
    filed = next(e for e in (await client.get(f"/v1/registrations/{lost['id']}/timeline",
                                              headers=k2)).json()["entries"]
                 if e["type"] == "dealreg.dispute.filed.v1")

    seen = await what_a_partner_reads(client, k1, held["id"], dispute)
    assert seen[f"/v1/disputes/{dispute}"]["reminder_at"] is None, seen
    assert_no_rival_moment(seen, filed["at"])

    own = (await client.get(f"/v1/disputes/{dispute}", headers=k2)).json()
    assert at(own["opened_at"]) == at(filed["at"]), own
    outsider = await client.get(f"/v1/disputes/{dispute}", headers=k3)
    assert outsider.status_code == 404, outsider.text
