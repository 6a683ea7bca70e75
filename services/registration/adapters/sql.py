"""Portable SQL the registration adapters share: insert-if-absent and upsert on PostgreSQL
and SQLite, and the commit point of an append."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def _insert(conn: AsyncConnection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


async def insert_if_absent(conn: AsyncConnection, table: Table, row: Mapping[str, Any],
                           keys: Sequence[str]) -> bool:
    """Insert `row` unless its primary key exists; True if this call inserted it. Under
    concurrency exactly one caller gets True (the unique index decides)."""
    stmt = _insert(conn, table).values(**row).on_conflict_do_nothing(index_elements=list(keys))
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def upsert(conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]],
                 keys: Sequence[str]) -> None:
    if not rows:
        return
    stmt = _insert(conn, table)
    updated = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=updated)
    await conn.execute(stmt, list(rows))
