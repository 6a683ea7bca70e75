"""Tables the registration service owns: reference data, idempotency, de-duplication, keys.

They live in the shared read-model store (so every registration process sees them) and are
created by migration 0003. The reference tables are a fold of the reference topic (see
`adapters/reference.py`); the others are the edge's own bookkeeping. `api_keys` is defined in
`shared.api.auth` because the query API authenticates with it too.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from shared.api.auth import api_keys
from shared.readmodel.schema import Json, UTCDateTime, metadata

__all__ = [
    "api_keys",
    "idempotency_keys",
    "ingested_events",
    "re_reports",
    "ref_owners",
    "ref_partners",
    "ref_policies",
    "reference_positions",
]

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(100), primary_key=True, doc="the caller: API key id or admin"),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False, doc="SHA-256 of method, path, body"),
    Column("state", String(10), nullable=False, doc="pending | done"),
    Column("status_code", Integer, nullable=True),
    Column("body", Text, nullable=True),
    Column("headers", Json, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False,
           doc="first use: the command's identity derives from it"),
    Column("expires_at", UTCDateTime(), nullable=False),
    # Added by 0009: the running request's lease, renewed while it runs (null: created_at).
    Column("leased_at", UTCDateTime(), nullable=True),
    Index("ix_idempotency_keys_expires_at", "expires_at"),
)

ingested_events = Table(
    "ingested_events",
    metadata,
    Column("source", String(500), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("type", String(200), nullable=False),
    Column("state", String(10), nullable=False, doc="pending | done"),
    Column("result", Json, nullable=True),
    Column("received_at", UTCDateTime(), nullable=False),
)

re_reports = Table(
    "re_reports",
    metadata,
    Column("id", String(64), primary_key=True, doc="the registration or claim"),
    Column("account_key", String(300), nullable=False, doc="the key it was filed under"),
    Column("identity", Json, nullable=False, doc="its normalised account identity"),
    Column("reported", Json, nullable=False,
           doc="alias key -> registration ids its own reports carried"),
    Column("via", String(100), nullable=False),
    Column("owner", String(64), nullable=False, doc="the registration process that holds it"),
    Column("lease_until", UTCDateTime(), nullable=False,
           doc="renewed while its owner runs; past it another process takes it over"),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_re_reports_owner", "owner"),
)
"""Added by 0012: post-decision re-reports not yet run (`services/registration/rereports.py`):
written before the registration or claim is appended, deleted once it is decided and
re-reported."""

ref_partners = Table(
    "ref_partners",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("type", String(20), nullable=False),
    Column("tier", String(20), nullable=False),
    Column("region", String(100), nullable=True),
    Column("status", String(20), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Added by 0006: partners subscribe to `dispute.resolved`.
    Column("webhook_url", String(2000), nullable=True),
    Column("webhook_secret", String(200), nullable=True),
    Column("webhook_previous_secret", String(200), nullable=True),
    Column("webhook_previous_secret_until", UTCDateTime(), nullable=True),
)

ref_owners = Table(
    "ref_owners",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("email", String(320), nullable=True),
    Column("webhook_url", String(2000), nullable=True),
    Column("webhook_secret", String(200), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Added by 0006: the secret a rotation replaced, active for signing until `_until`.
    Column("webhook_previous_secret", String(200), nullable=True),
    Column("webhook_previous_secret_until", UTCDateTime(), nullable=True),
)

ref_policies = Table(
    "ref_policies",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("document", Json, nullable=False),
    Column("published_at", UTCDateTime(), nullable=False),
    Column("published_by", String(100), nullable=True),
)

reference_positions = Table(
    "reference_positions",
    metadata,
    Column("topic", String(249), primary_key=True),  # Kafka's longest topic name (0011)
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False),
)
