"""Adjudicator backlog drain rate and partition recovery time, on both backends.

    python tests/bench/bench_adjudicator.py [--events 100000] [--backend embedded|kafka|both]

A backlog of registrations (a fifth of them colliding with an earlier one) is appended to
the intake topic first; then one adjudicator drains it. Reported: events/s from start until
the last decision is committed, and the time a fresh member needs to rebuild the state of
all partitions from the log (recovery).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from services.adjudication.worker import Adjudicator, run_adjudicator
from shared.eventlog import EventLog, OutgoingRecord
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.kafka import KafkaEventLog
from shared.eventlog.topics import Topics
from shared.events import (
    Account,
    Amount,
    Opportunity,
    PartnerSnapshot,
    RegistrationSubmitted,
    encode,
    new_envelope,
)
from shared.events.codec import decode
from tests.bench.common import record

PARTITIONS = 12


SYLLABLES = ("ka", "lo", "mi", "zen", "tor", "vex", "ra", "qui", "bel", "dor", "an", "sy",
             "mar", "tek", "ul", "fi", "gro", "ne", "pax", "hal")
COMMON = ("systems", "global", "partners", "labs", "industries", "group", "solutions")
LEGAL = ("Inc", "GmbH", "Ltd", "LLC", "S.A.", "AG", "B.V.")


def account(a: int) -> tuple[str, str, str]:
    """A realistic-looking account: varied names (a shared word is common, as in life),
    its own domain, one of three countries."""
    rng = random.Random(a)
    word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3, 3, 4))))
    common = rng.choice(COMMON) if rng.random() < 0.6 else ""
    name = " ".join(p for p in (word.title(), common.title(), rng.choice(LEGAL)) if p)
    return name, f"{word}{a}.com", rng.choice(("US", "DE", "GB"))


def backlog(topics: Topics, n: int) -> list[OutgoingRecord]:
    # A backlog of the last few minutes: deadlines (protection, disputes) lie in the future,
    # as they do when a real backlog builds up behind a slow or stopped adjudicator.
    start = datetime.now(UTC) - timedelta(milliseconds=10 * n)
    accounts = max(1, int(n * 0.8))
    out = []
    for i in range(n):
        a = i % accounts
        name, domain, country = account(a)
        key = f"dom:{domain}"
        at = start + timedelta(milliseconds=10 * i)
        event = RegistrationSubmitted(
            registration_id=f"reg_{i:08d}", partner_id=f"p-{i % 50}",
            partner=PartnerSnapshot(partner_id=f"p-{i % 50}", tier="gold"),
            account_key=key, account=Account(name=name, domain=domain, country=country),
            opportunity=Opportunity(title="Platform deal", products=("analytics", "cloud"),
                                    amount=Amount(value="125000.00", currency="USD")),
            motion="resell", external_ref=f"PRM-{i}", submitted_at=at, policy_version=1,
        )
        out.append(OutgoingRecord(topics.intake, key, encode(new_envelope(
            event, id=f"evt_{i:08d}", source="urn:bench", subject=key, time=at))))
    return out


async def initial_decisions(log: EventLog, topics: Topics) -> int:
    """Registrations whose first decision is written (decision ids start with the input's)."""
    ids = set()
    for tp, end in (await log.end_positions(topics.decisions)).items():
        async for batch in log.read(tp, 0, end):
            ids.update(decode(r.value)[0].id.split(".d")[0] for r in batch)
    return sum(1 for i in ids if i.startswith("evt_"))


async def run(log: EventLog, name: str, n: int) -> dict[str, float]:
    topics = Topics.named(f"bench-{int(time.time())}")
    await log.create_topics(topics.specs(PARTITIONS))
    records = backlog(topics, n)
    t0 = time.perf_counter()
    for i in range(0, n, 5000):
        await log.append(records[i:i + 5000])
    append_s = time.perf_counter() - t0

    stop = asyncio.Event()
    group = f"bench-adj-{int(time.time())}"
    started = time.perf_counter()
    task = asyncio.create_task(run_adjudicator(log, topics, group_id=group,
                                               source="urn:bench", stopping=stop.is_set))
    # Poll the committed group positions: cheap on both backends.
    while True:
        committed = await log.committed(group, topics.intake)
        if sum(committed.values()) >= n:
            break
        await asyncio.sleep(0.05)
    drain_s = time.perf_counter() - started
    stop.set()
    await task
    assert await initial_decisions(log, topics) == n, "a registration was not decided"

    adjudicator = Adjudicator(log, topics, "urn:bench")
    t1 = time.perf_counter()
    await adjudicator.assigned(await log.committed(group, topics.intake))
    recovery_s = time.perf_counter() - t1
    return {
        f"{name}_events": float(n),
        f"{name}_append_events_per_s": n / append_s,
        f"{name}_drain_events_per_s": n / drain_s,
        f"{name}_recovery_s_all_partitions": recovery_s,
        f"{name}_recovery_events_per_s": n / recovery_s,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--backend", choices=["embedded", "kafka", "both"], default="both")
    args, _ = parser.parse_known_args()
    results: dict[str, float] = {}
    if args.backend in ("embedded", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            log = EmbeddedEventLog(Path(tmp) / "log.sqlite3")
            await log.start()
            try:
                results.update(await run(log, "embedded", args.events))
            finally:
                await log.close()
    if args.backend in ("kafka", "both"):
        from tests.support.servers import start_kafka

        with start_kafka() as server:
            klog = KafkaEventLog(server.url)
            await klog.start()
            try:
                results.update(await run(klog, "kafka", args.events))
            finally:
                await klog.close()
    record("adjudicator", results)


if __name__ == "__main__":
    asyncio.run(main())
