"""Command handlers: the one code path behind the HTTP endpoints and CloudEvents ingestion.

Each handler checks who may act (domain/access.py), validates what the models could not,
resolves the account key, stamps the policy version (and partner snapshot), appends one
event to the intake topic keyed by the account key, and only then answers. Nothing is
appended before every check passed, so a rejected command leaves no trace in the log.
Errors are raised as `Problem`s; the HTTP layer renders them, ingestion reports them per
event.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from services.registration.adapters.directory import (
    AccountDirectory,
    KnownEntity,
    canonical_key,
)
from services.registration.adapters.idempotency import IdempotencyStore
from services.registration.adapters.ingested import IngestedEvents
from services.registration.adapters.readmodel import DisputeFacts, ReadModel, wait_for
from services.registration.adapters.reference import ReferenceData
from services.registration.domain import access
from services.registration.domain.cloudevents import (
    CLAIM_FILED,
    CLAIM_RELEASED,
    OPPORTUNITY_CLOSED,
    REGISTRATION_SUBMITTED,
    IncomingEvent,
)
from services.registration.domain.intake import InvalidAccount, identity_of, registration_submitted
from services.registration.domain.resolution import Resolution
from services.registration.models import (
    AmountIn,
    ClaimReleasedRequest,
    ClaimRequest,
    ClaimView,
    DisputeCommandView,
    DisputeRequest,
    EventResult,
    OpportunityClosedRequest,
    RegistrationRequest,
    ResolutionRequest,
)
from services.registration.rereports import Pending, ReReporter
from shared import tracing
from shared.accounts import AccountIdentity
from shared.api import partner_view
from shared.api.auth import Principal
from shared.api.problems import TYPE_BASE, Problem
from shared.api.resources import RegistrationView
from shared.eventlog import Appended, OutgoingRecord, Record
from shared.eventlog.partitioner import partition_for
from shared.events import (
    Account,
    AccountLinkReported,
    Amount,
    ClaimFiled,
    ClaimReleased,
    DisputeAcknowledged,
    DisputeFiled,
    DisputeResolutionSubmitted,
    DomainEvent,
    OpportunityClosed,
    PartnerSnapshot,
    PartnerStatusChanged,
    ProductAward,
    RegistrationExtensionRequested,
    RegistrationSubmitted,
    RegistrationWithdrawn,
    ReportedRegistration,
    Split,
    encode,
    new_envelope,
)
from shared.events.codec import decode
from shared.events.registration import PROTECTING, RegistrationStatus
from shared.ids import derived_id, derived_opaque_id, new_id, opaque_id
from shared.logging import get_logger
from shared.policy import KNOWN_PRECEDENCE_RULES, Policy, format_duration
from shared.readmodel.store import reader
from shared.readmodel.waiter import DECIDED, Expected

if TYPE_CHECKING:
    from dealreg.runtime import Runtime

log = get_logger(__name__)


async def wait_after_append(fetch: Callable[[], Awaitable[Any]], wait: float) -> Any:
    """`Prefer: wait` once the command is durable: a read model that cannot be read (its
    database restarting) means "not decided within the wait" (202). A 5xx here would be
    retried with the same Idempotency-Key, whose reservation a 5xx drops, and the retry
    would append the command a second time (found by the soak)."""
    if wait <= 0:
        return None
    try:
        return await wait_for(fetch, wait)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("wait_unreadable", error=type(exc).__name__)
        return None

M = TypeVar("M", bound=BaseModel)

ENDED = ("rejected", "expired", "withdrawn", "won", "lost")
CLOSABLE = ("approved", "in_review", "submitted", "expired")
"""What a CRM close applies to: a registration that holds or may still hold the account,
or one that expired (its close still records the outcome and the win)."""
_CLOSED: Final = frozenset({"won", "lost"})
PENDING = ("in_review", "submitted")
"""Closable rows that hold nothing yet (a person or the adjudicator still decides): never
the protection holder's rival for a close by reference (`closed_by_reference`)."""
CLAIM_PREFIX = "clm_"
REPORTED_AFTER = PROTECTING
"""The decisions after which a registration or claim re-reports (`Commands._re_report`):
it holds or may still hold the account. (Approvals only, once: a later-decided side in
review, or a claim, re-reported nothing, and a person's approval or the claim stood beside
the rival's; rival review, session 24.)"""


GUARDED = PROTECTING
"""The statuses in which a reported registration is kept as a copy where it is reported
(the adjudicator's `ACTIVE`). Only those count as carried by a registration's own reports
(`_follow_up`): one reported while `submitted` (in the read model, not yet decided) guarded
nothing there, and taken as carried its re-report skipped it once it was approved: the
sequential name-only pair's flaky "neither side re-reported" (session 25)."""


@dataclass
class Outcome:
    """A command's answer: status, body and headers (Location, X-Log-Position, ...)."""

    status_code: int
    body: BaseModel
    headers: dict[str, str] = field(default_factory=dict)


COMMAND_EVENT = "command"
"""The name the command's own event id derives from (the one a retry looks for)."""
LOOKBACK_MS = 5_000
"""How far before a key's first use a retry starts looking for its command's event: the
record's timestamp is the appending process's clock, read after the key was claimed; the
margin covers that clock stepping back."""


@dataclass
class CommandIdentity:
    """The identity of a command run under an `Idempotency-Key` (set by the HTTP layer for
    the request, `domain.idempotency.command_seed`): its event id and the id of what it
    creates derive from it, so every retry of the command makes the very same event."""

    seed: str
    first_used_ms: int
    attempted: bool = False
    """An append was attempted: the command may be in the log from here on."""
    holds_key: Callable[[], bool] = lambda: True
    """Whether the request still holds its key's lease: one that may have lost it (a retry
    took the command over) must not append (`Commands.append`)."""
    _named: int = 0
    _command_event: bool = False

    @property
    def event_id(self) -> str:
        """The id the command's own event carries."""
        return derived_id("evt", self.first_used_ms, self.seed, COMMAND_EVENT)

    def id_for(self, event: DomainEvent) -> str:
        """The command's first own event gets `event_id`; the records appended with it
        (account-link reports, fan-outs) get ids derived in their order."""
        if not self._command_event and not isinstance(event, (AccountLinkReported,
                                                              PartnerStatusChanged)):
            self._command_event = True
            return self.event_id
        self._named += 1
        return derived_id("evt", self.first_used_ms, self.seed, f"record-{self._named}")

    def entity_id(self, prefix: str) -> str:
        return derived_id(prefix, self.first_used_ms, self.seed, prefix)

    def opaque_id(self, prefix: str) -> str:
        return derived_opaque_id(prefix, self.seed, prefix)


COMMAND: ContextVar[CommandIdentity | None] = ContextVar("dealreg_command", default=None)


def _entity_id(prefix: str) -> str:
    command = COMMAND.get()
    return command.entity_id(prefix) if command is not None else new_id(prefix)


def invalid(field_: str, message: str, detail: str = "The request has invalid fields."
            ) -> Problem:
    return Problem(422, "Validation failed", detail, errors=[{"field": field_,
                                                              "message": message}])


def field_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    out = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error.get("loc", ()))
        out.append({"field": ".".join(p for p in (prefix, loc) if p) or "body",
                    "message": str(error.get("msg"))})
    return out


def parse_body(model: type[M], data: Any, prefix: str = "data") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(422, "Validation failed", "The request has invalid fields.",
                      errors=field_errors(exc, prefix)) from exc


def _denied(exc: access.Denied) -> Problem:
    return Problem(exc.status, "Forbidden" if exc.status == 403 else "Not found", exc.detail)


def _position(appended: Appended) -> str:
    return f"{appended.topic}/{appended.partition}/{appended.offset}"


def _viewer(principal: Principal) -> partner_view.Viewer:
    return partner_view.Viewer(principal.role, principal.subject_id)


def shown(row: dict[str, Any], principal: Principal) -> RegistrationView:
    """A registration as the caller may see it: the one partner view (invariant 7), applied
    to the read-model row (its evidence names each conflict's party)."""
    return RegistrationView.model_validate(partner_view.registration(row, _viewer(principal)))


