"""The bulk writes' SQLite time text equals what SQLAlchemy's own DateTime binding stores,
for every kind of aware datetime the folds hand it (pydantic's UTC, other offsets, zones
with summer time, whole seconds); naive ones are refused as `UTCDateTime` refuses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter
from sqlalchemy.dialects import sqlite

from services.projections.adapters.repository import _sqlite_time
from shared.readmodel.schema import UTCDateTime

PARSED = TypeAdapter(datetime)


def sqlalchemy_text(value: datetime) -> str:
    dialect = sqlite.dialect()
    processor = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    text: str = processor(value)
    return text


@pytest.mark.parametrize("value", [
    PARSED.validate_python("2026-01-05T10:00:00.123456Z"),  # pydantic's own UTC tzinfo
    PARSED.validate_python("2026-03-29T01:30:00+02:00"),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 7, 1, 0, 30, tzinfo=ZoneInfo("Europe/Berlin")),
    datetime(2026, 1, 1, 0, 30, tzinfo=ZoneInfo("Europe/Berlin")),
    datetime(99, 1, 1, 12, tzinfo=UTC),
])
def test_bulk_time_text_equals_what_sqlalchemy_binds(value: datetime) -> None:
    assert _sqlite_time(value) == sqlalchemy_text(value)


def test_bulk_time_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        _sqlite_time(datetime(2026, 1, 1))
