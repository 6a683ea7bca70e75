"""A command is durable before `Prefer: wait` starts: an unreadable read model during the
wait is "not decided yet" (202), never an error a client would retry into a second event."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from services.registration.handlers import wait_after_append


async def _restarting_database() -> None:
    raise OperationalError("SELECT 1", {}, ConnectionRefusedError("the database restarts"))


async def _decided() -> str:
    return "decided"


def test_an_unreadable_read_model_during_the_wait_is_not_decided_yet() -> None:
    assert asyncio.run(wait_after_append(_restarting_database, 0.2)) is None


def test_a_readable_read_model_answers_and_no_wait_reads_nothing() -> None:
    assert asyncio.run(wait_after_append(_decided, 0.2)) == "decided"
    assert asyncio.run(wait_after_append(_decided, 0)) is None


def test_a_programming_error_in_the_wait_is_not_hidden() -> None:
    async def broken() -> None:
        raise KeyError("column")
    with pytest.raises(KeyError):
        asyncio.run(wait_after_append(broken, 0.2))