class Commands:
    """The command side of one process: its adapters, and one method per command."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.settings = settings
        self.reference = ReferenceData(runtime.eventlog, runtime.engine,
                                       runtime.topics.reference, source=settings.source,
                                       cache_seconds=settings.reference_cache_seconds)
        # Reads only: no BEGIN/ROLLBACK round trips around them on PostgreSQL.
        self.directory = AccountDirectory(reader(runtime.engine),
                                          complete=settings.backend == "embedded",
                                          rewarm_seconds=settings.directory_rewarm_seconds)
        self.readmodel = ReadModel(reader(runtime.engine))
        self.idempotency = IdempotencyStore(runtime.engine,
                                            ttl_seconds=settings.idempotency_ttl_seconds,
                                            lease_seconds=settings.idempotency_lease_seconds)
        self.ingested = IngestedEvents(runtime.engine,
                                       lease_seconds=settings.idempotency_lease_seconds)
        self.reference.on_partner_change = self.partner_changed
        worker = runtime.projection_worker
        if self.directory.complete and worker is not None:
            # Every link is written by this process's projection worker, which says so
            # after each commit: the links are kept in memory (adapters/links.py).
            worker.on_links = self.directory.follow_links_in_memory().changed
        # Told of each decision before its waiters are woken: a rejected filing's names
        # are taken back before its `Prefer: wait` answer (the re-report does it too,
        # for a notification that carried no status).
        runtime.waiter.observers.append(self.directory.told)
        self.re_reporter = ReReporter(
            runtime.engine, runtime.waiter, self._re_report,
            clock=lambda: datetime.now(UTC),
            lease_seconds=settings.re_report_lease_seconds,
            orphan_seconds=settings.re_report_orphan_seconds)
        # A re-report taken over files its identity in this process's memory; a rejected
        # filing's new names go again once its decision is seen (`match.rejected_names`
        # as the policy read at start says: the read model no longer holds them).
        self._unfile_taken = True
        self.re_reporter.on_taken = lambda p: self.directory.remember_filed(
            p.entity_id, p.account_key, p.identity, self._unfile_taken)

    async def start(self) -> None:
        await self.reference.sync()
        policy = await self.reference.current_policy()
        self._unfile_taken = policy.match.rejected_names == "unfiled"
        await self.directory.warm()
        # Resume the re-reports a stopped process left (DESIGN.md, "Two first
        # registrations racing across partitions"); the runtime sweeps from here on.
        await self.re_reporter.sweep()

    async def stop(self) -> None:
        await self.re_reporter.stop()
        await self.directory.close()

    # --- plumbing ------------------------------------------------------------------------

    async def append(self, records: list[tuple[str, str, DomainEvent]], at: datetime,
                     via: str) -> list[Appended]:
        """Append envelopes durably, in a `command.append` span (when tracing is on) whose
        context the events carry."""
        with tracing.span("command.append", tracing.current(), "producer", via=via,
                          events=len(records), types=",".join(e.TYPE for _, _, e in records)):
            return await self._append(records, at, via)

    async def _append(self, records: list[tuple[str, str, DomainEvent]], at: datetime,
                      via: str, ids: list[str] | None = None) -> list[Appended]:
        """Append envelopes durably; a log that does not confirm is a 503 (retry safely
        with the same Idempotency-Key). `ids`, if given, receives the records' event ids
        (a staff command's answer finds adjudication's refusal of it by its id)."""
        trace = tracing.current()  # the request's W3C trace context, carried by the event
        command = COMMAND.get()
        event_ids = [command.id_for(event) if command is not None else new_id("evt")
                     for _, _, event in records]
        if ids is not None:
            ids.extend(event_ids)
        out = [
            OutgoingRecord(topic, key, encode(new_envelope(
                event, id=event_id,
                source=f"{self.settings.source}/{via}",
                subject=key, time=at,
                traceparent=trace.traceparent if trace else None,
                tracestate=trace.tracestate if trace else None)))
            for (topic, key, event), event_id in zip(records, event_ids, strict=True)
        ]
        if command is not None:
            if not command.holds_key():  # a taker starts `attempted`: check it too
                log.warning("idempotency_lease_lost", event_id=command.event_id)
                raise Problem(503, "Service unavailable",
                              "This request's Idempotency-Key could not be kept reserved "
                              "meanwhile; nothing was appended. Retry with the same "
                              "Idempotency-Key.", headers={"Retry-After": "1"})
            command.attempted = True
        try:
            return await self.runtime.eventlog.append(out)
        except Exception as exc:
            log.exception("append_failed", error=repr(exc))
            raise Problem(503, "Service unavailable",
                          "The event log did not confirm the write. Retry with the same "
                          "Idempotency-Key.", headers={"Retry-After": "1"}) from exc

    async def _intake(self, key: str, event: DomainEvent, at: datetime, via: str) -> Appended:
        [appended] = await self.append([(self.runtime.topics.intake, key, event)], at, via)
        return appended

    async def _staff_command(self, key: str, event: DomainEvent, at: datetime, via: str
                             ) -> tuple[Appended, str]:
        """Append a staff command on a dispute: where it landed, and its event id."""
        ids: list[str] = []
        with tracing.span("command.append", tracing.current(), "producer", via=via,
                          events=1, types=event.TYPE):
            [appended] = await self._append([(self.runtime.topics.intake, key, event)], at,
                                            via, ids)
        return appended, ids[0]

    def _identity(self, account: Any, prefix: str = "account") -> AccountIdentity:
        try:
            return identity_of(account.name, account.domain, account.country,
                               account.crm_account_id, website=account.website,
                               email=account.email)
        except InvalidAccount as exc:
            raise invalid(prefix, str(exc)) from exc

    async def _wait(self, fetch: Callable[[], Awaitable[Any]], wait: float) -> Any:
        return await wait_after_append(fetch, wait)

    # --- a command retried after its process died (README, "Idempotency") ---------------

    async def appended_command(self, command: CommandIdentity) -> Record | None:
        """The record of `command`'s own event if it is in the intake log: searched by its
        (derived) event id from just before the key's first use up to the end positions
        read now. Called only by a retry that took over a stranded reservation, whose
        process stopped, so nothing of that attempt can be appended after this look-up."""
        event_id = command.event_id

        def is_it(record: Record) -> bool:
            try:
                return decode(record.value)[0].id == event_id
            except ValueError:
                return False

        try:
            return await self.runtime.eventlog.find(
                self.runtime.topics.intake, command.first_used_ms - LOOKBACK_MS,
                f'"{event_id}"'.encode(), is_it)
        except Exception as exc:
            log.warning("command_lookup_failed", event_id=event_id, error=repr(exc))
            raise Problem(503, "Service unavailable",
                          "The event log could not be read to find this command's earlier "
                          "attempt. Retry with the same Idempotency-Key.",
                          headers={"Retry-After": "1"}) from exc

    async def recovered(self, principal: Principal, record: Record, wait: float) -> Outcome:
        """The answer to a command found in the log (appended by an attempt that died before
        answering): what the command answers after its append, built from the event, never
        appending again. Commands on something that exists already answer its state now."""
        _, event = decode(record.value)
        appended = Appended(record.topic, record.partition, record.offset)
        if isinstance(event, RegistrationSubmitted):
            return await self._submitted(principal, event, appended, wait)
        if isinstance(event, ClaimFiled):
            return await self._claim_filed(event, appended, wait)
        if isinstance(event, ClaimReleased):
            return await self._claim_released(event.claim_id, event.rep_id,
                                              event.account_key, None, appended, wait)
        if isinstance(event, DisputeFiled):
            return await self._contested(principal, event.registration_id, event.dispute_id,
                                         appended, wait)
        if isinstance(event, RegistrationWithdrawn):
            return await self._lifecycle_answer(principal, event.registration_id, appended,
                                                wait, lambda r: r["status"] == "withdrawn")
        if isinstance(event, OpportunityClosed):
            return await self._lifecycle_answer(principal, event.registration_id, appended,
                                                wait, lambda r: r["status"] == event.outcome)
        if isinstance(event, RegistrationExtensionRequested):
            # How many extensions it had before is not known any more: no wait.
            return await self._lifecycle_answer(principal, event.registration_id, appended,
                                                0.0, lambda r: True)
        if isinstance(event, (DisputeAcknowledged, DisputeResolutionSubmitted)):
            facts = await self.readmodel.dispute(event.dispute_id)
            if facts is not None:
                return await self._dispute_answer(principal, event.dispute_id, facts,
                                                  appended, decode(record.value)[0].id,
                                                  0.0, lambda f: True)
            return Outcome(202, await self._dispute_shown(
                {"id": event.dispute_id, "status": "open"}, principal),
                {"Location": f"/v1/disputes/{event.dispute_id}",
                 "X-Log-Position": _position(appended)})
        raise Problem(500, "Internal error", f"No answer for a recovered {event.TYPE}.")

    # --- registrations -----------------------------------------------------------------

    async def submit_registration(self, principal: Principal, body: RegistrationRequest,
                                  wait: float = 0.0, via: str = "api") -> Outcome:
        try:
            partner_id = access.acting_partner(principal.role, principal.subject_id,
                                               body.partner_id)
        except access.Denied as exc:
            raise _denied(exc) from exc
        if not partner_id:
            raise invalid("partner_id", "required when an integration or admin registers")
        identity = self._identity(body.account)
        policy = await self.reference.current_policy()
        partner = await self.reference.partner(partner_id)
        if partner is None and self.settings.unknown_partners == "reject":
            raise invalid("partner_id", f"no partner {partner_id!r}; PUT /v1/partners first")
        snapshot = (PartnerSnapshot(partner_id=partner_id, tier=partner["tier"],
                                    status=partner["status"], type=partner["type"])
                    if partner else PartnerSnapshot(partner_id=partner_id))
        resolution = await self.directory.resolve(identity, policy.match,
                                                  raw_name=body.account.name)
        now = datetime.now(UTC)
        registration_id = _entity_id("reg")
        amount = body.opportunity.amount
        event = registration_submitted(
            registration_id=registration_id, partner=snapshot,
            account_key=resolution.account_key, raw_account_name=body.account.name,
            identity=identity, title=body.opportunity.title,
            products=list(body.opportunity.products),
            amount=(str(amount.value), amount.currency) if amount else None,
            expected_close=body.opportunity.expected_close, motion=body.motion,
            external_ref=body.external_ref, submitted_at=now, policy_version=policy.version,
        )
        copies = await self._copy_reports(resolution, registration_id, policy, now)
        # The re-report is durable before the append (`_follow_up`). Waiting is registered
        # before the append too: the decision cannot slip in between, and the waiter
        # needs no read of its own (shared/readmodel/waiter.py).
        await self._follow_up(identity, resolution, copies, registration_id, now, via)
        with self.runtime.waiter.expect(registration_id) as decision:
            appended = (await self.append(
                [*copies, (self.runtime.topics.intake, resolution.account_key, event)],
                now, via))[-1]
            self.directory.remember_filed(registration_id, resolution.account_key, identity,
                                          policy.match.rejected_names == "unfiled")
            self.directory.remember_entity(KnownEntity(
                registration_id, resolution.account_key, partner_id))
            return await self._submitted(principal, event, appended, wait, decision)

    async def _submitted(self, principal: Principal, event: RegistrationSubmitted,
                         appended: Appended, wait: float, decision: Expected | None = None
                         ) -> Outcome:
        """The answer to an appended registration: 201 decided within the wait, else 202.
        `decision`: the interest registered before the append (None: appended earlier, by
        an attempt that died; the row is read first)."""
        registration_id = event.registration_id
        headers = {"Location": f"/v1/registrations/{registration_id}",
                   "X-Log-Position": _position(appended)}
        if wait > 0:
            headers["Preference-Applied"] = f"wait={_seconds(wait)}"
            row = (await decision.wait(wait) if decision is not None
                   else await self.runtime.waiter.wait_decided(registration_id, wait))
            if row is not None:
                return Outcome(201, shown(row, principal), headers)
        view = RegistrationView(
            id=registration_id, partner_id=event.partner_id, account_key=event.account_key,
            account=event.account.model_dump(mode="json"),
            opportunity=event.opportunity.model_dump(mode="json"), motion=event.motion,
            external_ref=event.external_ref, status="submitted",
            submitted_at=event.submitted_at, decided_at=None, protected_until=None,
        )
        return Outcome(202, shown(view.model_dump(), principal), headers)

    async def _copy_reports(self, resolution: Resolution, registration_id: str,
                            policy: Policy, at: datetime
                            ) -> list[tuple[str, str, DomainEvent]]:
        """The edge's part in the cross-key race (DESIGN.md): for every other key of this
        customer on another intake partition -- keys this identity matched too, and keys
        already linked to the canonical one -- an `AccountLinkReported` snapshot of that
        key's active registrations, appended just ahead of the new registration on the
        canonical key's partition. So the canonical key's adjudicator decides with fresh
        copies: whatever the other partition decided since (approval, extension,
        withdrawal, expiry) arrives before it matters. Reports are idempotent snapshots;
        nothing is remembered in this process. Best effort: a failure to gather them never
        fails the registration (copies then lapse by their lease)."""
        try:
            topic = self.runtime.topics.intake
            partitions = await self.runtime.eventlog.partitions(topic)
            canonical = resolution.account_key
            home = partition_for(canonical, partitions)
            others: dict[str, tuple[str, float, bool, bool]] = {
                a.account_key: (a.matched_by, a.score, True, False) for a in resolution.aliases}
            if not resolution.is_new:
                links = self.directory.links
                aliases = (await links.aliases_of(canonical)
                           if links is not None and links.usable
                           else await self.readmodel.aliases_of(canonical))
                for alias, matched_by, score in aliases:
                    others.setdefault(alias, (matched_by, score, False, False))
            # Possible duplicates on another partition (the same domain under another CRM
            # id, a name in the review band): their adjudicator would never see this
            # registration, so their registrations are reported too -- flagged, so the
            # canonical key's adjudicator sends this one to a person instead of linking.
            for p in resolution.possible_duplicates:
                others.setdefault(p.account_key, (p.matched_by, p.score, True, True))
            records: list[tuple[str, str, DomainEvent]] = []
            for alias in sorted(others):
                if alias == canonical or partition_for(alias, partitions) == home:
                    continue
                matched_by, score, by_identity, possible = others[alias]
                reported, partial = await self._reported(alias)
                records.append((topic, canonical, AccountLinkReported(
                    account_key=canonical, alias_key=alias,
                    matched_by=matched_by,
                    score=score, registrations=reported, partial=partial,
                    reported_at=at, policy_version=policy.version,
                    registration_id=registration_id if by_identity else None,
                    possible_duplicate=possible)))
            return records
        except Exception:
            log.exception("account_link_report_failed", account_key=resolution.account_key)
            return []

    async def _follow_up(self, identity: AccountIdentity, resolution: Resolution,
                         copies: list[tuple[str, str, DomainEvent]], entity_id: str,
                         at: datetime, via: str) -> None:
        """Record the post-decision re-report of a registration or claim (`_re_report`)
        before it is appended (services/registration/rereports.py): durable, run once it
        is decided, however late, by this process or the one that takes it over. It never
        fails the command."""
        reported = {e.alias_key: frozenset(r.registration_id for r in e.registrations
                                           if r.status in GUARDED)
                    for _, _, e in copies if isinstance(e, AccountLinkReported)}
        await self.re_reporter.record(Pending(entity_id, resolution.account_key, identity,
                                              reported, via, at))

    async def _re_report(self, pending: Pending, row: dict[str, Any]) -> None:
        """Two first registrations of one customer racing across partitions (DESIGN.md,
        "Two first registrations racing across partitions"): each side's report was built
        before the other was in the read model, so both partitions approved. Once this
        registration or claim is decided approved or in review (`REPORTED_AFTER`: a side
        in review may still be approved by a person), the customer's keys are resolved
        again; every
        key on another partition that this registration's reports did not cover (a key
        found only now, or one with an active registration the reports did not list
        approved or in review, `GUARDED`) is reported
        again with the same `AccountLinkReported` snapshot `_copy_reports` builds. The
        target is the pair's canonical: this key when the other was already its alias,
        otherwise the smaller of the two keys, so both racing sides report to the same
        partition. There the adjudicator's one rule (`links.report`) opens a `cross_key`
        dispute over the fresh copy and the approval it collides with, exactly as in the
        sequential case; a second report of the same copy only refreshes it (no second
        dispute). Run by the `ReReporter` once `row` (the read model's) is decided; a
        failure raises, and the re-reporter tries again at its next sweep."""
        self.directory.decided(pending.entity_id, row.get("status"))
        if row.get("status") not in REPORTED_AFTER:
            return
        identity, before, via = pending.identity, pending.reported, pending.via
        policy = await self.reference.current_policy()
        again = await self.directory.resolve(identity, policy.match, names=True)
        own = pending.account_key
        topic = self.runtime.topics.intake
        partitions = await self.runtime.eventlog.partitions(topic)
        home = partition_for(own, partitions)
        matched = {m.account_key: (m.matched_by, m.score, False)
                   for m in (again.matched, *again.aliases) if m is not None}
        # Possible duplicates too (session 24): racing, a name-only registration and
        # an identified one of the same name were both approved, where one after the
        # other goes to a person; the core opens that review (`after_decision`).
        for p in again.possible_duplicates:
            matched.setdefault(p.account_key, (p.matched_by, p.score, True))
        at = datetime.now(UTC)
        for other in sorted(matched):
            if other == own or partition_for(other, partitions) == home:
                continue
            matched_by, score, possible = matched[other]
            if other in before:
                reported, partial = await self._reported(other)
                if {r.registration_id for r in reported} <= before[other]:
                    continue  # nothing active there that the report did not carry
                target, alias = own, other
                if possible and other < own:
                    # A possible duplicate is never linked, so neither side is the
                    # other's canonical: the smaller key, as the other side reports.
                    target, alias = other, own
                    reported, partial = await self._reported(alias)
            else:
                target, alias = min(own, other), max(own, other)
                reported, partial = await self._reported(alias)
            if not reported:
                continue
            await self._intake(target, AccountLinkReported(
                account_key=target, alias_key=alias, matched_by=matched_by,
                score=score, registrations=reported, partial=partial, reported_at=at,
                policy_version=policy.version, possible_duplicate=possible,
                after_decision=possible), at, via)

    async def _reported(self, account_key: str, ended: str | None = None,
                        ended_as: RegistrationStatus = "withdrawn"
                        ) -> tuple[tuple[ReportedRegistration, ...], bool]:
        """The active registrations under `account_key` as the read model has them, with
        their partner's tier (`ended`, a registration a command just ended, reported as
        `ended_as`); and whether the list is partial (the read model's answer was
        capped)."""
        limit = 200
        rows = await self.readmodel.active_under(account_key, limit)
        reported = []
        whole: dict[int, bool] = {}  # policy version -> scope: account
        for r in rows:
            version = r.get("policy_version")
            if version is not None and version not in whole:
                decided_under = await self.reference.policy(version)
                whole[version] = (decided_under is not None
                                  and decided_under[0].scope == "account")
            if r.get("rep_id") and r.get("filed_at"):
                # A direct claim: the other partition must guard it too (a named account
                # is the whole account: no products).
                reported.append(ReportedRegistration(
                    registration_id=r["id"], party_type="direct", party_id=r["rep_id"],
                    motion="direct", products=() if r.get("kind") == "named_account"
                    else _held(r, r.get("products")),
                    status=ended_as if r["id"] == ended else r["status"],
                    submitted_at=r["filed_at"], protected_until=r["protected_until"],
                    whole_account=version is not None and whole[version]))
                continue
            if not (r["partner_id"] and r["motion"] and r["submitted_at"]):
                continue
            partner = await self.reference.partner(r["partner_id"])
            reported.append(ReportedRegistration(
                registration_id=r["id"], party_type="partner", party_id=r["partner_id"],
                motion=r["motion"],
                products=_held(r, (r["opportunity"] or {}).get("products")),
                status=ended_as if r["id"] == ended else r["status"],
                submitted_at=r["submitted_at"], protected_until=r["protected_until"],
                tier=(partner or {}).get("tier") or "",
                whole_account=version is not None and whole[version]))
        return tuple(reported), len(rows) >= limit

    async def _release_copies(self, account_key: str, registration_id: str,
                              ended_as: RegistrationStatus, policy: Policy, at: datetime,
                              via: str) -> None:
        """A registration under an alias key ended by command (withdrawn, closed): tell the
        canonical key's partition at once, so its copy stops guarding there; and the
        partition of every open dispute that lists it (a possible duplicate's copy is in a
        review there, with no link to follow), so that review does not wait on it. Best
        effort: otherwise the next registration there re-reports, or the copy's lease runs
        out."""
        try:
            topic = self.runtime.topics.intake
            partitions = await self.runtime.eventlog.partitions(topic)
            home = partition_for(account_key, partitions)
            targets: dict[str, tuple[str, float, bool]] = {}
            link = await self.readmodel.link_of(account_key)
            if link is not None:
                async with self.runtime.engine.connect() as conn:
                    canonical = await canonical_key(conn, account_key)
                targets[canonical] = (link[0], link[1], False)
            for key in await self.readmodel.open_dispute_keys(registration_id):
                targets.setdefault(key, ("name", 0.0, True))
            for key, (matched_by, score, possible) in targets.items():
                if key == account_key or partition_for(key, partitions) == home:
                    continue
                reported, partial = await self._reported(account_key, registration_id,
                                                         ended_as)
                await self._intake(key, AccountLinkReported(
                    account_key=key, alias_key=account_key, matched_by=matched_by,
                    score=score, registrations=reported, partial=partial, reported_at=at,
                    policy_version=policy.version, possible_duplicate=possible), at, via)
        except Exception:
            log.exception("account_link_report_failed", account_key=account_key)

    async def _registration(self, principal: Principal, registration_id: str
                            ) -> tuple[str, str, dict[str, Any] | None]:
        """(account key, partner id, read-model row or None) of a registration the caller
        may act on; 404 when unknown or, for a partner, not its own."""
        row = await self.readmodel.registration(registration_id)
        if row is not None and row.get("account_key") and row.get("partner_id"):
            account_key, partner_id = row["account_key"], row["partner_id"]
        else:
            recent = self.directory.recent(registration_id)
            if recent is None:
                raise Problem(404, "Not found", f"No registration {registration_id}.")
            account_key, partner_id, row = recent.account_key, recent.party_id, None
        try:
            access.check_owns_registration(principal.role, principal.subject_id, partner_id,
                                           registration_id)
        except access.Denied as exc:
            raise _denied(exc) from exc
        return account_key, partner_id, row

    async def _registration_view(self, registration_id: str, principal: Principal,
                                 row: dict[str, Any] | None) -> RegistrationView:
        row = row or await self.readmodel.registration(registration_id)
        if row is None:
            recent = self.directory.recent(registration_id)
            row = RegistrationView(
                id=registration_id, partner_id=recent.party_id if recent else None,
                account_key=recent.account_key if recent else None, account=None,
                opportunity=None, motion=None, status="submitted", submitted_at=None,
                decided_at=None, protected_until=None).model_dump()
        return shown(row, principal)

    async def withdraw(self, principal: Principal, registration_id: str, wait: float = 0.0,
                       via: str = "api") -> Outcome:
        if registration_id.startswith(CLAIM_PREFIX):
            # Claims are addressed as registrations too (their Location): withdrawing one
            # is releasing it.
            return await self.release_claim(principal, registration_id, wait, via)
        account_key, partner_id, row = await self._registration(principal, registration_id)
        if row is not None and row["status"] in ENDED:
            raise Problem(409, "Conflict",
                          f"Registration {registration_id} is {row['status']}; only an "
                          "active registration can be withdrawn.")
        policy = await self.reference.current_policy()
        now = datetime.now(UTC)
        appended = await self._intake(account_key, RegistrationWithdrawn(
            registration_id=registration_id, partner_id=partner_id, account_key=account_key,
            withdrawn_at=now, policy_version=policy.version), now, via)
        await self._release_copies(account_key, registration_id, "withdrawn", policy, now, via)
        return await self._lifecycle_answer(
            principal, registration_id, appended, wait,
            lambda r: r["status"] == "withdrawn")

    async def extend(self, principal: Principal, registration_id: str, wait: float = 0.0,
                     via: str = "api") -> Outcome:
        account_key, partner_id, row = await self._registration(principal, registration_id)
        partner = await self.reference.partner(partner_id)
        if partner is not None and partner["status"] in ("suspended", "exited"):
            raise Problem(409, "Conflict",
                          f"Partner {partner_id} is {partner['status']}; an inactive "
                          "partner's protection is not extended (partner_inactive).")
        if row is not None:
            if row["status"] != "approved" or row["protected_until"] is None:
                raise Problem(409, "Conflict",
                              f"Registration {registration_id} is {row['status']}; only an "
                              "approved, time-limited protection can be extended.")
            own = None
            if row.get("policy_version"):
                found = await self.reference.policy(row["policy_version"])
                own = found[0] if found else None
            if own is not None and not own.extension.allows_another(row["extensions"]):
                raise Problem(409, "Conflict",
                              f"Registration {registration_id} was extended "
                              f"{row['extensions']} time(s); policy version {own.version} "
                              f"allows {own.extension.max_extensions}.")
            window = own.extension.window if own is not None else None
            opens = own.extension.opens(row["protected_until"]) if own is not None else None
            if own is not None and window is not None and opens is not None \
                    and datetime.now(UTC) < opens:
                raise Problem(409, "Conflict",
                              f"Registration {registration_id} can be extended only in the "
                              f"last {format_duration(window)} before its protection ends "
                              f"({row['protected_until'].isoformat()}): from "
                              f"{opens.isoformat()} (policy version {own.version}).")
        before = row["extensions"] if row is not None else 0
        policy = await self.reference.current_policy()
        now = datetime.now(UTC)
        appended = await self._intake(account_key, RegistrationExtensionRequested(
            registration_id=registration_id, partner_id=partner_id, account_key=account_key,
            requested_at=now, policy_version=policy.version), now, via)
        return await self._lifecycle_answer(
            principal, registration_id, appended, wait,
            lambda r: r["extensions"] > before)

    async def close(self, principal: Principal, body: OpportunityClosedRequest,
                    wait: float = 0.0, via: str = "api") -> Outcome:
        registration_id = body.registration_id
        if registration_id is None:
            if not body.external_ref:
                raise invalid("registration_id", "give registration_id or external_ref")
            rows = await self.readmodel.by_external_ref(body.external_ref)
            if not rows:
                raise Problem(404, "Not found",
                              f"No registration with external_ref {body.external_ref!r}.")
            chosen = closed_by_reference(rows)
            if chosen is None:
                raise invalid("external_ref", "more than one registration has this "
                              "external_ref; send registration_id")
            registration_id = chosen["id"]
        account_key, _, row = await self._registration(principal, registration_id)
        if row is not None and row["status"] not in CLOSABLE:
            raise Problem(409, "Conflict", f"Registration {registration_id} is {row['status']}.")
        policy = await self.reference.current_policy()
        now = datetime.now(UTC)
        appended = await self._intake(account_key, OpportunityClosed(
            registration_id=registration_id, account_key=account_key, outcome=body.outcome,
            amount=_amount(body.amount), closed_at=now, policy_version=policy.version),
            now, via)
        await self._release_copies(account_key, registration_id,
                                   "won" if body.outcome == "won" else "lost", policy, now, via)
        return await self._lifecycle_answer(
            principal, registration_id, appended, wait,
            lambda r: r["status"] == body.outcome)

    async def _lifecycle_answer(self, principal: Principal, registration_id: str,
                                appended: Appended, wait: float,
                                done: Callable[[dict[str, Any]], bool]) -> Outcome:
        headers = {"Location": f"/v1/registrations/{registration_id}",
                   "X-Log-Position": _position(appended)}
        if wait > 0:
            headers["Preference-Applied"] = f"wait={_seconds(wait)}"

            async def changed() -> dict[str, Any] | None:
                row = await self.readmodel.registration(registration_id)
                return row if row is not None and done(row) else None

            row = await self._wait(changed, wait)
            if row is not None:
                return Outcome(200, shown(row, principal), headers)
        return Outcome(202, await self._registration_view(registration_id, principal, None),
                       headers)

    # --- claims --------------------------------------------------------------------------

    async def file_claim(self, principal: Principal, body: ClaimRequest, wait: float = 0.0,
                         via: str = "api") -> Outcome:
        try:
            rep_id = access.acting_rep(principal.role, principal.subject_id, body.rep_id)
        except access.Denied as exc:
            raise _denied(exc) from exc
        if not rep_id:
            raise invalid("rep_id", "required when an integration or admin files a claim")
        identity = self._identity(body.account)
        policy = await self.reference.current_policy()
        resolution = await self.directory.resolve(identity, policy.match,
                                                  raw_name=body.account.name)
        now = datetime.now(UTC)
        claim_id = _entity_id("clm")
        products = tuple(sorted(set(body.products))) if body.kind == "opportunity" else ()
        account = Account(name=body.account.name, domain=identity.domain,
                          country=identity.country, crm_account_id=identity.crm_account_id)
        event = ClaimFiled(claim_id=claim_id, kind=body.kind, rep_id=rep_id,
                           account_key=resolution.account_key, account=account,
                           products=products, filed_at=now, policy_version=policy.version)
        copies = await self._copy_reports(resolution, claim_id, policy, now)
        # A claim races a registration on another partition as a registration does
        # (rival review, session 24): it re-reports after its decision too.
        await self._follow_up(identity, resolution, copies, claim_id, now, via)
        appended = (await self.append(
            [*copies, (self.runtime.topics.intake, resolution.account_key, event)], now, via))[-1]
        self.directory.remember_filed(claim_id, resolution.account_key, identity,
                                      policy.match.rejected_names == "unfiled")
        self.directory.remember_entity(KnownEntity(claim_id, resolution.account_key, rep_id))
        return await self._claim_filed(event, appended, wait)

    async def _claim_filed(self, event: ClaimFiled, appended: Appended, wait: float
                           ) -> Outcome:
        """The answer to an appended claim: 201, with the decision if made within the wait."""
        claim_id = event.claim_id
        headers = {"Location": f"/v1/registrations/{claim_id}",
                   "X-Log-Position": _position(appended)}
        view = ClaimView(id=claim_id, kind=event.kind, rep_id=event.rep_id,
                         account_key=event.account_key,
                         account=event.account.model_dump(mode="json"),
                         products=list(event.products), status="submitted",
                         filed_at=event.filed_at)
        if wait > 0:
            headers["Preference-Applied"] = f"wait={_seconds(wait)}"

            async def decided() -> dict[str, Any] | None:
                row = await self.readmodel.claim(claim_id)
                return row if row is not None and row["status"] in DECIDED else None

            row = await self._wait(decided, wait)
            if row is not None:
                view = view.model_copy(update={
                    "status": row["status"], "decided_at": row["decided_at"],
                    "protected_until": row["protected_until"], "decision": row["decision"]})
        return Outcome(201, view, headers)

    async def _claim(self, principal: Principal, claim_id: str
                     ) -> tuple[str, str, dict[str, Any] | None]:
        """(account key, rep id, read-model row or None) of a claim the caller may act on;
        404 when unknown or, for a rep, not its own. The read model is the source (it
        survives restarts); a claim filed a moment ago is found in this process's memory."""
        row = await self.readmodel.claim(claim_id)
        if row is not None and row.get("account_key") and row.get("rep_id"):
            account_key, rep_id = row["account_key"], row["rep_id"]
        else:
            recent = self.directory.recent(claim_id)
            if recent is None or not claim_id.startswith(CLAIM_PREFIX):
                raise Problem(404, "Not found", f"No claim {claim_id}.")
            account_key, rep_id, row = recent.account_key, recent.party_id, None
        try:
            access.check_owns_claim(principal.role, principal.subject_id, rep_id, claim_id)
        except access.Denied as exc:
            raise _denied(exc) from exc
        return account_key, rep_id, row

    async def release_claim(self, principal: Principal, claim_id: str, wait: float = 0.0,
                            via: str = "api") -> Outcome:
        """The claim's rep (or an integration / admin) gives a direct claim up: its
        protection ends (status `withdrawn`, reason `released`) and the account is free."""
        account_key, rep_id, row = await self._claim(principal, claim_id)
        if row is not None and row["status"] in ENDED:
            raise Problem(409, "Conflict", f"Claim {claim_id} is {row['status']}; only an "
                          "active claim can be released.")
        policy = await self.reference.current_policy()
        now = datetime.now(UTC)
        appended = await self._intake(account_key, ClaimReleased(
            claim_id=claim_id, rep_id=rep_id, account_key=account_key, released_at=now,
            policy_version=policy.version), now, via)
        await self._release_copies(account_key, claim_id, "withdrawn", policy, now, via)
        return await self._claim_released(claim_id, rep_id, account_key, row, appended, wait)

    async def _claim_released(self, claim_id: str, rep_id: str, account_key: str,
                              row: dict[str, Any] | None, appended: Appended, wait: float
                              ) -> Outcome:
        """The answer to an appended release: 200 released within the wait, else 202."""
        headers = {"Location": f"/v1/registrations/{claim_id}",
                   "X-Log-Position": _position(appended)}
        if wait > 0:
            headers["Preference-Applied"] = f"wait={_seconds(wait)}"

            async def released() -> dict[str, Any] | None:
                found = await self.readmodel.claim(claim_id)
                return found if found is not None and found["status"] in ENDED else None

            found = await self._wait(released, wait)
            if found is not None:
                return Outcome(200, _claim_view(found), headers)
        row = await self.readmodel.claim(claim_id) or row
        if row is not None and row.get("kind"):
            return Outcome(202, _claim_view(row), headers)
        return Outcome(202, ClaimView(
            id=claim_id, kind=None, rep_id=rep_id, account_key=account_key, account=None,
            products=[], status="submitted", filed_at=None), headers)

    # --- disputes ------------------------------------------------------------------------

    async def file_dispute(self, principal: Principal, registration_id: str,
                           body: DisputeRequest, wait: float = 0.0, via: str = "api"
                           ) -> Outcome:
        account_key, partner_id, row = await self._registration(principal, registration_id)
        if row is not None:
            if row["status"] == "in_review" and row.get("dispute_id"):
                raise Problem(409, "Conflict", f"Registration {registration_id} is already "
                              f"in dispute {row['dispute_id']}.")
            if row["status"] != "rejected":
                raise Problem(409, "Conflict", f"Registration {registration_id} is "
                              f"{row['status']}; only a rejection can be disputed.")
            await self._contestable(registration_id, partner_id, row)
        policy = await self.reference.current_policy()
        now = datetime.now(UTC)
        command = COMMAND.get()  # partners see it: it must reveal nothing
        dispute_id = command.opaque_id("dsp") if command is not None else opaque_id("dsp")
        copies = await self._contest_reports(row, registration_id, policy, now)
        appended = (await self.append([*copies, (self.runtime.topics.intake, account_key,
                                                 DisputeFiled(
            dispute_id=dispute_id, registration_id=registration_id, partner_id=partner_id,
            account_key=account_key, reason=body.reason, filed_at=now,
            policy_version=policy.version))], now, via))[-1]
        return await self._contested(principal, registration_id, dispute_id, appended, wait)

    async def _contest_reports(self, row: dict[str, Any] | None, registration_id: str,
                               policy: Policy, at: datetime
                               ) -> list[tuple[str, str, DomainEvent]]:
        """A contest approves the registration at once when nothing it knows of overlaps
        it: the same reports `_copy_reports` appends ahead of a new registration, ahead of
        the contest, marked `contest` (DESIGN.md, "A contest sees the customer's other
        keys"). Without them a contest on one partition approved the registration beside
        a possible duplicate's registration on another partition that a new registration
        would have been reviewed against (two owners, invariant 1). Best effort: no
        account on the row, or a failure, appends no report."""
        account = (row or {}).get("account")
        if not isinstance(account, dict) or not row or row.get("account_key") is None:
            return []
        try:
            identity = identity_of(account.get("name"), account.get("domain"),
                                   account.get("country"), account.get("crm_account_id"))
            resolution = await self.directory.resolve(identity, policy.match,
                                                      raw_name=account.get("name"))
        except Exception:
            log.exception("contest_report_failed", registration_id=registration_id)
            return []
        if resolution.account_key != row["account_key"]:
            return []  # filed under another key since (a link): its reports are that key's
        return [(topic, key, event.model_copy(update={"contest": True}))
                for topic, key, event in await self._copy_reports(
                    resolution, registration_id, policy, at)
                if isinstance(event, AccountLinkReported)]

    async def _contested(self, principal: Principal, registration_id: str, dispute_id: str,
                         appended: Appended, wait: float) -> Outcome:
        """The answer to an appended contest: adjudication's answer within the wait (201,
        or its refusal as a problem), else 202 `pending`."""
        headers = {"Location": f"/v1/disputes/{dispute_id}",
                   "X-Log-Position": _position(appended)}
        if wait > 0:
            headers["Preference-Applied"] = f"wait={_seconds(wait)}"

            async def decided() -> DisputeFacts | dict[str, Any] | None:
                refused = await self.readmodel.dispute_refusal(dispute_id)
                if refused is not None:
                    return refused
                facts = await self.readmodel.dispute(dispute_id)
                if facts is None:  # the contest may have joined the dispute it is in now
                    row = await self.readmodel.registration(registration_id)
                    if row is not None and row["status"] == "in_review" and row["dispute_id"]:
                        facts = await self.readmodel.dispute(row["dispute_id"])
                # Facts pieced together from the registrations (the disputes read model has
                # not caught up yet) carry no level or owner: not the answer a GET gives.
                return facts if facts is None or facts.level is not None else None

            found = await self._wait(decided, wait)
            if isinstance(found, dict):
                raise _contest_refused(registration_id, found, _viewer(principal))
            if found is not None:
                headers["Location"] = f"/v1/disputes/{found.id}"
                return Outcome(201, await self._dispute_view(found, principal), headers)
        pending = await self._dispute_shown({"id": dispute_id, "status": "pending",
                                             "registration_ids": [registration_id]}, principal)
        return Outcome(202, pending, headers)

    async def _dispute_view(self, facts: DisputeFacts, principal: Principal
                            ) -> DisputeCommandView:
        return await self._dispute_shown({
            "id": facts.id, "status": "resolved" if facts.status == "resolved" else "open",
            "level": facts.level, "owner_id": facts.owner_id, "due_at": facts.due_at,
            "acknowledged_at": facts.acknowledged_at,
            "registration_ids": facts.registration_ids, "resolution": facts.resolution,
            # Not shown by the command's model; the partner view reads its deadlines by
            # them (a late joiner's, a carried contest's), as `GET /v1/disputes/{id}` does.
            "opened_at": facts.opened_at, "explanation": facts.explanation,
        }, principal)

    async def _dispute_shown(self, data: dict[str, Any], principal: Principal
                             ) -> DisputeCommandView:
        """A dispute as the caller may see it: the same partner view as
        `GET /v1/disputes/{id}` (invariant 7)."""
        viewer = _viewer(principal)
        if viewer.restricted:
            mentioned = partner_view.mentioned_ids(data)
            scope = partner_view.Scope.of(viewer, await self.readmodel.holders(mentioned),
                                          mentioned)
            # When its registration entered this dispute (not its first decision: it
            # may have been drawn in later), as `GET /v1/disputes/{id}` reads it.
            entered = await self.readmodel.entered(str(data["id"]), scope.own_ids)
            data = partner_view.dispute(data, scope, entered.at, entered.opening,
                                        reason=entered.reason)
        return DisputeCommandView.model_validate(data)

    async def _contestable(self, registration_id: str, partner_id: str,
                           row: dict[str, Any]) -> None:
        """The contest rules the edge can see (the adjudicator enforces them all): only a
        rejection a precedence rule decided, once, within the policy's contest_window,
        by an active partner."""
        rule = (row.get("decision") or {}).get("rule")
        if row.get("dispute_id") or rule not in KNOWN_PRECEDENCE_RULES:
            raise Problem(409, "Conflict", f"Registration {registration_id} cannot be "
                          "contested: only a rejection decided by a precedence rule can be, "
                          "once (a dispute's resolution is final).")
        partner = await self.reference.partner(partner_id)
        if partner is not None and partner["status"] in ("suspended", "exited"):
            raise Problem(409, "Conflict", f"Partner {partner_id} is {partner['status']} and "
                          "cannot contest.")
        found = (await self.reference.policy(row["policy_version"])
                 if row.get("policy_version") else None)
        own = found[0] if found else None
        if own is not None and row.get("decided_at") is not None \
                and datetime.now(UTC) > own.contest_closes(row["decided_at"]):
            raise Problem(409, "Conflict", f"Registration {registration_id} was rejected at "
                          f"{row['decided_at'].isoformat()}; policy version {own.version} "
                          f"allows a contest within {format_duration(own.contest_window)}.")

    async def _dispute(self, principal: Principal, dispute_id: str) -> DisputeFacts:
        facts = await self.readmodel.dispute(dispute_id)
        if facts is None:
            raise Problem(404, "Not found", f"No dispute {dispute_id}.")
        try:
            access.check_assigned(principal.role, principal.subject_id, facts.owner_id,
                                  dispute_id, facts.owners)
        except access.Denied as exc:
            raise _denied(exc) from exc
        if facts.status != "open":
            raise Problem(409, "Conflict", f"Dispute {dispute_id} is already {facts.status}.")
        return facts

    async def acknowledge(self, principal: Principal, dispute_id: str, wait: float = 0.0,
                          via: str = "api") -> Outcome:
        facts = await self._dispute(principal, dispute_id)
        if facts.acknowledged_at is not None:
            raise Problem(409, "Conflict", f"Dispute {dispute_id} was acknowledged already.")
        policy = await self.reference.current_policy()
        now = datetime.now(UTC)
        appended, command_id = await self._staff_command(facts.account_key, DisputeAcknowledged(
            dispute_id=dispute_id, account_key=facts.account_key,
            actor_id=principal.actor_id, actor_role=_actor_role(principal),
            acknowledged_at=now, policy_version=policy.version), now, via)
        return await self._dispute_answer(principal, dispute_id, facts, appended, command_id,
                                          wait, lambda f: f.acknowledged_at is not None)

    async def resolve(self, principal: Principal, dispute_id: str, body: ResolutionRequest,
                      wait: float = 0.0, via: str = "api") -> Outcome:
        facts = await self._dispute(principal, dispute_id)
        named = ([body.registration_id] if body.registration_id else []) + \
            [s.registration_id for s in body.splits or ()] + list((body.awards or {}).values())
        strangers = [r for r in named if facts.registration_ids and
                     r not in facts.registration_ids]
        if strangers:
            raise invalid("registration_id", f"not in dispute {dispute_id}: "
                          f"{', '.join(strangers)}")
        if body.partner_note:
            named_parties = await self._parties_named(facts, body.partner_note)
            if named_parties:
                raise invalid("partner_note", "names a party of the dispute ("
                              f"{', '.join(named_parties)}); every involved partner reads "
                              "this note and must not learn who the others are")
        policy = await self.reference.current_policy()
        now = datetime.now(UTC)
        appended, command_id = await self._staff_command(
            facts.account_key, DisputeResolutionSubmitted(
            dispute_id=dispute_id, account_key=facts.account_key,
            actor_id=principal.actor_id, actor_role=_actor_role(principal),
            outcome=body.outcome, registration_id=body.registration_id,
            awards=tuple(ProductAward(product=p, registration_id=r)
                         for p, r in (body.awards or {}).items()),
            splits=tuple(Split(registration_id=s.registration_id, percent=s.percent)
                         for s in body.splits or ()),
            note=body.note, partner_note=body.partner_note, submitted_at=now,
            policy_version=policy.version), now, via)
        return await self._dispute_answer(principal, dispute_id, facts, appended, command_id,
                                          wait, lambda f: f.status == "resolved")

    async def _parties_named(self, facts: DisputeFacts, note: str) -> list[str]:
        """Which of the dispute's parties `note` names: a partner's (or rep's) id, a
        partner's name, a registration's CRM account id. The partner view scrubs registration
        ids and rival account keys from text, but it cannot know the rest, so a partner note
        naming them is refused rather than shown to the other parties."""
        terms: set[str] = set()
        for rid in facts.registration_ids:
            row = await self.readmodel.registration(rid) or await self.readmodel.claim(rid)
            if row is None:
                continue
            for party in (row.get("partner_id"), row.get("rep_id")):
                if isinstance(party, str):
                    terms.add(party)
            if isinstance(row.get("partner_id"), str):
                partner = await self.reference.partner(row["partner_id"])
                if partner is not None and isinstance(partner.get("name"), str):
                    terms.add(partner["name"].strip())
            account = row.get("account")
            crm = account.get("crm_account_id") if isinstance(account, dict) else None
            if isinstance(crm, str):
                terms.add(crm)
        return sorted(t for t in terms if len(t) >= 3 and re.search(
            r"(?<!\w)" + re.escape(t) + r"(?!\w)", note, flags=re.IGNORECASE))

    async def _dispute_answer(self, principal: Principal, dispute_id: str,
                              facts: DisputeFacts, appended: Appended, command_id: str,
                              wait: float, done: Callable[[DisputeFacts], bool]) -> Outcome:
        """A staff command's answer: within the wait, 200 with the dispute once `done`, or
        adjudication's refusal of THIS command (found by its event id: refusals are many
        per dispute) as a 409 problem; else 202 (the dispute's GET then shows a refusal
        as `last_refusal`)."""
        headers = {"Location": f"/v1/disputes/{dispute_id}",
                   "X-Log-Position": _position(appended)}
        if wait > 0:
            headers["Preference-Applied"] = f"wait={_seconds(wait)}"

            async def changed() -> DisputeFacts | dict[str, Any] | None:
                # The refusal first: a command refused because another one resolved the
                # dispute meanwhile must not read as having resolved it.
                refused = await self.readmodel.command_refusal(dispute_id, command_id)
                if refused is not None:
                    return refused
                found = await self.readmodel.dispute(dispute_id)
                return found if found is not None and done(found) else None

            found = await self._wait(changed, wait)
            if isinstance(found, dict):
                raise _staff_refused(dispute_id, found, headers)
            if found is not None:
                return Outcome(200, await self._dispute_view(found, principal), headers)
        return Outcome(202, await self._dispute_view(facts, principal), headers)

    # --- partners (status fan-out) -------------------------------------------------------

    async def partner_changed(self, before: dict[str, Any] | None, after: dict[str, Any]
                              ) -> None:
        """Tell every adjudicator when a partner's status or tier changed: one
        `PartnerStatusChanged` per intake partition, so each sees it in order with the
        registrations it decides."""
        if before is not None and before["status"] == after["status"] \
                and before["tier"] == after["tier"]:
            return
        if before is None and after["status"] == "active":
            return  # a new, active partner changes nothing for registrations already decided
        topic = self.runtime.topics.intake
        partitions = await self.runtime.eventlog.partitions(topic)
        at = after["updated_at"]
        records: list[tuple[str, str, DomainEvent]] = []
        for key in partition_keys(f"partner:{after['id']}", partitions):
            records.append((topic, key, PartnerStatusChanged(
                partner_id=after["id"], status=after["status"], tier=after["tier"],
                account_key=key, changed_at=at)))
        await self.append(records, at, "reference")

    # --- CloudEvents ---------------------------------------------------------------------

    async def ingest(self, principal: Principal, incoming: IncomingEvent) -> EventResult:
        """Apply one ingested CloudEvent through the same handlers as HTTP, exactly once
        per `source` + `id`."""
        base = {"index": incoming.index, "id": incoming.id, "source": incoming.source,
                "type": incoming.type}
        if not incoming.valid or incoming.id is None or incoming.source is None \
                or incoming.type is None:
            # A well-formed event of a type we do not know is 422; a broken envelope 400.
            status = 422 if all(e["message"].startswith("unknown type")
                                for e in incoming.errors) else 400
            return EventResult(**base, status="rejected", http_status=status, problem={
                "type": "https://dealreg.dev/problems/invalid-cloudevent",
                "title": "Invalid CloudEvent", "status": status,
                "detail": "The event is not a CloudEvent this service accepts.",
                "errors": incoming.errors})
        owned, first = await self.ingested.reserve(incoming.source, incoming.id, incoming.type)
        if not owned:
            return EventResult(**base, status="duplicate",
                               http_status=(first or {}).get("http_status", 409),
                               resource=(first or {}).get("resource"),
                               problem=(first or {}).get("problem"))
        try:
            outcome = await self._dispatch(principal, incoming)
        except Problem as problem:
            if problem.status >= 500:
                await self.ingested.release(incoming.source, incoming.id)
                return EventResult(**base, status="rejected", http_status=problem.status,
                                   problem=_problem_dict(problem))
            result = EventResult(**base, status="rejected", http_status=problem.status,
                                 problem=_problem_dict(problem))
        except Exception:
            await self.ingested.release(incoming.source, incoming.id)
            raise
        else:
            result = EventResult(**base, status="accepted", http_status=outcome.status_code,
                                 resource=outcome.body.model_dump(mode="json"))
        await self.ingested.complete(incoming.source, incoming.id, result.model_dump(
            mode="json", include={"status", "http_status", "resource", "problem"}))
        return result

    async def _dispatch(self, principal: Principal, incoming: IncomingEvent) -> Outcome:
        if incoming.type == REGISTRATION_SUBMITTED:
            return await self.submit_registration(
                principal, parse_body(RegistrationRequest, incoming.data), via="events")
        if incoming.type == CLAIM_FILED:
            return await self.file_claim(principal, parse_body(ClaimRequest, incoming.data),
                                         via="events")
        if incoming.type == CLAIM_RELEASED:
            released = parse_body(ClaimReleasedRequest, incoming.data)
            return await self.release_claim(principal, released.claim_id, via="events")
        if incoming.type == OPPORTUNITY_CLOSED:
            return await self.close(principal,
                                    parse_body(OpportunityClosedRequest, incoming.data),
                                    via="events")
        raise invalid("type", f"unsupported type {incoming.type}")


