"""Session 30, second rival review of s30-reviewreject and s30-directory, on both
backends (embedded on SQLite; distributed on Kafka and PostgreSQL), across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import delete

from shared.readmodel.schema import projection_positions
from shared.readmodel.store import create_engine
from shared.settings import Settings
from tests.e2e.test_rejected_names_read_model import (  # noqa: F401 (the fixture)
    _owner_keys,
    running,
    settings,
)
from tests.e2e.test_rival_fairness import WAIT, companies, status_becomes, submit, weighed

ADMIN = "test-admin-token"


async def test_a_contested_rejection_a_person_rejects_again_leaves_no_name_after_a_restart(
    settings: Settings,  # noqa: F811
) -> None:
    """p-1 holds B by its domain; p-2 files "B dba T" with B's domain: rejected as a
    duplicate, T taken back. p-2 contests: in review, T filed again (`refiled_names`).
    A person awards the review to p-1: p-2 is rejected again and the adjudicator takes T
    back (`unfiled_names`). Before, the directory's re-filed row had no filer and stayed
    filed for good: after a restart the ownership look-up by T answered B's key and the
    edge, warmed from the directory, weighed a newcomer's name-only T against p-1."""
    holder, trade, country = await _contested_then_rejected_again(settings)
    async with running(settings) as (client, queries):
        owners = await _owner_keys(queries, trade, country)
        assert holder["account_key"] not in owners, owners
        newcomer = await submit(client, "p-3", {"name": trade, "country": country})
        assert holder["id"] not in weighed(newcomer), newcomer["decision"]
        assert newcomer["status"] == "approved", newcomer["decision"]


async def test_the_directory_replayed_from_the_log_agrees_after_review_cycles(
    tmp_path: Path,
) -> None:
    """The same cycle, then the directory folded again from the log (its version row
    removed: the embedded start replays it, as `dealreg projections rebuild --model
    directory` refills it): the rebuilt directory files T nowhere under B's key either."""
    embedded = Settings(backend="embedded", data_dir=tmp_path, admin_token=ADMIN)
    holder, trade, country = await _contested_then_rejected_again(embedded)
    engine = create_engine(embedded.readmodel_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(projection_positions).where(
                projection_positions.c.projection == "directory#version"))
    finally:
        await engine.dispose()
    async with running(embedded) as (client, queries):
        owners = await _owner_keys(queries, trade, country)
        assert holder["account_key"] not in owners, owners
        newcomer = await submit(client, "p-3", {"name": trade, "country": country})
        assert holder["id"] not in weighed(newcomer), newcomer["decision"]


async def _contested_then_rejected_again(config: Settings
                                         ) -> tuple[dict[str, Any], str, str]:
    """p-1 holds B; p-2's "B dba T" rejected, contested, rejected again by a person.
    (p-1's registration, T's name, the country)."""
    held, trade = companies(2, seed=71)
    country = held.country
    async with running(config) as (client, queries):
        put = await client.put("/v1/policy", json={"tie_window": "PT0S"})
        assert put.status_code in (200, 201), put.text
        holder = await submit(client, "p-1", {"name": held.name, "country": country,
                                              "domain": held.domains[0]})
        assert holder["status"] == "approved", holder
        lost = await submit(client, "p-2", {"name": f"{held.name} dba {trade.name}",
                                            "country": country, "domain": held.domains[0]})
        assert lost["status"] == "rejected", lost["decision"]
        contest = await client.post(f"/v1/registrations/{lost['id']}/disputes", headers=WAIT,
                                    json={"reason": "We registered T's deal first."})
        assert contest.status_code in (200, 201, 202), contest.text
        await status_becomes(queries, lost["id"], "in_review")
        dispute = contest.json().get("dispute_id") or contest.json().get("id")
        resolved = await client.post(f"/v1/disputes/{dispute}/resolve", headers=WAIT,
                                     json={"outcome": "award",
                                           "registration_id": holder["id"]})
        assert resolved.status_code in (200, 202), resolved.text
        await status_becomes(queries, lost["id"], "rejected")
        await status_becomes(queries, holder["id"], "approved")
    return holder, trade.name, country
