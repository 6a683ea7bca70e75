"""SQL for the projections: batched loads and upserts that work on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventlog import TopicPartition
from shared.readmodel.schema import projection_positions, registrations


def _insert(conn: AsyncConnection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


async def upsert(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    overwrite: bool = True,
) -> None:
    if not rows:
        return
    stmt = _insert(conn, table)
    if overwrite:
        updated = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=updated)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    await conn.execute(stmt, list(rows))


async def load_positions(
    conn: AsyncConnection, projection: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    wanted = set(partitions)
    result = await conn.execute(
        select(projection_positions.c.topic, projection_positions.c.partition,
               projection_positions.c.position)
        .where(projection_positions.c.projection == projection)
    )
    found = {TopicPartition(t, p): pos for t, p, pos in result}
    return {tp: found.get(tp, 0) for tp in wanted}


async def save_positions(
    conn: AsyncConnection, projection: str, positions: Mapping[TopicPartition, int]
) -> None:
    await upsert(
        conn,
        projection_positions,
        [{"projection": projection, "topic": tp.topic, "partition": tp.partition,
          "position": pos} for tp, pos in positions.items()],
        ("projection", "topic", "partition"),
    )


async def load_registrations(
    conn: AsyncConnection, ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    ids = list(ids)
    rows: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        result = await conn.execute(
            select(registrations).where(registrations.c.id.in_(ids[start:start + 500]))
        )
        rows.update({row.id: dict(row._mapping) for row in result})
    return rows
