"""`Prefer: wait` in one process (`dealreg dev`): the co-located projection worker hands
the decided rows it committed to the waiting requests, which answer without reading them
back. The answer must be the one a read gives: byte for byte the body `GET` returns to the
same caller, including a partner whose registration collided with a competitor's (the
partner view hides the competitor's ids)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from shared.readmodel.schema import registrations
from shared.readmodel.waiter import as_read
from tests.integration.projections.system_support import registration, running, submit

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



async def test_every_row_handed_over_is_the_row_a_read_returns_after_splits_and_ends(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Whatever the worker hands over (as `as_read` makes it) is what reading the row back
    returns: after a three-way split of 33.33/33.34/33.33 (`credit_percent`, a Numeric
    read back through the file), an extension, a close with an amount, a withdrawal. The
    last row handed over for each registration must equal the stored row, field by field
    and type by type."""
    async with running("embedded", request, tmp_path) as system:
        runtime = system.command_app.state.runtime
        worker = runtime.projection_worker
        handed: dict[str, dict[str, object]] = {}
        forward = worker.on_applied

        def capture(touched: Iterable[str], rows: Mapping[str, dict[str, Any]]) -> None:
            touched = list(touched)
            for rid in touched:
                if rid in rows:
                    handed[rid] = as_read(rows[rid])
            forward(touched, rows)

        worker.on_applied = capture
        partners = ("sp-a", "sp-b", "sp-c")
        for partner in partners:
            put = await system.admin.put(f"/v1/partners/{partner}", json={
                "name": partner, "type": "reseller", "tier": "gold", "status": "active"})
            assert put.status_code in (200, 201), put.text
        domain = f"sp-{uuid.uuid4().hex[:8]}.com"
        members = []
        for partner in partners:
            commands, _ = await system.as_("partner", partner)
            response = await commands.post("/v1/registrations",
                                           json=registration(None, domain),
                                           headers={"Prefer": "wait=15"})
            assert response.status_code == 201, response.text
            members.append(response.json())
        dispute = next(m["dispute_id"] for m in members if m.get("dispute_id"))
        owner = (await system.as_("owner", "cm-1"))[0]
        ack = await owner.post(f"/v1/disputes/{dispute}/acknowledge",
                               headers={"Prefer": "wait=10"})
        assert ack.status_code < 300, ack.text
        dispute_row = (await (await system.queries("admin")).get(
            f"/v1/disputes/{dispute}")).json()
        ids = list(dispute_row["registration_ids"])
        shares = ("33.33", "33.34", "33.33")[:len(ids)]
        resolved = await owner.post(f"/v1/disputes/{dispute}/resolve",
                                    headers={"Prefer": "wait=10"}, json={
                                        "outcome": "split", "splits": [
                                            {"registration_id": rid, "percent": share}
                                            for rid, share in zip(ids, shares, strict=True)]})
        assert resolved.status_code < 300, resolved.text
        other = await submit(system.admin, registration("sp-c", f"x{domain}"))
        await system.admin.post(f"/v1/registrations/{other['id']}/extend",
                                headers={"Prefer": "wait=10"})
        await system.admin.post(f"/v1/registrations/{other['id']}/close", json={
            "outcome": "won", "amount": {"value": "9.99", "currency": "EUR"}},
            headers={"Prefer": "wait=10"})
        await system.settle()
        async with runtime.engine.connect() as conn:
            stored = {row.id: dict(row._mapping) for row in
                      await conn.execute(select(registrations))}
        assert len(ids) == 3, ids
        assert sorted(stored[rid]["credit_percent"] for rid in ids) == sorted(
            Decimal(share) for share in shares)
        for rid, row in stored.items():
            assert rid in handed, rid
            assert handed[rid] == row, rid
            assert {k: type(v) for k, v in handed[rid].items()} == {
                k: type(v) for k, v in row.items()}, rid
