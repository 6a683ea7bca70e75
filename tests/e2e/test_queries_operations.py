"""Operating the read models on both backends: `dealreg projections rebuild` replays the
log into read models equal to the live ones (invariant 2); lag is visible in `/readyz`
and on `/metrics`."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dealreg.cli import app as cli
from shared.readmodel.store import create_engine
from tests.integration.projections.projection_support import snapshot
from tests.integration.projections.system_support import Running, registration, running, submit


def fresh(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def activity(system: Running) -> None:
    """Every kind of command, so every model has rows of every kind."""
    a, b = f"{fresh('alpha')}.com", f"{fresh('beta')}.com"
    first = await submit(system.admin, registration("p-1", a, crm=fresh("CRM")))
    tied = await submit(system.admin, registration("p-2", a))
    owner = (await system.as_("owner", "cm-1"))[0]
    await owner.post(f"/v1/disputes/{tied['dispute_id']}/acknowledge",
                     headers={"Prefer": "wait=10"})
    await owner.post(f"/v1/disputes/{tied['dispute_id']}/resolve",
                     headers={"Prefer": "wait=10"},
                     json={"outcome": "split", "splits": [
                         {"registration_id": first["id"], "percent": "60"},
                         {"registration_id": tied["id"], "percent": "40"}]})
    other = await submit(system.admin, registration("p-3", b, motion="referral"))
    await system.admin.post(f"/v1/registrations/{other['id']}/extend",
                            headers={"Prefer": "wait=10"})
    third = await submit(system.admin, registration("p-3", f"{fresh('gamma')}.com"))
    await system.admin.post(f"/v1/registrations/{third['id']}/close",
                            json={"outcome": "won", "amount": {"value": "9.99",
                                                               "currency": "EUR"}},
                            headers={"Prefer": "wait=10"})
    await system.admin.post(f"/v1/registrations/{other['id']}/withdraw",
                            headers={"Prefer": "wait=10"})
    await system.admin.post("/v1/claims", headers={"Prefer": "wait=10"}, json={
        "kind": "opportunity", "rep_id": "rep-1", "products": ["storage"],
        "account": {"name": "Delta Corp", "domain": f"{fresh('delta')}.com", "country": "DE"}})
    await system.settle()


@pytest.mark.parametrize("backend", ["embedded", "distributed"])
async def test_a_rebuilt_read_model_equals_the_live_one(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running(backend, request, tmp_path) as system:
        await activity(system)
        live = await snapshot(system.query_app.state.runtime.engine)
        settings = system.settings
    assert live["disputes"] and live["claims"] and live["ownership_intervals"]
    assert any(r["kind"] == "incumbency" for r in live["ownership_intervals"])

    # The operator's command, with the deployment's settings in the environment.
    env = {"DEALREG_BACKEND": settings.backend, "DEALREG_DATA_DIR": str(settings.data_dir),
           "DEALREG_DATABASE_URL": settings.database_url,
           "DEALREG_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "DEALREG_TOPIC_PREFIX": settings.topic_prefix}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["projections", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "events/s" in result.output

    engine = create_engine(settings.readmodel_url)
    try:
        assert await snapshot(engine) == live
    finally:
        await engine.dispose()

    single = await asyncio.to_thread(CliRunner().invoke, cli,
                                     ["projections", "rebuild", "--model", "ownership"])
    assert single.exit_code == 0, single.output
    engine = create_engine(settings.readmodel_url)
    try:
        assert await snapshot(engine) == live
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["embedded", "distributed"])
async def test_lag_is_shown_in_readyz_and_exported_as_a_metric(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    async with running(backend, request, tmp_path) as system:
        await submit(system.admin, registration("p-1", f"{fresh('lag')}.com"))
        await system.settle()
        worker = system.query_app.state.runtime.projection_worker
        for _ in range(100):  # the worker snapshots its consumer positions after each poll
            report = await worker.lag.refresh()
            if report.total == 0:
                break
            await asyncio.sleep(0.05)
        # Operations detail needs the ops token (or an admin credential) by default.
        client = await system.queries("integration")
        assert (await client.get("/metrics")).status_code == 401
        ops = {"Authorization": f"Bearer {system.settings.admin_token}"}
        ready = (await client.get("/readyz", headers=ops)).json()
        detail: dict[str, Any] = ready["detail"]["projections"]
        topics = system.query_app.state.runtime.topics
        assert set(detail["partitions"]) == {f"{t}/{p}" for t in (topics.intake,
                                                                  topics.decisions)
                                             for p in range(3 if backend != "embedded"
                                                            else 12)}
        intake = [v for k, v in detail["partitions"].items() if k.startswith(topics.intake)]
        assert all(v["lag"] == 0 for v in intake)
        # Exact on Kafka too: the commit marker after the last decision is not lag.
        assert report.total == 0, report.partitions
        metrics = (await client.get("/metrics", headers=ops)).text
        assert f'dealreg_projection_lag_records{{partition="0",topic="{topics.intake}"}} 0.0' \
            in metrics
