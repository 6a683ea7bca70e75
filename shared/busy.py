"""SQLite write contention: recognising "database is locked" and waiting it out.

SQLite has one writer per file. A statement that needs the write lock while another
connection (another process: an admin command, a rebuild, an operator's shell) holds it
waits up to the busy timeout, then fails with SQLITE_BUSY ("database is locked"). Write
transactions take the lock when they begin (`BEGIN IMMEDIATE`, shared/readmodel/store.py and
the embedded log), where the busy timeout is honoured and nothing has been read yet, so a
failure here means nothing of the transaction was applied: the whole unit of work can
simply run again. The API answers it with 503 + Retry-After (shared/api/problems.py); a
background worker retries its batch with back-off (`retry_when_busy`) instead of crashing.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared import metrics
from shared.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

BUSY_ATTEMPTS = 8
"""Tries of one unit of work before the error goes to the caller (a supervised worker is
then restarted with back-off); each try already waited the busy timeout."""
BUSY_FIRST_DELAY = 0.05
BUSY_MAX_DELAY = 2.0


def sqlite_busy(exc: BaseException) -> bool:
    """True if `exc` (or what it wraps: SQLAlchemy's `.orig`, the cause chain) is SQLite's
    SQLITE_BUSY: another connection held the write lock past the busy timeout."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.OperationalError):
            code = getattr(current, "sqlite_errorcode", None)
            if code is not None:
                return bool(code & 0xFF == sqlite3.SQLITE_BUSY)
            return "database is locked" in str(current)
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and orig is not current:
            current = orig
        else:
            current = current.__cause__ or current.__context__
    return False


async def retry_when_busy(
    work: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int = BUSY_ATTEMPTS,
    first_delay: float = BUSY_FIRST_DELAY,
    max_delay: float = BUSY_MAX_DELAY,
) -> T:
    """Run `work()` (one whole transaction: it must apply all or nothing) again while it
    fails with SQLITE_BUSY, pausing a jittered, doubling delay in between; after
    `attempts` tries the error is raised. Any other error is raised at once."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except Exception as exc:
            if attempt >= attempts or not sqlite_busy(exc):
                raise
            pause = delay / 2 + random.random() * delay / 2
            metrics.SQLITE_BUSY_RETRIES.labels(what).inc()
            log.warning("sqlite_busy_retrying", work=what, attempt=attempt,
                        retry_in_seconds=round(pause, 3), error=str(exc).splitlines()[0])
            await asyncio.sleep(pause)
            delay = min(max_delay, delay * 2)
    raise AssertionError("unreachable")  # pragma: no cover
