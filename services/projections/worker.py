"""The projection worker: folds intake and decisions into the read models, effectively once.

Each polled batch is applied in one database transaction that also stores the consumed
positions, so a crash between the two is impossible and a redelivered record is skipped.
Rows touched by a batch are loaded once, folded in memory, and written back in bulk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.adapters.repository import (
    load_positions,
    load_registrations,
    save_positions,
    upsert,
)
from services.projections.domain.registrations import apply_decided, apply_submitted, empty_row
from shared.accounts import normalize_name
from shared.eventlog import EventLog, Record, TopicPartition
from shared.eventlog.topics import Topics
from shared.events import RegistrationDecided, RegistrationSubmitted
from shared.events.codec import decode
from shared.logging import get_logger
from shared.readmodel.schema import account_crm_ids, account_domains, account_names, registrations

log = get_logger(__name__)

PROJECTION = "core"
Listener = Callable[[Iterable[str]], None]


class ProjectionWorker:
    def __init__(
        self,
        eventlog: EventLog,
        engine: AsyncEngine,
        topics: Topics,
        *,
        group_id: str,
        on_applied: Listener | None = None,
        max_records: int = 5000,
    ) -> None:
        self.eventlog = eventlog
        self.engine = engine
        self.topics = topics
        self.group_id = group_id
        self.on_applied = on_applied
        self.max_records = max_records
        self.positions: dict[TopicPartition, int] = {}

    async def _start_positions(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        async with self.engine.connect() as conn:
            found = await load_positions(conn, PROJECTION, partitions)
        self.positions.update(found)
        return found

    async def run(self, stopping: Callable[[], bool]) -> None:
        subscription = await self.eventlog.subscribe(
            self.group_id,
            [self.topics.intake, self.topics.decisions],
            start_positions=self._start_positions,
        )
        try:
            while not stopping():
                records = await subscription.poll(self.max_records, timeout=0.2)
                if records:
                    await self.apply(records)
        finally:
            await subscription.close()

    async def apply(self, records: Sequence[Record]) -> None:
        decoded = []
        for record in records:
            if record.offset < self.positions.get(record.tp, 0):
                continue  # already applied (redelivery after a rebalance)
            try:
                decoded.append(decode(record.value)[1])
            except ValueError as exc:
                log.error("undecodable_record", topic=record.topic, partition=record.partition,
                          offset=record.offset, error=str(exc))
        new_positions = dict(self.positions)
        for record in records:
            new_positions[record.tp] = max(new_positions.get(record.tp, 0), record.offset + 1)

        touched = {
            e.registration_id for e in decoded
            if isinstance(e, RegistrationSubmitted | RegistrationDecided)
        }
        domains: list[dict[str, Any]] = []
        crm_ids: list[dict[str, Any]] = []
        names: list[dict[str, Any]] = []
        async with self.engine.begin() as conn:
            rows = await load_registrations(conn, touched)
            for event in decoded:
                if isinstance(event, RegistrationSubmitted):
                    row = rows.setdefault(event.registration_id, empty_row(event.registration_id))
                    apply_submitted(row, event)
                    if event.account.domain:
                        domains.append({"domain": event.account.domain,
                                        "account_key": event.account_key})
                    if event.account.name and event.account.country:
                        names.append({"country": event.account.country,
                                      "name": normalize_name(event.account.name),
                                      "account_key": event.account_key})
                    if event.account.crm_account_id:
                        crm_ids.append({"crm_account_id": event.account.crm_account_id,
                                        "account_key": event.account_key})
                elif isinstance(event, RegistrationDecided):
                    row = rows.setdefault(event.registration_id, empty_row(event.registration_id))
                    apply_decided(row, event)
            await upsert(conn, registrations, list(rows.values()), ("id",))
            # First writer wins: a domain keeps the account key it was first resolved to.
            await upsert(conn, account_domains, _unique(domains, "domain"), ("domain",),
                         overwrite=False)
            await upsert(conn, account_crm_ids, _unique(crm_ids, "crm_account_id"),
                         ("crm_account_id",), overwrite=False)
            await upsert(conn, account_names,
                         list({(r["country"], r["name"], r["account_key"]): r
                               for r in names}.values()),
                         ("country", "name", "account_key"), overwrite=False)
            await save_positions(conn, PROJECTION, new_positions)
        self.positions = new_positions
        if self.on_applied is not None and touched:
            self.on_applied(touched)


def _unique(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row[key], row)
    return list(seen.values())


async def run_projections(worker: ProjectionWorker, stopping: Callable[[], bool]) -> None:
    while not stopping():
        try:
            await worker.run(stopping)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("projection_worker_crashed_restarting")
            await asyncio.sleep(1.0)
