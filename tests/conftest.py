"""Fixtures shared by every test: real servers and both event-log backends.

Servers are found in this order (tests/support/servers.py): connection settings from the
environment (`DEALREG_TEST_KAFKA_BOOTSTRAP_SERVERS`, `DEALREG_TEST_DATABASE_URL`), a Docker
engine through testcontainers, the project's scripts under deploy/. A missing server fails
the test loudly; nothing is skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.eventlog import EventLog
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.kafka import KafkaEventLog
from tests.support.servers import ServerHandle, create_database, start_kafka, start_postgres

BACKENDS = ["embedded", "kafka"]
_USED: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which real servers the session ran against, so a CI log proves it."""
    if _USED:
        terminalreporter.write_sep("=", "real servers used")
        for line in _USED:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[ServerHandle]:
    """A real Kafka broker; ``kafka_server.url`` is its bootstrap ``host:port``."""
    handle = start_kafka()
    _USED.append(f"kafka {handle.url} ({handle.source})")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ServerHandle]:
    """A real PostgreSQL server; ``postgres_server.url`` is a ``postgresql+asyncpg://`` URL."""
    handle = start_postgres()
    _USED.append(f"postgresql {handle.url.rsplit('@', 1)[-1]} ({handle.source})")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def unique() -> str:
    """A short token that keeps topics, groups and databases of one test apart."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def fresh_database(postgres_server: ServerHandle, unique: str) -> str:
    """A new, empty PostgreSQL database for this test; its asyncpg SQLAlchemy URL."""
    return await create_database(postgres_server.url, f"t_{unique}")


def make_eventlog(backend: str, request: pytest.FixtureRequest, directory: Path) -> EventLog:
    if backend == "embedded":
        return EmbeddedEventLog(directory / "eventlog.sqlite3")
    server: ServerHandle = request.getfixturevalue("kafka_server")
    return KafkaEventLog(server.url)


@pytest.fixture(params=BACKENDS)
async def eventlog(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventLog]:
    """A started event log of each backend (real Kafka for `kafka`)."""
    log = make_eventlog(request.param, request, tmp_path)
    await log.start()
    try:
        yield log
    finally:
        await log.close()
