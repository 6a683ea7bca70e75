"""The delivery worker: sends the notification outbox (webhooks and e-mail), at least once.

Loop: claim due deliveries (`status = pending`, `next_attempt_at <= now`, no live lease;
`FOR UPDATE SKIP LOCKED` on PostgreSQL so several workers share the work) by setting a
lease, send each in its own task under a per-endpoint semaphore (a slow receiver delays
only itself), then record the outcome and the attempt in one transaction. A worker killed
mid-delivery leaves a lease that expires: the delivery is retried with the same
`webhook-id`, so receivers de-duplicate.

Outcomes: a 2xx is success; a 410 disables the URL (every later delivery to it is
`disabled` until an admin redelivers); 429 and 503 retry after `Retry-After` when given;
anything else retries on the schedule with jitter, and after its last attempt the
delivery is `dead` (visible in the log, redeliverable).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import orjson
from sqlalchemy import bindparam, case, column, delete, func, select, table, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from standardwebhooks import Webhook

from shared import metrics, tracing
from shared.api import partner_view
from shared.busy import retry_when_busy
from shared.logging import get_logger
from shared.readmodel.queries import one_of
from shared.readmodel.schema import (
    UTCDateTime,
    notification_attempts,
    notification_disabled_endpoints,
    notification_outbox,
)
from shared.readmodel.store import reader
from shared.settings import Settings
from shared.webhooks.url_policy import (
    ResolvedTarget,
    Resolver,
    Unresolvable,
    UnsafeUrl,
    UrlPolicy,
    parse_webhook_url,
    resolve_webhook,
    system_resolver,
)

log = get_logger(__name__)

# The registration service's owner and partner tables (services do not import each other).
ref_owners = table("ref_owners", column("id"), column("email"), column("webhook_url"),
                   column("webhook_secret"), column("webhook_previous_secret"),
                   column("webhook_previous_secret_until", UTCDateTime()))
ref_partners = table("ref_partners", column("id"), column("webhook_url"),
                     column("webhook_secret"), column("webhook_previous_secret"),
                     column("webhook_previous_secret_until", UTCDateTime()))
RECIPIENTS = {"owner": ref_owners, "partner": ref_partners}


def signing_secrets(recipient: Any, now: datetime) -> list[str]:
    """Every secret a delivery is signed with: the current one(s) (whitespace-separated),
    and the one a rotation replaced while its grace period lasts."""
    found = list((recipient["webhook_secret"] or "").split())
    previous = recipient.get("webhook_previous_secret")
    until = recipient.get("webhook_previous_secret_until")
    if previous and until is not None and until > now:
        found.extend(s for s in previous.split() if s not in found)
    return found

MAX_RETRY_AFTER_SECONDS = 86_400.0


async def post_pinned(http: httpx.AsyncClient, resolved: ResolvedTarget, content: bytes,
                      headers: dict[str, str], timeout: float) -> httpx.Response:
    """POST to an address `resolve_webhook` checked, never to a fresh resolution of the name:
    the URL carries the address, the name goes in `Host` and (https) in TLS SNI, which is
    also the name the certificate is verified against. Addresses are tried in order while
    the connection fails; the last error is raised."""
    target = resolved.target
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    failure: httpx.HTTPError | None = None
    for address in resolved.addresses:
        try:
            return await http.post(target.url_for(address), content=content,
                                   headers={**headers, "host": target.host_header},
                                   extensions=extensions, timeout=timeout)
        except httpx.ConnectError as exc:
            failure = exc
    raise failure or httpx.ConnectError("no checked address to connect to")


@dataclass(frozen=True)
class Outcome:
    kind: str  # delivered | retry | disabled | stale
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        pass
    with contextlib.suppress(TypeError, ValueError):
        from email.utils import parsedate_to_datetime
        return min(max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(),
                       0.0), MAX_RETRY_AFTER_SECONDS)
    return None


def next_delay(schedule: Sequence[float], done: int, jitter: float,
               retry_after: float | None = None) -> float | None:
    """Seconds until the next attempt after `done` attempts of this round; None: dead."""
    if done >= len(schedule):
        return None
    if retry_after is not None:
        return retry_after
    return schedule[done] * (1 + random.uniform(-jitter, jitter))


class NotificationSender:
    def __init__(self, engine: AsyncEngine, settings: Settings,
                 *, http: httpx.AsyncClient | None = None,
                 resolver: Resolver = system_resolver) -> None:
        self.engine = engine
        self.settings = settings
        self.http = http
        self.url_policy = UrlPolicy.from_settings(settings)
        self.resolver = resolver
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        self.semaphores: dict[str, asyncio.Semaphore] = {}
        self.wake = asyncio.Event()
        # Recipients read by `claim` for the deliveries it claimed (taken by `_attempt`).
        self._recipients: dict[str, dict[str, Any] | None] = {}
        self._outcomes: list[_Pending] = []
        self._recorder: asyncio.Task[None] | None = None

    # --- the loop ---------------------------------------------------------------------

    async def run(self, stopping: Callable[[], bool]) -> None:
        own_client = self.http is None
        # No proxies from the environment (they would resolve again) and no kept-alive
        # connections: a connection is opened to a checked address for one delivery, with
        # that delivery's host name as SNI, and never reused for another name.
        self.http = self.http or httpx.AsyncClient(
            timeout=self.settings.notification_timeout_seconds, follow_redirects=False,
            trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))
        try:
            woken = False
            while not stopping():
                if woken and self.settings.notification_coalesce_seconds > 0:
                    # Woken by a projection batch that queued deliveries or a delivery
                    # that finished: under load one comes every few milliseconds, and a
                    # claim (a read, a write transaction) each cost more than the
                    # deliveries it found (session 28). The wake-ups meanwhile are one.
                    await asyncio.sleep(self.settings.notification_coalesce_seconds)
                woken = False
                room = self.settings.notification_max_in_flight - len(self.in_flight)
                self.wake.clear()  # what is queued from here on is claimed by this claim
                claimed = await self.claim(room) if room > 0 else []
                for row in claimed:
                    self._start(row)
                if not claimed or (len(claimed) < room and not self.wake.is_set()):
                    # Nothing more due (a claim takes every due delivery it has room
                    # for): sleep until the next delivery falls due (a retry, an
                    # expired lease), a wake-up (the projection worker queued a delivery,
                    # a delivery finished, a redelivery) or at the latest the poll interval
                    # (deliveries queued by another process), not a query every 0.2 s.
                    if stopping():  # a stop that came during the claim: do not sleep through it
                        break
                    wait = self.settings.notification_poll_seconds
                    if room > 0:
                        wait = min(wait, await self.seconds_to_next_due())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), max(0.0, wait))
                        woken = True
        finally:
            tasks = list(self.in_flight.values())
            for task in tasks:
                task.cancel()  # their leases expire; the deliveries are retried
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._recorder is not None:  # outcomes already reported are written
                await asyncio.gather(self._recorder, return_exceptions=True)
            if own_client and self.http is not None:
                await self.http.aclose()
                # A restarted run (the supervisor restarts a crashed worker) opens its own
                # again: keeping the closed one failed every delivery from then on.
                self.http = None

    def _start(self, row: dict[str, Any]) -> None:
        delivery = str(row["id"])
        task = asyncio.create_task(self._deliver(row), name=f"deliver-{delivery}")
        self.in_flight[delivery] = task

        def done(_: asyncio.Task[None]) -> None:
            self.in_flight.pop(delivery, None)
            self._recipients.pop(delivery, None)
            self.wake.set()  # room for another claim; its outcome (a retry time) is written
        task.add_done_callback(done)

    async def seconds_to_next_due(self) -> float:
        """Seconds until the earliest pending delivery may be claimed (its next attempt,
        or its lease's end if later); infinity when none is pending."""
        o = notification_outbox.c
        due = case((o.lease_until > o.next_attempt_at, o.lease_until),
                   else_=o.next_attempt_at)
        try:  # (a read: on PostgreSQL in autocommit, no BEGIN / ROLLBACK around it)
            async with reader(self.engine).connect() as conn:
                first = (await conn.execute(
                    select(func.min(due, type_=o.next_attempt_at.type))
                    .where(o.status == "pending"))).scalar()
        except Exception as exc:  # the claim reports a broken store; wait the poll interval
            log.warning("notification_next_due_failed", error=type(exc).__name__)
            return math.inf
        if first is None:
            return math.inf
        due_at: datetime = first if first.tzinfo else first.replace(tzinfo=UTC)
        return float((due_at - datetime.now(UTC)).total_seconds())

    async def claim(self, limit: int) -> list[dict[str, Any]]:
        """Lease up to `limit` due deliveries (retried while SQLite is locked by another
        writer: a claim is one transaction, applied whole or not at all)."""
        return await retry_when_busy(lambda: self._claim(limit), what="notifications.claim")

    async def _claim(self, limit: int) -> list[dict[str, Any]]:
        if self.engine.dialect.name == "postgresql":
            return await self._claim_in_one(limit)
        now = datetime.now(UTC)
        o = notification_outbox.c
        query = (select(notification_outbox)
                 .where(o.status == "pending", o.next_attempt_at <= now,
                        (o.lease_until.is_(None)) | (o.lease_until < now))
                 .order_by(o.next_attempt_at).limit(limit))
        if self.engine.dialect.name == "sqlite":
            # A poll that finds nothing due (most of them) takes no write lock: SQLite has
            # one writer per file, which the projection worker needs.
            async with self.engine.connect() as conn:
                due = (await conn.execute(query.with_only_columns(o.id))).scalars().all()
            if not any(d not in self.in_flight for d in due):
                return []
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = [dict(r) for r in (await conn.execute(query)).mappings()
                    if r["id"] not in self.in_flight]
            if rows:
                lease = now + timedelta(seconds=self.settings.notification_lease_seconds)
                await conn.execute(update(notification_outbox)
                                   .where(one_of(conn.dialect.name, o.id,
                                                 [r["id"] for r in rows]))
                                   .values(lease_until=lease))
                # The recipients too, one query per kind: a connection per delivery was
                # most of the worker's cost under load (and opened connections above the
                # pool when a claim started many deliveries at once).
                await self._read_recipients(conn, rows)
        return rows

    async def _claim_in_one(self, limit: int) -> list[dict[str, Any]]:
        """PostgreSQL: lease up to `limit` due deliveries in one statement, in autocommit
        (`UPDATE .. WHERE id IN (SELECT .. FOR UPDATE SKIP LOCKED) RETURNING`: atomic on
        its own, and two senders never lease the same row), then read their recipients.
        A claim was a transaction of five round trips (BEGIN, the locking SELECT, the
        lease UPDATE, the recipients, COMMIT) and one that found nothing three, and at
        low rates the worker claims once per delivery and once more after each, when
        the delivery's end wakes it (session 28). Deliveries this process still has in
        flight are not taken again (their lease ran out while they were sent)."""
        now = datetime.now(UTC)
        o = notification_outbox.c
        lease = now + timedelta(seconds=self.settings.notification_lease_seconds)
        due = (select(o.id)
               .where(o.status == "pending", o.next_attempt_at <= now,
                      (o.lease_until.is_(None)) | (o.lease_until < now),
                      ~one_of("postgresql", o.id, sorted(self.in_flight)))
               .order_by(o.next_attempt_at).limit(limit)
               .with_for_update(skip_locked=True))
        async with reader(self.engine).connect() as conn:
            rows = sorted(
                (dict(r) for r in (await conn.execute(
                    update(notification_outbox).where(o.id.in_(due.scalar_subquery()))
                    .values(lease_until=lease).returning(notification_outbox))).mappings()),
                key=lambda r: (r["next_attempt_at"], r["id"]))
            # The recipients too (read after the lease: a delivery reads its recipient's
            # address at send time, never a stale copy).
            await self._read_recipients(conn, rows)
        return rows

    async def _read_recipients(self, conn: AsyncConnection, rows: list[dict[str, Any]]
                               ) -> None:
        """The claimed deliveries' recipients, one query per kind of recipient."""
        for kind in sorted({str(r["recipient_kind"]) for r in rows}):
            recipients = RECIPIENTS.get(kind, ref_owners)
            ids = sorted({r["recipient_id"] for r in rows
                          if str(r["recipient_kind"]) == kind})
            found = {f["id"]: dict(f) for f in (await conn.execute(
                select(recipients).where(
                    one_of(conn.dialect.name, recipients.c.id, ids)))).mappings()}
            for r in rows:
                if str(r["recipient_kind"]) == kind:
                    self._recipients[str(r["id"])] = found.get(r["recipient_id"])

    # --- one delivery -----------------------------------------------------------------

    def _stale(self, row: dict[str, Any]) -> bool:
        """Never attempted (its first attempt is still due at the event's own time) and older
        than the configured age: a new database replaying an old log, not news."""
        created = row["created_at"]
        return bool(
            row["next_attempt_at"] == created
            and datetime.now(UTC) - created
            > timedelta(seconds=self.settings.notification_max_age_seconds)
        )

    async def _deliver(self, row: dict[str, Any]) -> None:
        cause = tracing.TraceContext.parse(row.get("traceparent"), row.get("tracestate"))
        if cause is None or not tracing.enabled():
            await self._attempt(row)
            return
        with tracing.span("notification.deliver", cause, delivery_id=row["id"],
                          channel=row["channel"], type=row["type"],
                          recipient_kind=row["recipient_kind"], attempt=row.get("attempts")):
            await self._attempt(row)

    async def _attempt(self, row: dict[str, Any]) -> None:
        started = time.perf_counter()
        if self._stale(row):
            await self._record(row, Outcome("stale", error=(
                "not sent: the event is older than DEALREG_NOTIFICATION_MAX_AGE_SECONDS "
                "(history replayed into a new read model); redeliver to send it anyway")), 0)
            return
        try:
            owner = await self._recipient(row)
            endpoint = self._endpoint(row, owner)
            semaphore = self.semaphores.setdefault(
                endpoint, asyncio.Semaphore(self.settings.notification_endpoint_concurrency))
            async with semaphore:
                if row["channel"] == "webhook":
                    outcome = await self._webhook(row, owner)
                else:
                    outcome = await self._email(row, owner)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not stop the worker; retried like a failure
            log.exception("notification_delivery_failed", delivery_id=row["id"])
            outcome = Outcome("retry", error=f"internal error: {exc}"[:2000])
        tracing.annotate(outcome=outcome.kind, status_code=outcome.status_code)
        await self._record(row, outcome, int((time.perf_counter() - started) * 1000))

    async def _recipient(self, row: dict[str, Any]) -> Any:
        """The delivery's recipient row as `claim` read it (else read now), None if gone."""
        delivery = str(row["id"])
        if delivery in self._recipients:
            return self._recipients.pop(delivery)
        recipients = RECIPIENTS.get(row["recipient_kind"], ref_owners)
        async with self.engine.connect() as conn:
            return (await conn.execute(select(recipients).where(
                recipients.c.id == row["recipient_id"]))).mappings().first()

    def _endpoint(self, row: dict[str, Any], owner: Any) -> str:
        if row["channel"] == "email":
            return f"smtp://{self.settings.smtp_host}:{self.settings.smtp_port}"
        try:
            target = parse_webhook_url((owner or {}).get("webhook_url") or "")
        except UnsafeUrl:
            return "unsafe"  # refused by _webhook before anything is sent
        return f"{target.scheme}://{target.host_header}"

    async def _webhook(self, row: dict[str, Any], owner: Any) -> Outcome:
        url = owner["webhook_url"] if owner is not None else None
        if not url:
            return Outcome("disabled", error="the recipient has no webhook URL")
        try:  # resolve once, check every address, connect only to those (no rebinding)
            resolved = await resolve_webhook(url, self.url_policy, self.resolver)
        except UnsafeUrl as exc:
            return Outcome("disabled", error=f"unsafe webhook URL: {exc.reason}"[:2000])
        except Unresolvable as exc:
            return Outcome("retry", error=str(exc)[:2000])
        async with self.engine.connect() as conn:
            gone = (await conn.execute(select(notification_disabled_endpoints.c.url).where(
                notification_disabled_endpoints.c.url == url))).first()
        if gone is not None:
            return Outcome("disabled", error="the endpoint answered 410 Gone earlier")
        body = orjson.dumps(row["payload"]).decode()
        now = datetime.now(UTC)
        secrets = signing_secrets(owner, now)
        if not secrets:
            return Outcome("disabled", error="the recipient has no webhook secret")
        signatures = " ".join(Webhook(secret).sign(row["id"], now, body) for secret in secrets)
        headers = {"content-type": "application/json",
                   "webhook-id": row["id"], "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": signatures, "user-agent": "dealreg-webhooks/1"}
        assert self.http is not None
        # The decision's trace context goes with the webhook (a span of its own when
        # OpenTelemetry is on); none for deliveries of untraced events.
        cause = (tracing.current() if tracing.enabled() else None) or \
            tracing.TraceContext.parse(row.get("traceparent"), row.get("tracestate"))
        with tracing.span("webhook.deliver", cause, "client", delivery_id=row["id"],
                          **{"http.request.method": "POST"}) as trace:
            if trace is not None:
                headers.update(trace.headers())
            # A partner's webhook carries none of the cause's trace context: the cause may
            # be a rival's request (`partner_view.WEBHOOK_HEADERS`).
            headers = partner_view.webhook_headers(str(row["recipient_kind"]), headers)
            try:
                response = await post_pinned(self.http, resolved, body.encode(), headers,
                                             self.settings.notification_timeout_seconds)
            except httpx.HTTPError as exc:
                return Outcome("retry", error=f"{type(exc).__name__}: {exc}"[:2000])
        code = response.status_code
        if 200 <= code < 300:
            return Outcome("delivered", code)
        if code == 410:
            async with self.engine.begin() as conn:
                await conn.execute(delete(notification_disabled_endpoints).where(
                    notification_disabled_endpoints.c.url == url))
                await conn.execute(notification_disabled_endpoints.insert().values(
                    url=url, disabled_at=datetime.now(UTC)))
            return Outcome("disabled", code, "410 Gone: endpoint disabled")
        retry_after = (_retry_after(response.headers.get("retry-after"))
                       if code in (429, 503) else None)
        return Outcome("retry", code, f"HTTP {code}", retry_after)

    async def _email(self, row: dict[str, Any], owner: Any) -> Outcome:
        address = owner.get("email") if owner is not None else None
        if not address:
            return Outcome("disabled", error="the recipient has no e-mail address")
        s = self.settings
        if not s.smtp_host:
            return Outcome("disabled", error="SMTP is not configured (DEALREG_SMTP_HOST)")
        payload = row["payload"]
        message = EmailMessage()
        message["From"] = s.smtp_from
        message["To"] = address
        message["Subject"] = f"[dealreg] {payload['type']}: {row['dispute_id']}"
        message["Message-ID"] = f"<{row['id']}@dealreg>"
        message.set_content(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        try:
            await aiosmtplib.send(
                message, hostname=s.smtp_host, port=s.smtp_port,
                use_tls=s.smtp_tls == "tls", start_tls=s.smtp_tls == "starttls",
                username=s.smtp_username, password=s.smtp_password,
                timeout=s.notification_timeout_seconds)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome("retry", error=f"{type(exc).__name__}: {exc}"[:2000])
        return Outcome("delivered")

    async def _record(self, row: dict[str, Any], outcome: Outcome, duration_ms: int) -> None:
        """Store an attempt's outcome. Outcomes that end while a write is in flight are
        written together in the next transaction (group commit): one per delivery took
        SQLite's single write lock hundreds of times a second, and the projection worker
        queued behind them. The transaction is retried while SQLite is locked by another
        process (a lost outcome would send a delivered notification again when its lease
        expires)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcomes.append(_Pending(row, outcome, duration_ms, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_all(), name="delivery-outcomes")
        await done

    async def _record_all(self) -> None:
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                labels = await self._write_retrying(batch)
            except Exception as exc:
                if len(batch) == 1:
                    self._settle(batch[0], exc)
                    continue
                # One outcome's write failed (another sender recorded the same attempt after
                # its lease expired, say): write the others alone, never lose them with it
                # (sent but unrecorded, they would be sent again once their leases expired).
                for item in batch:
                    try:
                        [label] = await self._write_retrying([item])
                    except Exception as alone:
                        self._settle(item, alone)
                    else:
                        self._settle(item, label)
                continue
            for item, label in zip(batch, labels, strict=True):
                self._settle(item, label)

    async def _write_retrying(self, batch: Sequence[_Pending]) -> list[str | None]:
        return await retry_when_busy(functools.partial(self._write_outcomes, batch),
                                     what="notifications.record")

    def _settle(self, item: _Pending, label: str | Exception | None) -> None:
        if isinstance(label, Exception):
            if not item.done.done():
                item.done.set_exception(label)
            return
        if label is not None:
            row = item.row
            metrics.delivery_outcome(row["channel"], label)
            log.info("notification_attempt", delivery_id=row["id"],
                     channel=row["channel"], recipient=row["recipient_id"],
                     outcome=label, status=item.outcome.status_code,
                     trace_id=tracing.trace_id_of(row.get("traceparent")))
        if not item.done.done():
            item.done.set_result(None)

    async def _write_outcomes(self, batch: Sequence[_Pending]) -> list[str | None]:
        """One transaction: each delivery's attempt and new state; the label of each
        outcome (None: the delivery no longer exists)."""
        now = datetime.now(UTC)
        o = notification_outbox.c
        labels: list[str | None] = []
        changes: list[dict[str, Any]] = []
        attempts_rows: list[dict[str, Any]] = []
        async with self.engine.begin() as conn:
            query = select(o.id, o.attempts, o.retry_from, o.status, o.next_attempt_at,
                           o.delivered_at).where(one_of(
                               conn.dialect.name, o.id, {i.row["id"] for i in batch}))
            if conn.dialect.name == "postgresql":
                # The new values are computed from these: locked (in id order, so two
                # group commits never wait on each other in a cycle) until commit, or a
                # redelivery committed in between is overwritten (SQLite: one writer).
                query = query.order_by(o.id).with_for_update()
            current = {r.id: r for r in (await conn.execute(query)).all()}
            counted: dict[str, int] = {}
            for item in batch:
                found = current.get(item.row["id"])
                if found is None:
                    labels.append(None)
                    continue
                outcome = item.outcome
                attempt = counted.get(found.id, found.attempts) + 1
                counted[found.id] = attempt
                values: dict[str, Any] = {
                    "b_id": found.id, "b_attempts": attempt, "b_last_error": outcome.error,
                    "b_status": found.status, "b_next": found.next_attempt_at,
                    "b_delivered": found.delivered_at}
                label = outcome.kind
                if outcome.kind == "delivered":
                    values.update(b_status="delivered", b_delivered=now, b_next=None)
                elif outcome.kind in ("disabled", "stale"):
                    values.update(b_status=outcome.kind, b_next=None)
                else:
                    s = self.settings
                    delay = next_delay(s.notification_schedule_seconds,
                                       attempt - found.retry_from, s.notification_jitter,
                                       outcome.retry_after)
                    if delay is None:
                        values.update(b_status="dead", b_next=None)
                        label = "dead"
                    else:
                        values.update(b_next=now + timedelta(seconds=delay))
                        label = "failed"
                changes.append(values)
                attempts_rows.append({
                    "delivery_id": found.id, "attempt": attempt, "at": now, "outcome": label,
                    "status_code": outcome.status_code, "error": outcome.error,
                    "duration_ms": item.duration_ms})
                labels.append(label)
            if changes:
                await conn.execute(
                    update(notification_outbox).where(o.id == bindparam("b_id")).values(
                        attempts=bindparam("b_attempts"), lease_until=None,
                        last_error=bindparam("b_last_error"), status=bindparam("b_status"),
                        next_attempt_at=bindparam("b_next"),
                        delivered_at=bindparam("b_delivered")),
                    changes)
                await conn.execute(notification_attempts.insert(), attempts_rows)
        return labels


@dataclass
class _Pending:
    """An attempt's outcome waiting for the next group commit."""

    row: dict[str, Any]
    outcome: Outcome
    duration_ms: int
    done: asyncio.Future[None]


async def redeliver(conn: AsyncConnection, delivery_id: str) -> bool:
    """Queue a delivery again now, with a fresh schedule (a 410-disabled URL is enabled
    again). False: no such delivery."""
    o = notification_outbox.c
    query = select(o.attempts).where(o.id == delivery_id)
    if conn.dialect.name == "postgresql":  # an outcome recorded meanwhile waits, or is
        query = query.with_for_update()     # waited for (then counted in the old round)
    row = (await conn.execute(query)).first()
    if row is None:
        return False
    await conn.execute(update(notification_outbox).where(o.id == delivery_id).values(
        status="pending", next_attempt_at=datetime.now(UTC), lease_until=None,
        retry_from=row[0], delivered_at=None))
    recipient = select(o.recipient_id).where(o.id == delivery_id).scalar_subquery()
    kind = (await conn.execute(select(o.recipient_kind).where(o.id == delivery_id))).scalar()
    recipients = RECIPIENTS.get(str(kind), ref_owners)
    urls = select(recipients.c.webhook_url).where(recipients.c.id == recipient)
    await conn.execute(delete(notification_disabled_endpoints).where(
        notification_disabled_endpoints.c.url.in_(urls)))
    return True
