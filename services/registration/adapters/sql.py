"""Portable SQL the registration adapters share: insert-if-absent and upsert on PostgreSQL
and SQLite, the commit point of an append, and hot reads sent to asyncpg directly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

# What a connection PostgreSQL dropped (a restart, the network) fails with in the driver.
_LOST_CONNECTION: tuple[type[BaseException], ...] = (
    OSError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError,
    asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError, asyncpg.CannotConnectNowError)


async def _driver_failure(conn: AsyncConnection, driver: Any, exc: Exception,
                          statement: str) -> DBAPIError:
    """What SQLAlchemy raises for `exc` when it sends a statement itself: a `DBAPIError`
    (which the API answers 503 + Retry-After when the connection was lost), and a lost
    connection invalidated so the pool never hands it out again. A bare driver error was a
    500, and the dead connection went back to the pool for the next request."""
    lost = isinstance(exc, _LOST_CONNECTION) or driver.is_closed()
    if lost:
        await conn.invalidate(exc)
    return DBAPIError(statement, None, exc, connection_invalidated=lost)


async def driver_fetch(conn: AsyncConnection, statement: str, *args: Any) -> list[Any]:
    """PostgreSQL: the rows of `statement` (asyncpg `$n` parameters) fetched by the driver
    itself, failures translated as SQLAlchemy would. One fixed text is prepared once per
    connection by asyncpg; no statement is built, compiled or looked up in SQLAlchemy's
    caches, and no result object is made. For reads on every registration. No transaction
    of its own is begun (read through `store.reader`, in autocommit, as with it)."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        rows: list[Any] = await driver.fetch(statement, *args)
    except Exception as exc:
        raise await _driver_failure(conn, driver, exc, statement) from exc
    return rows


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
