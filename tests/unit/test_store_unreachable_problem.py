"""A database that cannot be reached (restarting, network) is a 503 with Retry-After to
retry, not a 500: the fault soak saw 500s on every PostgreSQL restart. A statement that fails
on a healthy connection is still a 500 (a defect, not a condition to wait out)."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError

from shared.api.problems import PROBLEM_JSON, install_problem_handlers, store_unreachable
from shared.readmodel.store import create_engine
from tests.support.processes import free_port


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/unreachable")
    async def unreachable() -> dict[str, str]:
        # The real driver against a port where no PostgreSQL listens.
        engine = create_engine(f"postgresql+asyncpg://u:p@127.0.0.1:{free_port()}/db")
        try:
            async with engine.connect() as conn:
                await conn.execute(text("select 1"))
        finally:
            await engine.dispose()
        return {}

    @app.get("/locked")
    async def locked() -> dict[str, str]:
        raise OperationalError("insert ...", {}, sqlite3.OperationalError("database is locked"))

    @app.get("/bad-statement")
    async def bad_statement() -> dict[str, str]:
        raise ProgrammingError("select nope", {}, Exception("column nope does not exist"))

    return app


async def _get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


@pytest.mark.parametrize("path", ["/unreachable", "/locked"])
async def test_an_unreachable_or_locked_database_is_a_503_to_retry(path: str) -> None:
    response = await _get(path)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert int(response.headers["Retry-After"]) > 0
    assert "Idempotency-Key" in response.json()["detail"]


async def test_a_failing_statement_on_a_healthy_connection_stays_a_500() -> None:
    response = await _get("/bad-statement")
    assert response.status_code == 500
    assert "Retry-After" not in response.headers


def test_store_unreachable_follows_the_cause_chain_without_looping() -> None:
    inner = ConnectionResetError("peer reset")
    outer = RuntimeError("while committing")
    outer.__cause__ = inner
    assert store_unreachable(outer)
    loop = RuntimeError("a")
    loop.__context__ = loop
    assert not store_unreachable(loop)
