"""An upgrade on the embedded default (`dealreg dev`'s data directory): a read model folded
by an older release is replayed before the registration service warms from it.

Session 28 files a name given without a country in the directory read model (under the
unknown country ""), which a registration service warms its account index from. A store
folded by session 27's code (e66014f) has positions at the end of the log and none of those
rows: after the upgrade's restart the service forgot the name, and a rival's filing of the
same name was approved `no_conflict` beside it, unseen, until someone ran `dealreg
projections rebuild` -- which nothing told the operator to do. The directory now carries a
version (`repository.MODEL_VERSIONS`); the embedded runtime replays an outdated model at
start, the distributed one names the command to run."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy import delete, func, insert, select

from dealreg.app import create_app
from services.projections.adapters import repository
from services.registration.adapters.tables import re_reports
from shared.readmodel.schema import account_names, projection_positions
from shared.readmodel.store import create_engine
from shared.settings import Settings
from tests.e2e.conftest import ADMIN, _serve
from tests.e2e.test_cli_settings import one_line, run
from tests.e2e.test_rival_fairness import companies, submit


async def _as_session_27_left_it(settings: Settings) -> None:
    """The directory as e66014f's projections folded it: every position, no country-less
    name (it did not file them), no model version (it had none)."""
    engine = create_engine(settings.readmodel_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(account_names).where(account_names.c.country == ""))
            await conn.execute(delete(projection_positions).where(
                projection_positions.c.projection == "directory#version"))
    finally:
        await engine.dispose()


async def _re_reports_done(settings: Settings) -> None:
    """The first registration's post-decision re-report has run (in a program upgraded
    from a long run, long ago): a pending one, taken over at the next start, files its
    identity in the new process's memory and hid the forgotten directory row."""
    engine = create_engine(settings.readmodel_url)
    try:
        for _ in range(300):
            async with engine.connect() as conn:
                if not (await conn.execute(select(func.count())
                                           .select_from(re_reports))).scalar_one():
                    return
            await asyncio.sleep(0.05)
        raise AssertionError("the re-report never ran")
    finally:
        await engine.dispose()


async def _countryless_names(settings: Settings) -> int:
    engine = create_engine(settings.readmodel_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(account_names)
                                           .where(account_names.c.country == ""))).scalar_one())
    finally:
        await engine.dispose()


async def test_an_old_directory_is_replayed_at_start_so_a_rival_is_not_approved_unseen(
    tmp_path: Path,
) -> None:
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN)
    (company,) = companies(1, seed=57)
    async with AsyncExitStack() as stack:
        client = await _serve(stack, create_app(settings))
        first = await submit(client, "p-1", {"name": company.name,
                                             "crm_account_id": company.crm_account_id})
        assert first["status"] == "approved", first
        await _re_reports_done(settings)
    assert await _countryless_names(settings) >= 1
    await _as_session_27_left_it(settings)
    assert await _countryless_names(settings) == 0

    async with AsyncExitStack() as stack:
        client = await _serve(stack, create_app(settings))
        # Without a country: a holder's name filed without one is weighed only against
        # filings that give none either (`match.countryless_names: ask`, session 29).
        rival = await submit(client, "p-2", {"name": company.name,
                                             "domain": company.domains[0]})
        assert (rival["status"], rival["decision"]["rule"]) == (
            "in_review", "possible_duplicate"), rival
        first_now = (await client.get(f"/v1/registrations/{first['id']}")).json()
        assert first_now["status"] == "approved", first_now  # nothing re-decided
    assert await _countryless_names(settings) >= 1


async def test_a_new_store_and_a_rebuilt_one_are_current(tmp_path: Path) -> None:
    """A new store is folded by this release from the beginning: never replayed again at
    start; a rebuild records the version it refilled."""
    settings = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN)
    (company,) = companies(1, seed=58)
    async with AsyncExitStack() as stack:
        client = await _serve(stack, create_app(settings))
        await submit(client, "p-1", {"name": company.name, "country": company.country})
    engine = create_engine(settings.readmodel_url)
    try:
        async with engine.begin() as conn:
            assert await repository.outdated_models(conn, ["directory"]) == []
            await conn.execute(delete(projection_positions).where(
                projection_positions.c.projection == "directory#version"))
            assert await repository.outdated_models(conn, ["directory"]) == ["directory"]
            await repository.empty(conn, ["directory"])
            assert await repository.outdated_models(conn, ["directory"]) == []
    finally:
        await engine.dispose()


async def test_db_upgrade_names_an_outdated_model_and_its_rebuild_on_postgresql(
        tmp_path: Path, fresh_database: str) -> None:
    """Distributed: several projection processes may start together, so none replays by
    itself; `dealreg db upgrade` (run once per release) names what to rebuild."""
    first = run(tmp_path, "db", "upgrade", backend="distributed", database_url=fresh_database)
    assert first.returncode == 0, first.stderr
    assert "older release" not in first.stderr  # a new store is current
    engine = create_engine(fresh_database)
    try:
        async with engine.begin() as conn:  # as e66014f's projections left a store
            await conn.execute(delete(projection_positions))
            await conn.execute(insert(projection_positions), [
                {"projection": "directory", "topic": "dealreg.intake", "partition": 0,
                 "position": 7}])
    finally:
        await engine.dispose()
    again = run(tmp_path, "db", "upgrade", backend="distributed", database_url=fresh_database)
    assert again.returncode == 0, again.stderr
    text = one_line(again.stderr)
    assert "read models folded by an older release: directory" in text, text
    assert "dealreg projections rebuild --model directory" in text, text
