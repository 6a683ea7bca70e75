"""A live batch's multi-row upsert (each column one array of its base type, `unnest`)
against the row-by-row reference on every column type the registrations and disputes
tables add to the adversarial property test: booleans, wide rows, JSON null vs SQL NULL,
numerics finer than the column's scale, and values the column cannot hold, which must
fail alike (never be cut or rounded to fit by the array's cast)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import delete, select

from services.projections.adapters import repository
from shared.readmodel.schema import disputes, registrations
from shared.readmodel.store import create_engine, migrate
from tests.support.servers import ServerHandle, create_database

_T = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-7)))


def _registration(rid: str, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c.name: None for c in registrations.columns}
    row.update(id=rid, status="approved", extensions=0, partner_id="p\t\\N",
               account={"name": "Ünï \u2028 😀", "n": None, "l": [[1], []]},
               opportunity=None, decision={"rule": "", "x": [None, True, 1.5]},
               scope_products=["a", "é", ""], credit_percent=Decimal("12.34"),
               submitted_at=_T, decided_at=_T.astimezone(UTC), collided=False,
               amount_e4=2**62, currency="")
    row.update(over)
    return row


def _dispute(did: str, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c.name: None for c in disputes.columns}
    row.update(id=did, status="open", level=0, owners=[], registration_ids=["r1", "r2"],
               breached=True, opened_at=_T)
    row.update(over)
    return row


def _batch(regs: list[dict[str, Any]], disps: list[dict[str, Any]] = ()) -> Any:  # type: ignore[assignment]
    def none() -> list[dict[str, Any]]:
        return []

    return SimpleNamespace(
        changed_registrations=lambda: [dict(r) for r in regs], changed_claims=none,
        changed_disputes=lambda: [dict(r) for r in disps],
        pipeline=lambda: SimpleNamespace(total_rows=none, product_rows=none),
        intervals={}, domains={}, crm_ids={}, names={}, name_keys={}, unfiled_names={},
        unfiled_back={},
        link_facts={},
        members={}, breaches={}, timeline={}, outbox={})


_WAYS = (None, 10**6)  # row by row (the reference), multi-row


async def _write_each_way(url: str, batch: Any) -> list[Any]:
    """What each way stores, or the error class it failed with."""
    found: list[Any] = []
    for way in _WAYS:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(delete(registrations))
                await conn.execute(delete(disputes))
            try:
                async with engine.begin() as conn:
                    steps = repository.prepare("postgresql", batch, stage_from=way)
                    assert any(s.multirow for s in steps) == (way is not None)
                    await repository.execute(conn, steps)
            except Exception as exc:  # the driver's own (bulk writes bypass SQLAlchemy)
                found.append(type(getattr(exc, "orig", None) or exc).__name__)
                continue
            async with engine.connect() as conn:
                found.append((
                    [dict(r) for r in (await conn.execute(
                        select(registrations).order_by(registrations.c.id))).mappings()],
                    [dict(r) for r in (await conn.execute(
                        select(disputes).order_by(disputes.c.id))).mappings()]))
        finally:
            await engine.dispose()
    return found


@pytest.fixture
async def url(postgres_server: ServerHandle, unique: str) -> str:
    made = await create_database(postgres_server.url, f"types_{unique}")
    engine = create_engine(made)
    await migrate(engine)
    await engine.dispose()
    return made


async def test_multi_row_writes_store_every_column_type_as_row_by_row_writes(url: str) -> None:
    batch = _batch([_registration("a"), _registration("b", collided=True, account="null",
                                                       credit_percent=Decimal("1.005"),
                                                       scope_products=None),
                    _registration("c", collided=None, currency="ÉUR", status="x" * 20)],
                   [_dispute("d1"), _dispute("d2", breached=False, resolution={"a": "\t"})])
    reference, multirow = await _write_each_way(url, batch)
    assert isinstance(reference, tuple), reference
    assert multirow == reference


@pytest.mark.parametrize("over", [
    {"currency": "USDX"}, {"status": "s" * 21}, {"id": "i" * 65},
    {"credit_percent": Decimal("1000")},
    {"extensions": 2**31}, {"status": None},
])
async def test_a_value_the_column_cannot_hold_fails_the_multi_row_write_as_row_by_row(
    url: str, over: dict[str, Any],
) -> None:
    reference, multirow = await _write_each_way(
        url, _batch([_registration("a"), _registration("b", **over)]))
    assert multirow == reference
    assert not isinstance(reference, tuple), reference
