"""A staff command (acknowledge, resolve) the adjudicator refuses is not answered as if it
worked, on both backends: waited for, it is a 409 problem naming the refusal's reason;
not waited for (202), the dispute's GET says the latest command was refused and why.
Found by the session 27 rival review (`test_an_award_to_a_member_that_left_changes_nothing`):
a stale award naming a member that withdrew was answered 202 with the dispute still open
and no word of the refusal. Both tests here failed before the fix."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.projections.system_support import (
    Running,
    registration,
    running,
    submit,
)
from tests.integration.registration.harness import eventually

REFUSED = "https://dealreg.dev/problems/dispute-command-refused"


@pytest.fixture(scope="module", params=["embedded", "distributed"])
async def system(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    async with running(request.param, request, tmp_path_factory.mktemp("staff")) as system:
        yield system


async def three_way(system: Running, partners: tuple[str, str, str]
                    ) -> tuple[str, str, str, str]:
    """Three partners' registrations of one account in one dispute; the second withdraws
    (it leaves the dispute, which goes on between the other two). Returns the dispute and
    the three registration ids."""
    domain = f"staff-{uuid.uuid4().hex[:8]}.com"
    ids = [(await submit(system.admin, registration(p, domain)))["id"] for p in partners]
    await system.settle()
    staff = await system.queries("channel_manager", "cm")
    rows = [(await staff.get(f"/v1/registrations/{r}")).json() for r in ids]
    disputes = {r["dispute_id"] for r in rows}
    assert len(disputes) == 1 and None not in disputes, rows
    [dispute] = disputes
    partner = (await system.as_("partner", partners[1]))[0]
    withdrawn = await partner.post(f"/v1/registrations/{ids[1]}/withdraw",
                                   headers={"Prefer": "wait=15"})
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn", withdrawn.text
    await system.settle()
    shown = (await staff.get(f"/v1/disputes/{dispute}")).json()
    assert shown["status"] == "open", shown
    return dispute, ids[0], ids[1], ids[2]


async def test_a_waited_stale_award_is_refused_not_answered_as_pending(
        system: Running) -> None:
    dispute, _first, left, third = await three_way(system, ("p-1", "p-2", "p-3"))
    owner = (await system.as_("owner", "cm-1"))[0]
    for body in ({"outcome": "award", "registration_id": left},
                 {"outcome": "split", "splits": [
                     {"registration_id": left, "percent": "50"},
                     {"registration_id": third, "percent": "50"}]}):
        answer = await owner.post(f"/v1/disputes/{dispute}/resolve",
                                  headers={"Prefer": "wait=15"}, json=body)
        assert answer.status_code == 409, answer.text
        problem = answer.json()
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert problem["type"] == REFUSED, problem
        assert "invalid_resolution" in problem["detail"], problem
        assert "nothing changed" in problem["detail"], problem
        assert answer.headers["Location"] == f"/v1/disputes/{dispute}"
    # Nothing was settled by the refused awards; the right one still decides.
    still = (await (await system.queries("owner", "cm-1")).get(f"/v1/disputes/{dispute}")).json()
    assert still["status"] == "open", still
    award = await owner.post(f"/v1/disputes/{dispute}/resolve", headers={"Prefer": "wait=15"},
                             json={"outcome": "award", "registration_id": third})
    assert award.status_code == 200, award.text
    assert award.json()["resolution"]["outcome"] == "award", award.text


async def test_a_stale_award_not_waited_for_shows_its_refusal_on_the_dispute(
        system: Running) -> None:
    dispute, _first, left, third = await three_way(system, ("p-4", "p-5", "p-6"))
    owner, owner_reads = await system.as_("owner", "cm-1")
    answer = await owner.post(f"/v1/disputes/{dispute}/resolve",
                              json={"outcome": "award", "registration_id": left})
    assert answer.status_code == 202, answer.text

    async def refused() -> dict[str, Any] | None:
        shown: dict[str, Any] = (await owner_reads.get(f"/v1/disputes/{dispute}")).json()
        return shown if shown.get("last_refusal") else None

    shown = await eventually(refused)
    refusal = shown["last_refusal"]
    assert shown["status"] == "open"
    assert (refusal["action"], refusal["reason"]) == ("resolve", "invalid_resolution"), refusal
    assert third in refusal["explanation"] and left not in refusal["explanation"], refusal
    assert refusal["actor_id"] == "cm-1"
    # The owner's queue and the channel manager's list say so too, as the GET does.
    for reader in (owner_reads, await system.queries("channel_manager", "cm")):
        listed = (await reader.get("/v1/disputes", params={"status": "open",
                                                            "limit": 500})).json()["items"]
        [item] = [d for d in listed if d["id"] == dispute]
        assert item["last_refusal"] == refusal, item
    # A partner of the dispute never reads an owner's refused command, in neither.
    partner = await system.queries("partner", "p-6")
    assert (await partner.get(f"/v1/disputes/{dispute}")).json()["last_refusal"] is None
    mine = (await partner.get("/v1/disputes")).json()["items"]
    assert [d["last_refusal"] for d in mine if d["id"] == dispute] == [None], mine
    assert refusal["command_id"] not in str(mine)
    # The next command applied: the refusal is history (the timeline keeps it).
    award = await owner.post(f"/v1/disputes/{dispute}/resolve", headers={"Prefer": "wait=15"},
                             json={"outcome": "award", "registration_id": third})
    assert award.status_code == 200, award.text
    await system.settle()
    settled = (await owner_reads.get(f"/v1/disputes/{dispute}")).json()
    assert settled["status"] == "resolved" and settled["last_refusal"] is None, settled
    listed = (await owner_reads.get("/v1/disputes", params={"limit": 500})).json()["items"]
    assert [d["last_refusal"] for d in listed if d["id"] == dispute] == [None]
