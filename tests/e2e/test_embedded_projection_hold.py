"""`dealreg dev` (the embedded backend) applies a registration and its decision in one
read-model transaction (`DEALREG_EMBEDDED_PROJECTIONS_HOLD_MS`, session 29), as the Kafka
deployment does since session 28 (tests/unit/projections/test_projection_hold.py tests
the worker's hold itself).

Registrations sent one at a time with `Prefer: wait` are the unbatched case: without the
hold the projection worker applied each submission as a batch of its own (the embedded
log hands it over ~5 ms after the append) and its decision as another, two SQLite write
transactions, two hand-overs to the waiting requests and the re-reporter per
registration. Every answer stays the decided one (201)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from dealreg.app import create_app
from dealreg.runtime import projection_hold_seconds
from shared.eventlog import Record
from shared.settings import Settings

TOKEN = "hold-admin"


def _body(i: int) -> dict[str, Any]:
    return {"partner_id": f"p-{i % 3}", "motion": "resell",
            "account": {"name": f"Holdfast {i} Labs", "domain": f"holdfast{i}.com",
                        "country": "US"},
            "opportunity": {"title": "Rollout", "products": ["analytics"]}}


async def _batches(tmp_path: Path, count: int, **settings: Any) -> tuple[list[int], int]:
    """The status of each answer and the projection batches applied for them."""
    app = create_app(Settings(backend="embedded", data_dir=tmp_path, admin_token=TOKEN,
                              rate_limit_per_second=0, log_level="WARNING", **settings))
    worker = app.state.runtime.projection_worker
    applied = [0]
    apply = worker.apply

    async def counted(records: Sequence[Record]) -> object:
        applied[0] += 1
        return await apply(records)

    worker.apply = counted
    statuses = []
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dealreg",
            headers={"Authorization": f"Bearer {TOKEN}", "Prefer": "wait=5"},
            timeout=30) as client:
        assert (await client.post("/v1/registrations", json=_body(-1))).status_code == 201
        applied[0] = 0  # the first one also published the default policy
        for i in range(count):
            answer = await client.post("/v1/registrations", json=_body(i))
            statuses.append(answer.status_code)
            assert answer.json()["decision"]["rule"] == "no_conflict"
    return statuses, applied[0]


async def test_a_registration_and_its_decision_are_one_projection_batch(
        tmp_path: Path) -> None:
    assert projection_hold_seconds(Settings(backend="embedded")) == 0.1
    statuses, batches = await _batches(tmp_path, 8)
    assert statuses == [201] * 8
    assert batches == 8


async def test_without_the_hold_each_is_applied_on_its_own(tmp_path: Path) -> None:
    """The contrast (and the setting's 0): a submission's batch, then its decision's."""
    statuses, batches = await _batches(tmp_path, 8, embedded_projections_hold_ms=0)
    assert statuses == [201] * 8
    assert batches > 8
