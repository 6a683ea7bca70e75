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


def test_bulk_parameters_convert_every_value_like_the_single_conversions() -> None:
    """The generated row -> parameters function with its remembered time conversions: the
    same datetime object, equal instants as other objects, None, and more distinct times
    than it keeps (the cache is cleared midway) all come out as `_sqlite_time` says."""
    from services.projections.adapters import repository
    from shared.readmodel.schema import registrations

    columns = ("id", "submitted_at", "decided_at", "account")
    sql, converters = repository._bulk_statement("sqlite", registrations, columns, ("id",),
                                                 "update")
    shared = PARSED.validate_python("2026-01-05T10:00:00.123456Z")
    rows = []
    for i in range(repository._TIMES_KEPT + 50):
        own = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=i)
        rows.append({"id": f"r{i}", "submitted_at": own if i % 3 else shared,
                     "decided_at": None if i % 2 else own.astimezone(
                         timezone(timedelta(hours=2))),
                     "account": {"n": i} if i % 5 else None})
    params = repository._bulk_params(rows, columns, converters)
    again = repository._bulk_params(rows, columns, converters)
    assert params == again
    for row, values in zip(rows, params, strict=True):
        assert values == (row["id"], _sqlite_time(row["submitted_at"]),
                          _sqlite_time(row["decided_at"]),
                          None if row["account"] is None else
                          f'{{"n":{row["account"]["n"]}}}')
    assert sql.startswith('INSERT INTO "registrations"')
