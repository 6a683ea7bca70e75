"""Reference data: policy versions, partners and escalation owners.

The reference topic is the system of record; the `ref_*` tables are its fold, kept with the
topic position they reflect (`reference_positions`). Every write takes one lock (a row lock
on PostgreSQL, plus an in-process lock), folds whatever other processes appended since, then
appends its own event and folds it: so versions are assigned without gaps or duplicates, a
crash between append and table write is repaired by the next writer, and a policy version is
in the tables (and can be stamped on a command) only once it is durable on the topic.

Reads for stamping come from a small in-process cache (`reference_cache_seconds`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import shared.events.reference  # noqa: F401  (registers the reference event types)
from services.registration.adapters.sql import insert_if_absent, upsert
from services.registration.adapters.tables import (
    ref_owners,
    ref_partners,
    ref_policies,
    reference_positions,
)
from shared.eventlog import Appended, EventLog, OutgoingRecord, Record, TopicPartition
from shared.events import DomainEvent, encode, new_envelope
from shared.events.codec import decode
from shared.events.reference import (
    POLICY_KEY,
    OwnerUpdated,
    PartnerUpdated,
    PolicyPublished,
    owner_key,
    partner_key,
)
from shared.ids import new_id
from shared.logging import get_logger
from shared.policy import Policy
from shared.readmodel.store import reader

log = get_logger(__name__)


PartnerHook = Callable[[dict[str, Any] | None, dict[str, Any]], Awaitable[None]]


class VersionConflict(Exception):
    """The caller expected another next version (optimistic check on `PUT /v1/policy`)."""

    def __init__(self, expected: int) -> None:
        super().__init__(f"the next policy version is {expected}")
        self.expected = expected


@dataclass(frozen=True, slots=True)
class PublishedPolicy:
    policy: Policy
    published_at: datetime
    created: bool


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_id(secret: str) -> str:
    """A stable, non-secret name for a secret (shown next to it, usable in logs)."""
    return "sec_" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def active_secrets(row: dict[str, Any], now: datetime | None = None) -> list[dict[str, Any]]:
    """The secrets deliveries are signed with now: the current one, then the previous one
    while its grace period lasts."""
    now = now or datetime.now(UTC)
    out: list[dict[str, Any]] = []
    if row.get("webhook_secret"):
        out.append({"id": secret_id(row["webhook_secret"]), "secret": row["webhook_secret"],
                    "status": "current", "expires_at": None})
    previous, until = row.get("webhook_previous_secret"), row.get("webhook_previous_secret_until")
    if previous and until is not None and until > now:
        out.append({"id": secret_id(previous), "secret": previous, "status": "previous",
                    "expires_at": until})
    return out


def webhook_secrets(before: dict[str, Any] | None, fields: dict[str, Any], *, at: datetime,
                    grace_seconds: float, required: bool) -> dict[str, Any]:
    """`fields` (a PUT body) with the secret columns decided; pops `rotate_secret` and
    `retire_previous_secret`.

    - No secret given: the current one is kept; a new one is generated for a new owner
      (`required`) or when a webhook URL is first set (partners).
    - A secret given without rotation replaces the current one at once (a compromised
      secret): a previous one is dropped too.
    - `rotate_secret`: a new secret (the given one, or generated) becomes current and the
      old one stays active for signing for `grace_seconds`.
    - `retire_previous_secret`: the previous secret stops now. An expired one is dropped.
    """
    wanted = dict(fields)
    rotate = bool(wanted.pop("rotate_secret", False))
    retire = bool(wanted.pop("retire_previous_secret", False))
    before = before or {}
    current: str | None = before.get("webhook_secret")
    previous: str | None = before.get("webhook_previous_secret")
    until: datetime | None = before.get("webhook_previous_secret_until")
    if previous is None or until is None or until <= at:
        previous, until = None, None
    given: str | None = wanted.get("webhook_secret") or None
    if rotate:
        new = given or new_webhook_secret()
        if current and current != new:
            previous, until = current, at + timedelta(seconds=grace_seconds)
        current = new
    elif given and given != current:
        current, previous, until = given, None, None
    elif not current and (required or wanted.get("webhook_url")):
        current = new_webhook_secret()
    if retire:
        previous, until = None, None
    wanted.update(webhook_secret=current, webhook_previous_secret=previous,
                  webhook_previous_secret_until=until)
    return wanted


class ReferenceData:
    def __init__(
        self,
        eventlog: EventLog,
        engine: AsyncEngine,
        topic: str,
        *,
        source: str,
        cache_seconds: float,
    ) -> None:
        self.eventlog = eventlog
        self.engine = engine
        # The cached reads (the policy in force, partners) without BEGIN / ROLLBACK
        # around them on PostgreSQL (`store.reader`): two round trips fewer per refresh.
        self._reads = reader(engine)
        self.topic = topic
        self.source = source
        self.cache_seconds = cache_seconds
        self._tp = TopicPartition(topic, 0)
        self._lock = asyncio.Lock()
        self._current: tuple[float, Policy] | None = None
        self._policies: dict[int, Policy] = {}
        self._versions: dict[int, tuple[Policy, datetime]] = {}
        self._partners: dict[str, tuple[float, dict[str, Any] | None]] = {}
        # Single flight: when a cached entry expires, one read refreshes it and every
        # request that needs it meanwhile awaits that read (hundreds in flight under load
        # each read it otherwise, seen in the profile as a tenth of the process's CPU).
        self._policy_read: asyncio.Task[Policy] | None = None
        self._partner_reads: dict[str, asyncio.Task[dict[str, Any] | None]] = {}
        self.on_partner_change: PartnerHook | None = None
        """Called with (before, after) before a partner change is recorded."""

    # --- the write protocol ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[tuple[AsyncConnection, list[int]]]:
        """Hold the reference lock inside one transaction, caught up with the topic."""
        async with self._lock, self.engine.begin() as conn:
            key = {"topic": self.topic, "partition": 0}
            await insert_if_absent(conn, reference_positions, {**key, "position": 0},
                                   ("topic", "partition"))
            position = (await conn.execute(
                select(reference_positions.c.position)
                .where(reference_positions.c.topic == self.topic,
                       reference_positions.c.partition == 0)
                .with_for_update()
            )).scalar_one()
            cursor = [position]
            await self._catch_up(conn, cursor)
            yield conn, cursor
            await upsert(conn, reference_positions, [{**key, "position": cursor[0]}],
                         ("topic", "partition"))
        self._forget_caches()

    async def _catch_up(self, conn: AsyncConnection, cursor: list[int],
                        until: int | None = None) -> None:
        end = (await self.eventlog.end_positions(self.topic)).get(self._tp, 0)
        if until is not None:
            end = max(end, until)
        if cursor[0] >= end:
            return
        async for batch in self.eventlog.read(self._tp, cursor[0], end):
            for record in batch:
                await self._fold(conn, record)
                cursor[0] = record.offset + 1

    async def _fold(self, conn: AsyncConnection, record: Record) -> None:
        try:
            _, event = decode(record.value)
        except ValueError as exc:
            log.error("undecodable_reference_record", offset=record.offset, error=str(exc))
            return
        await self._apply(conn, event)

    async def _apply(self, conn: AsyncConnection, event: DomainEvent) -> None:
        if isinstance(event, PolicyPublished):
            # Versions are immutable: the first record of a version wins.
            await insert_if_absent(conn, ref_policies, {
                "version": event.version, "document": event.document,
                "published_at": event.published_at, "published_by": event.published_by,
            }, ("version",))
        elif isinstance(event, PartnerUpdated):
            await upsert(conn, ref_partners, [{
                "id": event.partner_id, "name": event.name, "type": event.type,
                "tier": event.tier, "region": event.region, "status": event.status,
                "updated_at": event.updated_at, "webhook_url": event.webhook_url,
                "webhook_secret": event.webhook_secret,
                "webhook_previous_secret": event.webhook_previous_secret,
                "webhook_previous_secret_until": event.webhook_previous_secret_until,
            }], ("id",))
        elif isinstance(event, OwnerUpdated):
            await upsert(conn, ref_owners, [{
                "id": event.owner_id, "name": event.name, "email": event.email,
                "webhook_url": event.webhook_url, "webhook_secret": event.webhook_secret,
                "updated_at": event.updated_at,
                "webhook_previous_secret": event.webhook_previous_secret,
                "webhook_previous_secret_until": event.webhook_previous_secret_until,
            }], ("id",))

    async def _append(self, conn: AsyncConnection, cursor: list[int], key: str,
                      event: DomainEvent, at: datetime) -> Appended:
        envelope = new_envelope(event, id=new_id("evt"), source=f"{self.source}/reference",
                                subject=key, time=at)
        [appended] = await self.eventlog.append(
            [OutgoingRecord(self.topic, key, encode(envelope))])
        if appended.offset == cursor[0]:
            await self._apply(conn, event)
            cursor[0] = appended.offset + 1
        else:  # someone appended without the lock (or a gap): fold in log order
            await self._catch_up(conn, cursor, until=appended.offset + 1)
        return appended

    def _forget_caches(self) -> None:
        # A read in flight may have started before this change: later callers do not
        # join it, and it does not fill the cache (each checks it is still the current read).
        self._current = None
        self._partners.clear()
        self._policy_read = None
        self._partner_reads.clear()

    async def sync(self) -> None:
        """Fold what other processes appended (at start; cheap when nothing is new)."""
        async with self._writing():
            pass

    # --- policy ------------------------------------------------------------------------------

    async def current_policy(self) -> Policy:
        """The policy in force: cached briefly; version 1 (the defaults) is published the
        first time one is needed, so every stamped version is on the reference topic."""
        now = time.monotonic()
        if self._current is not None and self._current[0] > now:
            return self._current[1]
        read = self._policy_read
        if read is None:
            read = self._policy_read = asyncio.create_task(self._read_policy(now))
        return await asyncio.shield(read)

    async def _read_policy(self, now: float) -> Policy:
        me = asyncio.current_task()
        try:
            async with self._reads.connect() as conn:
                latest = await self._latest(conn)
            if latest is None:
                latest = (await self.publish(Policy.default(), published_by="system",
                                             only_if_none=True)).policy
            elif self._policy_read is me:  # not invalidated meanwhile
                self._current = (now + self.cache_seconds, latest)
            return latest
        finally:
            if self._policy_read is me:
                self._policy_read = None

    async def latest_policy(self) -> Policy:
        """The newest published version, read now (not cached): what an edit merges onto."""
        async with self.engine.connect() as conn:
            latest = await self._latest(conn)
        return latest if latest is not None else await self.current_policy()

    async def _latest(self, conn: AsyncConnection) -> Policy | None:
        row = (await conn.execute(
            select(ref_policies.c.version, ref_policies.c.document)
            .order_by(ref_policies.c.version.desc()).limit(1)
        )).first()
        if row is None:
            return None
        return self._policy_of(row.version, row.document)

    def _policy_of(self, version: int, document: dict[str, Any]) -> Policy:
        cached = self._policies.get(version)
        if cached is None:
            cached = Policy.from_published({**document, "version": version})
            self._policies[version] = cached
        return cached

    async def policy(self, version: int) -> tuple[Policy, datetime] | None:
        """A published version and when: kept once read (versions are immutable, the
        first record of a version wins), so the copy reports and extensions that ask for
        a registration's version on every request read it once per process. An unknown
        version is read again next time (it may be published meanwhile)."""
        found = self._versions.get(version)
        if found is not None:
            return found
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                select(ref_policies).where(ref_policies.c.version == version)
            )).first()
        if row is None:
            return None
        found = self._versions[version] = (self._policy_of(row.version, row.document),
                                           row.published_at)
        return found

    async def published_at(self, version: int) -> datetime | None:
        found = await self.policy(version)
        return found[1] if found else None

    async def publish(self, document: Policy, *, published_by: str | None,
                      expected_version: int | None = None,
                      only_if_none: bool = False) -> PublishedPolicy:
        """Publish `document` as the next version, unless it equals the current one (then
        the current version is returned, `created=False`: PUT stays idempotent)."""
        async with self._writing() as (conn, cursor):
            latest = await self._latest(conn)
            if latest is not None:
                same = latest.model_dump(mode="json", exclude={"version"}) == \
                    document.model_dump(mode="json", exclude={"version"})
                if only_if_none or (same and expected_version in (None, latest.version)):
                    at = await self._published_at(conn, latest.version)
                    return PublishedPolicy(latest, at, False)
            version = (latest.version if latest is not None else 0) + 1
            if expected_version is not None and expected_version != version:
                raise VersionConflict(version)
            policy = document.model_copy(update={"version": version})
            at = datetime.now(UTC)
            event = PolicyPublished(version=version, document=policy.model_dump(mode="json"),
                                    published_at=at, published_by=published_by)
            await self._append(conn, cursor, POLICY_KEY, event, at)
            log.info("policy_published", version=version, by=published_by)
            return PublishedPolicy(policy, at, True)

    async def _published_at(self, conn: AsyncConnection, version: int) -> datetime:
        at: datetime = (await conn.execute(
            select(ref_policies.c.published_at).where(ref_policies.c.version == version)
        )).scalar_one()
        return at

    # --- partners ------------------------------------------------------------------------------

    async def partner(self, partner_id: str) -> dict[str, Any] | None:
        now = time.monotonic()
        cached = self._partners.get(partner_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        read = self._partner_reads.get(partner_id)
        if read is None:
            read = self._partner_reads[partner_id] = asyncio.create_task(
                self._read_partner(partner_id, now))
        return await asyncio.shield(read)

    async def _read_partner(self, partner_id: str, now: float) -> dict[str, Any] | None:
        me = asyncio.current_task()
        try:
            async with self._reads.connect() as conn:
                row = (await conn.execute(
                    select(ref_partners).where(ref_partners.c.id == partner_id))).first()
            found = dict(row._mapping) if row is not None else None
            if self._partner_reads.get(partner_id) is me:  # not invalidated meanwhile
                if len(self._partners) > 100_000:
                    self._partners.clear()
                self._partners[partner_id] = (now + self.cache_seconds, found)
            return found
        finally:
            if self._partner_reads.get(partner_id) is me:
                del self._partner_reads[partner_id]

    async def put_partner(
        self, partner_id: str, fields: dict[str, Any], *, by: str | None,
        grace_seconds: float = 86_400.0,
    ) -> tuple[dict[str, Any], bool, bool]:
        """Create or replace a partner: (row, created, changed).

        `on_partner_change(before, after)` (the status fan-out to the intake partitions)
        runs under the lock BEFORE the reference event is appended: if the process dies in
        between, the partner table still shows the old values, so the client's retry of
        this idempotent PUT fans out again (a repeated status is harmless downstream) and
        then records the change. The other order could lose the fan-out for good."""
        async with self._writing() as (conn, cursor):
            before_row = (await conn.execute(
                select(ref_partners).where(ref_partners.c.id == partner_id))).first()
            before = dict(before_row._mapping) if before_row is not None else None
            at = datetime.now(UTC)
            fields = webhook_secrets(before, fields, at=at, grace_seconds=grace_seconds,
                                     required=False)
            if before is not None and all(before[k] == v for k, v in fields.items()):
                return before, False, False
            if self.on_partner_change is not None:
                await self.on_partner_change(before, {"id": partner_id, **fields,
                                                      "updated_at": at})
            event = PartnerUpdated(partner_id=partner_id, updated_at=at, updated_by=by,
                                   **fields)
            await self._append(conn, cursor, partner_key(partner_id), event, at)
            return {"id": partner_id, **fields, "updated_at": at}, before is None, True

    # --- owners --------------------------------------------------------------------------------

    async def owner(self, owner_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                select(ref_owners).where(ref_owners.c.id == owner_id))).first()
        return dict(row._mapping) if row is not None else None

    async def put_owner(self, owner_id: str, fields: dict[str, Any], *, by: str | None,
                        grace_seconds: float = 86_400.0) -> tuple[dict[str, Any], bool]:
        """Create or replace an owner: (row, created). A missing secret is generated for a
        new owner and kept for an existing one; see `webhook_secrets` for rotation."""
        async with self._writing() as (conn, cursor):
            before_row = (await conn.execute(
                select(ref_owners).where(ref_owners.c.id == owner_id))).first()
            before = dict(before_row._mapping) if before_row is not None else None
            at = datetime.now(UTC)
            wanted = webhook_secrets(before, fields, at=at, grace_seconds=grace_seconds,
                                     required=True)
            if before is not None and all(before[k] == v for k, v in wanted.items()):
                return before, False
            event = OwnerUpdated(owner_id=owner_id, updated_at=at, updated_by=by, **wanted)
            await self._append(conn, cursor, owner_key(owner_id), event, at)
            return {"id": owner_id, **wanted, "updated_at": at}, before is None
