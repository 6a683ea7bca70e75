"""Tables of the read models. Migrations in `migrations/versions` create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")

projection_positions = Table(
    "projection_positions",
    metadata,
    Column("projection", String(100), primary_key=True),
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("position", BigInteger, nullable=False),
)

registrations = Table(
    "registrations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("partner_id", String(100), nullable=True, index=True),
    Column("account_key", String(300), nullable=True, index=True),
    Column("account", Json, nullable=True),
    Column("opportunity", Json, nullable=True),
    Column("motion", String(20), nullable=True),
    Column("external_ref", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("submitted_at", UTCDateTime(), nullable=True),
    Column("decided_at", UTCDateTime(), nullable=True),
    Column("protected_until", UTCDateTime(), nullable=True),
    Column("extensions", Integer, nullable=False, server_default="0"),
    Column("dispute_id", String(64), nullable=True),
    Column("credit_percent", Numeric(5, 2), nullable=True),
    Column("decision", Json, nullable=True),
    Column("policy_version", Integer, nullable=True),
)

account_domains = Table(
    "account_domains",
    metadata,
    Column("domain", String(253), primary_key=True),
    Column("account_key", String(300), nullable=False, index=True),
)

account_names = Table(
    "account_names",
    metadata,
    Column("country", String(2), primary_key=True),
    Column("name", String(300), primary_key=True, doc="normalized (shared.accounts)"),
    Column("account_key", String(300), primary_key=True),
)

account_crm_ids = Table(
    "account_crm_ids",
    metadata,
    Column("crm_account_id", String(200), primary_key=True),
    Column("account_key", String(300), nullable=False, index=True),
)
