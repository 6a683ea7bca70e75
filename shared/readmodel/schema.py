"""Tables of the read models. Migrations in `migrations/versions` create exactly these.

Every table belongs to one projection model (see `services/projections/models.py`), which
stores its consumed log positions in `projection_positions` in the same transaction as its
rows; `dealreg projections rebuild --model NAME` empties a model's tables and replays.

- registrations model: `registrations`, `claims`, `pipeline_totals`,
  `pipeline_product_totals` (current state, pipeline aggregates, metrics inputs);
- ownership model: `ownership_intervals` (who held which account when: `as_of` reads);
- directory model: `account_domains`, `account_crm_ids`, `account_names`,
  `account_name_keys`, `account_links` (account resolution, exact and fuzzy);
- disputes model: `disputes`, `dispute_members`, `dispute_breaches`;
- timelines model: `timeline_entries`.

Money is stored as integers in ten-thousandths (`*_e4`), exact on both backends (the API
accepts at most four decimal places), so sums never go through floating point.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    exists,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

metadata = MetaData()

NAME_KEPT = 2**62
"""`account_names.filed_at` of a row no rejection takes back (`filed_by` None): above any
intake offset (`services.projections.domain.directory.KEPT`, the same value)."""


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
    Column("topic", String(249), primary_key=True),  # Kafka's longest topic name (0011)
    Column("partition", Integer, primary_key=True),
    Column("position", BigInteger, nullable=False),
)

# --- registrations model ---------------------------------------------------------------

registrations = Table(
    "registrations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("partner_id", String(100), nullable=True),
    Column("account_key", String(300), nullable=True),
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
    # Added by 0004: scope, money, lifecycle end and the program-metrics inputs.
    Column("scope_products", Json, nullable=True, doc="None: the whole account"),
    Column("amount_e4", BigInteger, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("end_reason", String(20), nullable=True),
    Column("closed_amount_e4", BigInteger, nullable=True),
    Column("closed_currency", String(3), nullable=True),
    Column("incumbent_until", UTCDateTime(), nullable=True),
    Column("first_decided_at", UTCDateTime(), nullable=True),
    Column("first_rule", String(40), nullable=True),
    Column("collided", Boolean, nullable=True),
    Column("decision_latency_ms", BigInteger, nullable=True),
    # Added by 0008: the first decision that settled it (anything but in_review).
    Column("settled_at", UTCDateTime(), nullable=True),
    Column("settle_ms", BigInteger, nullable=True),
    Index("ix_registrations_account_key", "account_key"),
    Index("ix_registrations_partner_id_id", "partner_id", "id"),
    Index("ix_registrations_status_id", "status", "id"),
    Index("ix_registrations_submitted_at", "submitted_at"),
    Index("ix_registrations_decision_latency_ms", "decision_latency_ms"),
    Index("ix_registrations_settle_ms", "settle_ms"),
    # Added by 0013: a CRM close by reference (`ReadModel.by_external_ref`) scanned.
    Index("ix_registrations_external_ref", "external_ref", "submitted_at", "id"),
)

claims = Table(
    "claims",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(20), nullable=True),
    Column("rep_id", String(100), nullable=True),
    Column("account_key", String(300), nullable=True),
    Column("account", Json, nullable=True),
    Column("products", Json, nullable=True),
    Column("status", String(20), nullable=False),
    Column("filed_at", UTCDateTime(), nullable=True),
    Column("decided_at", UTCDateTime(), nullable=True),
    Column("protected_until", UTCDateTime(), nullable=True),
    Column("extensions", Integer, nullable=False, server_default="0"),
    Column("dispute_id", String(64), nullable=True),
    Column("credit_percent", Numeric(5, 2), nullable=True),
    Column("decision", Json, nullable=True),
    Column("policy_version", Integer, nullable=True),
    Column("scope_products", Json, nullable=True),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("end_reason", String(20), nullable=True),
    Index("ix_claims_rep_id_id", "rep_id", "id"),
    Index("ix_claims_account_key", "account_key"),
)

pipeline_totals = Table(
    "pipeline_totals",
    metadata,
    Column("partner_id", String(100), primary_key=True),
    Column("status", String(20), primary_key=True),
    Column("motion", String(20), primary_key=True),
    Column("currency", String(3), primary_key=True, doc="'' when the deal has no amount"),
    Column("count", BigInteger, nullable=False),
    Column("amount_e4", BigInteger, nullable=False),
)

pipeline_product_totals = Table(
    "pipeline_product_totals",
    metadata,
    Column("product", String(100), primary_key=True, doc="'' for a deal naming no product"),
    Column("partner_id", String(100), primary_key=True),
    Column("status", String(20), primary_key=True),
    Column("motion", String(20), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("amount_e4", BigInteger, nullable=False),
)

# --- ownership model -------------------------------------------------------------------

ownership_intervals = Table(
    "ownership_intervals",
    metadata,
    Column("holder_id", String(64), primary_key=True, doc="registration or claim id"),
    Column("opened_by", String(250), primary_key=True, doc="id of the decision event"),
    Column("account_key", String(300), nullable=False),
    Column("kind", String(12), nullable=False, doc="protection | incumbency"),
    Column("party_type", String(10), nullable=False),
    Column("party_id", String(100), nullable=False),
    Column("products", Json, nullable=True, doc="None: the whole account"),
    Column("status", String(20), nullable=False),
    Column("credit_percent", Numeric(5, 2), nullable=True),
    Column("valid_from", UTCDateTime(), nullable=False),
    Column("valid_to", UTCDateTime(), nullable=True, doc="None: still current"),
    Column("protected_until", UTCDateTime(), nullable=True),
    Index("ix_ownership_intervals_account_key_valid_from", "account_key", "valid_from"),
)

# --- directory model -------------------------------------------------------------------

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
    Column("filed_by", String(64), nullable=True,
           doc="the latest registration or claim (in intake order, `filed_at`) that filed "
               "this name under this key (session 30, migration 0017; the first one in "
               "session 29, 0016): the name is not filed while an `account_names_unfiled` "
               "row names it (`name_filed`); None: filed before provenance was recorded, "
               "never taken back"),
    Column("filed_at", BigInteger, nullable=False, default=NAME_KEPT,
           server_default=text(str(NAME_KEPT)),
           doc="`filed_by`'s submission's intake offset, or NAME_KEPT (2^62) when "
               "`filed_by` is None, or NAME_KEPT plus the decision's time in microseconds "
               "when an undone rejection filed it again (`directory.refiled`): a later "
               "filing's submission replaces `filed_by` "
               "(`services.projections.domain.directory.later`)"),
)

account_names_unfiled = Table(
    "account_names_unfiled",
    metadata,
    Column("account_key", String(300), primary_key=True),
    Column("name", String(300), primary_key=True, doc="normalized name form"),
    Column("filed_by", String(64), primary_key=True,
           doc="the rejected registration or claim (its decision's `unfiled_names`)"),
)
"""Name forms rejected filings took back (session 30, migration 0017): an `account_names`
row whose latest filer took its name back is not filed (`name_filed`)."""


def name_filed(names: Any = None) -> ColumnElement[bool]:
    """Whether an `account_names` row (of `names`, an alias or the table) is filed: no
    `account_names_unfiled` row names its latest filer (session 30). One primary-key probe
    of a small table per row."""
    names = account_names if names is None else names
    unfiled = account_names_unfiled.c
    return ~exists().where(unfiled.account_key == names.c.account_key,
                           unfiled.name == names.c.name,
                           unfiled.filed_by == names.c.filed_by)


NAME_FILED_SQL = (
    "NOT EXISTS (SELECT 1 FROM account_names_unfiled u WHERE u.account_key = "
    "account_names.account_key AND u.name = account_names.name "
    "AND u.filed_by = account_names.filed_by)")
"""`name_filed` as SQL text, for statements written as text (`FROM account_names`)."""


account_name_keys = Table(
    "account_name_keys",
    metadata,
    Column("country", String(2), primary_key=True),
    Column("key", String(300), primary_key=True, doc="a blocking key of the sorted name"),
    Column("name", String(300), primary_key=True, doc="normalized name"),
)

account_crm_ids = Table(
    "account_crm_ids",
    metadata,
    Column("crm_account_id", String(200), primary_key=True),
    Column("account_key", String(300), nullable=False, index=True),
    Column("crm_spelling", String(200), index=True,
           doc="the id's `salesforce.any_spelling` form (session 28, migration 0014): "
               "`GET /v1/ownership` finds any spelling of a filed id under that policy"),
)

account_links = Table(
    "account_links",
    metadata,
    Column("account_key", String(300), primary_key=True, doc="the alias"),
    Column("canonical_key", String(300), nullable=False),
    Column("matched_by", String(20), nullable=False),
    Column("score", Numeric(6, 4), nullable=False),
    Column("linked_at", UTCDateTime(), nullable=False),
    Index("ix_account_links_canonical_key", "canonical_key"),
)

account_link_facts = Table(
    "account_link_facts",
    metadata,
    Column("account_key", String(300), primary_key=True, doc="the alias"),
    Column("canonical_key", String(300), primary_key=True),
    Column("holders", Integer, nullable=False,
           doc="partitions whose adjudicator holds this link now (links minus unlinks)"),
    Column("matched_by", String(20), nullable=False),
    Column("score", Numeric(6, 4), nullable=False),
    Column("linked_at", UTCDateTime(), nullable=False,
           doc="the earliest link decision of the pair (with its matched_by and score)"),
)
"""What every partition decided about one (alias, canonical) link, merged so the merge does
not depend on the order partitions are folded in: holders added, the earliest decision's
facts kept. `account_links` is derived from it (`repository._write_links`)."""

# --- disputes model --------------------------------------------------------------------

disputes = Table(
    "disputes",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("account_key", String(300), nullable=True),
    Column("status", String(10), nullable=False),
    Column("reason", String(30), nullable=True),
    Column("level", Integer, nullable=False),
    Column("owner_id", String(100), nullable=True),
    Column("owners", Json, nullable=False, doc="every owner it was assigned to, in order"),
    Column("opened_at", UTCDateTime(), nullable=True),
    Column("due_at", UTCDateTime(), nullable=True),
    Column("reminder_at", UTCDateTime(), nullable=True),
    Column("acknowledged_at", UTCDateTime(), nullable=True),
    Column("acknowledged_by", String(100), nullable=True),
    Column("registration_ids", Json, nullable=False),
    Column("breached", Boolean, nullable=False),
    Column("resolution", Json, nullable=True),
    Column("outcome", String(30), nullable=True),
    Column("resolved_at", UTCDateTime(), nullable=True),
    Column("resolve_ms", BigInteger, nullable=True),
    Column("rule", String(40), nullable=True),
    Column("explanation", String(4000), nullable=True),
    Column("policy_version", Integer, nullable=True),
    Index("ix_disputes_owner_id_status_id", "owner_id", "status", "id"),
    Index("ix_disputes_status_id", "status", "id"),
    Index("ix_disputes_account_key", "account_key"),
    Index("ix_disputes_opened_at", "opened_at"),
    Index("ix_disputes_resolve_ms", "resolve_ms"),
)

dispute_members = Table(
    "dispute_members",
    metadata,
    Column("dispute_id", String(100), primary_key=True),
    Column("member_id", String(64), primary_key=True, doc="registration or claim id"),
    Index("ix_dispute_members_member_id", "member_id"),
)

dispute_breaches = Table(
    "dispute_breaches",
    metadata,
    Column("dispute_id", String(100), primary_key=True),
    Column("level", Integer, primary_key=True),
    Column("deadline", UTCDateTime(), nullable=False),
    Column("outcome", String(20), nullable=False, doc="escalated | kept_open | fallback"),
)

# --- timelines model -------------------------------------------------------------------

timeline_entries = Table(
    "timeline_entries",
    metadata,
    Column("subject_id", String(100), primary_key=True, doc="registration, claim or dispute"),
    Column("event_id", String(250), primary_key=True),
    Column("at_us", BigInteger, nullable=False, doc="the event's own time, µs since epoch"),
    Column("type", String(100), nullable=False),
    Column("data", Text, nullable=False,
           doc="the event's data as compact JSON text, without empty fields"),
)

# --- notifications model (the outbox; never rebuilt) ------------------------------------

notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", String(64), primary_key=True, doc="delivery id = Standard Webhooks id"),
    Column("event_id", String(250), nullable=False, doc="the decision event"),
    Column("dispute_id", String(100), nullable=False),
    Column("type", String(40), nullable=False, doc="dispute.opened | .reminder | ..."),
    Column("recipient_kind", String(10), nullable=False, doc="owner | partner"),
    Column("recipient_id", String(200), nullable=False),
    Column("channel", String(10), nullable=False, doc="webhook | email"),
    Column("payload", Json, nullable=False, doc='{"type", "timestamp", "data"}'),
    Column("status", String(10), nullable=False,
           doc="pending | delivered | dead | disabled | stale"),
    Column("attempts", Integer, nullable=False, doc="attempts made, ever"),
    Column("retry_from", Integer, nullable=False,
           doc="`attempts` when last (re)queued: the schedule restarts there"),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True,
           doc="claimed by a sender until then (a crashed sender's claim expires)"),
    Column("last_error", String(2000), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime(), nullable=True),
    Column("traceparent", String(200), nullable=True,
           doc="W3C trace context of the decision event, sent as the webhook's header"),
    Column("tracestate", String(600), nullable=True),
    Index("ix_notification_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_notification_outbox_recipient", "recipient_kind", "recipient_id", "created_at"),
)

notification_attempts = Table(
    "notification_attempts",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("attempt", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("outcome", String(20), nullable=False,
           doc="delivered | failed | dead | disabled"),
    Column("status_code", Integer, nullable=True),
    Column("error", String(2000), nullable=True),
    Column("duration_ms", Integer, nullable=False),
)

notification_disabled_endpoints = Table(
    "notification_disabled_endpoints",
    metadata,
    Column("url", String(2000), primary_key=True, doc="a webhook URL that answered 410"),
    Column("disabled_at", UTCDateTime(), nullable=False),
)
