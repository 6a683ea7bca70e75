"""`Prefer: wait` in one process (`dealreg dev`): the co-located projection worker hands
the decided rows it committed to the waiting requests, which answer without reading them
back. The answer must be the one a read gives: byte for byte the body `GET` returns to the
same caller, including a partner whose registration collided with a competitor's (the
partner view hides the competitor's ids)."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from tests.integration.projections.system_support import registration, running

PARTNERS = ("ho-a", "ho-b")


async def test_a_decision_handed_over_in_process_answers_with_the_body_a_read_gives(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    async with running("embedded", request, tmp_path) as system:
        for partner in PARTNERS:
            put = await system.admin.put(f"/v1/partners/{partner}", json={
                "name": partner, "type": "reseller", "tier": "gold", "status": "active"})
            assert put.status_code in (200, 201), put.text
        waiter = system.command_app.state.runtime.waiter
        reads_before = waiter.reads
        handed_before = waiter.handed
        answered: list[tuple[str, str, bytes]] = []  # (partner, id, POST body)
        domains = [f"ho-{uuid.uuid4().hex[:8]}.com" for _ in range(3)]
        # Each domain first by one partner (approved), then by the other (a conflict
        # naming the first partner's registration), then once more by the first. Each
        # answer is compared with a read right after it (a later registration may
        # change the row: a dispute opened against it).
        for domain in domains:
            for partner in (*PARTNERS, PARTNERS[0]):
                commands, queries = await system.as_("partner", partner)
                response = await commands.post(
                    "/v1/registrations", json=registration(None, domain),
                    headers={"Prefer": "wait=15"})
                assert response.status_code == 201, response.text
                rid = response.json()["id"]
                read = await queries.get(f"/v1/registrations/{rid}")
                assert read.status_code == 200, read.text
                assert response.content == read.content, (partner, rid)
                answered.append((partner, rid, response.content))
        statuses = {orjson.loads(body)["status"] for _, _, body in answered}
        assert statuses - {"approved"}, statuses  # conflicts among them
        # Every answer came from the hand-over, none from a read.
        assert waiter.handed - handed_before == len(answered)
        assert waiter.reads == reads_before
        # The redaction is really exercised: a colliding answer names no competitor id.
        others = {rid for partner, rid, _ in answered if partner == PARTNERS[0]}
        for partner, _, body in answered:
            if partner == PARTNERS[1]:
                assert not any(rid.encode() in body for rid in others)