def closed_by_reference(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The registration a CRM close by `external_ref` is about, among `rows` (every
    registration carrying that reference), or None when the reference does not say (422:
    the CRM sends `registration_id`).

    A reference is the PRM's or CRM's, not unique here: a rival may register the holder's
    customer under the holder's reference, and a partner registers an opportunity again
    under its reference after withdrawing or losing the first (session 27, rival review:
    any such second row made the close a 422). In order:

    - a single row is itself (an ended one answers 409 as before);
    - closable rows of ONE partner: its one active registration (approved, in review,
      submitted), else its one expired;
    - closable rows of several partners: the one *protection holder* -- the only closable
      row approved with exclusive protection (rule not `non_exclusive`) -- when its
      partner filed the reference before every other partner's closable row carrying it
      that holds or held something (approved, expired). A copy filed later (a rival's in
      review or submitted beside the holder, its non-exclusive approval, its expired one)
      neither takes the close nor blocks it (session 28: a rival's copy in review made the
      holder's win a 422); a row still in review or undecided holds nothing, so it never
      blocks the holder's close, whenever it was filed (session 29: one filed before the
      holder's, say a country-less filing waiting for a person, kept the holder's win a
      422). The close ends the holder's registration only; the pending row stays as it is;
    - otherwise None: no approved exclusive row (a holder expired and a rival's copy
      active or in review: whose opportunity it is the reference does not say, round 2
      of the session 27 review), two approved exclusive rows of different partners (two
      customers under one reference), or the one approved exclusive row filed after
      another partner's approved (non-exclusive) or expired row (a rival approved after
      the holder expired never takes the holder's close);
    - a row of one partner filed after another partner's row of the reference was closed
      (won or lost) is never chosen: a rival's copy of a closed reference never takes the
      CRM's re-sent close of it (session 29; None when nothing else is closable), nor is
      a row of one partner still in review or undecided beside another partner's closed
      row, whenever filed (session 29 second rival review)."""
    if len(rows) == 1:
        return rows[0]
    closed = [r for r in rows if r["status"] in _CLOSED]
    closable = [r for r in rows if r["status"] in CLOSABLE and not _beside_a_close(r, closed)]
    if len({r["partner_id"] for r in closable}) > 1:
        return _protection_holder(rows, closable)
    return _the_one_of_one_partner(closable)


def _beside_a_close(row: dict[str, Any], closed: list[dict[str, Any]]) -> bool:
    """Whether `row` is never chosen beside another partner's closed (won or lost) row of
    its reference: filed after it closed (a copy of a closed reference: the CRM's re-sent
    close of the holder's opportunity went to it, the one closable row, and a rival's copy
    read `won`; session 29 rival review), or still pending, whenever filed (it held nothing
    then either: filed before the holder's, it no longer blocked the holder's close, and
    the re-sent close then closed it `won`; session 29 second rival review)."""
    return any(c["partner_id"] != row["partner_id"]
               and (row["status"] in PENDING or _filed(c) <= _filed(row)) for c in closed)


def _protection_holder(rows: list[dict[str, Any]], closable: list[dict[str, Any]]
                       ) -> dict[str, Any] | None:
    """Among closable rows of several partners: the one approved with exclusive
    protection, when its partner filed the reference before every other partner's
    closable row that holds or held something (session 28; a pending row holds nothing
    and never blocks it, session 29), else None."""
    holders = [r for r in closable
               if r["status"] == "approved" and _rule_of(r) != "non_exclusive"]
    if len(holders) != 1:
        return None
    holder = holders[0]
    partner = holder["partner_id"]
    first = min(_filed(r) for r in rows if r["partner_id"] == partner)
    rivals_later = all(_filed(r) > first for r in closable
                       if r["partner_id"] != partner and r["status"] not in PENDING)
    return holder if rivals_later else None


def _the_one_of_one_partner(closable: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Among one partner's closable rows (or none): its one active registration (approved,
    in review, submitted), else its one expired; None for two (the CRM must say which)."""
    found = [r for r in closable if r["status"] != "expired"] or closable
    return found[0] if len(found) == 1 else None


def _rule_of(row: dict[str, Any]) -> str | None:
    decision = row.get("decision")
    return decision.get("rule") if isinstance(decision, dict) else None


def _filed(row: dict[str, Any]) -> datetime:
    """When a row was filed (the projection always stamps it; a missing time counts as
    the earliest)."""
    filed = row.get("submitted_at")
    return filed if isinstance(filed, datetime) else datetime.min.replace(tzinfo=UTC)


def partition_keys(base: str, partitions: int) -> list[str]:
    """One record key per partition (`<base>#<n>`, smallest n per partition): the log
    places records by key, so this is how one event reaches every partition."""
    keys: dict[int, str] = {}
    n = 0
    while len(keys) < partitions and n < partitions * 1000:
        key = f"{base}#{n}"
        keys.setdefault(partition_for(key, partitions), key)
        n += 1
    return [keys[p] for p in sorted(keys)]


def _amount(amount: AmountIn | None) -> Amount | None:
    return Amount(value=amount.value, currency=amount.currency) if amount else None


def _actor_role(principal: Principal) -> Any:
    return "admin" if principal.role == "admin" else "owner"


def _claim_view(row: dict[str, Any]) -> ClaimView:
    return ClaimView(
        id=row["id"], kind=row["kind"], rep_id=row["rep_id"], account_key=row["account_key"],
        account=row.get("account") or {}, products=list(row.get("products") or ()),
        status=row["status"], filed_at=row["filed_at"], decided_at=row.get("decided_at"),
        protected_until=row.get("protected_until"), decision=row.get("decision"))


def _contest_refused(registration_id: str, refusal: dict[str, Any],
                     viewer: partner_view.Viewer) -> Problem:
    """Adjudication's refusal of a contest, as the API's problem (DESIGN.md: unknown → 404,
    the rest 409); the explanation says why (for a partner, in the partner view: no id
    but its own)."""
    reason = str(refusal.get("reason", ""))
    status = 404 if reason == "unknown_registration" else 409
    explanation = refusal.get("explanation", "")
    if viewer.restricted:
        explanation = partner_view.scrub(
            explanation, partner_view.Scope(viewer, own_ids=frozenset({registration_id})))
    return Problem(status, "Not found" if status == 404 else "Conflict",
                   f"The contest of {registration_id} was refused ({reason}): {explanation}")


STAFF_REFUSED = TYPE_BASE + "dispute-command-refused"
"""The problem type of a staff command (acknowledge, resolve) adjudication refused."""


def _staff_refused(dispute_id: str, refusal: dict[str, Any], headers: dict[str, str]
                   ) -> Problem:
    """Adjudication's refusal of a staff command on `dispute_id`, as the API's problem:
    409 (nothing changed; the dispute stays as it was), the reason and the explanation in
    the detail. Staff only: partners send no such commands."""
    reason = str(refusal.get("reason", ""))
    action = str(refusal.get("action", "resolve"))
    return Problem(409, "Dispute command refused",
                   f"Adjudication refused to {action} dispute {dispute_id} ({reason}); "
                   f"nothing changed. {refusal.get('explanation', '')}".rstrip(),
                   type_=STAFF_REFUSED, headers=dict(headers))


def _problem_dict(problem: Problem) -> dict[str, Any]:
    out: dict[str, Any] = {"type": problem.type, "title": problem.title,
                           "status": problem.status, "detail": problem.detail}
    if problem.errors is not None:
        out["errors"] = problem.errors
    return out


def _seconds(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else str(seconds)


def _held(row: dict[str, Any], filed: Any) -> tuple[str, ...]:
    """The products a registration or claim holds as decided (`scope_products`: an award by
    product narrows it), else as filed: a copy elsewhere guards only what it still holds."""
    scope = row.get("scope_products")
    return tuple(scope if scope is not None else filed or ())

