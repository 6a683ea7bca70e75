"""Adjudicator backlog drain rate against its ceiling, and partition recovery, on both backends.

    python tests/bench/bench_adjudicator.py [--events 100000] [--backend embedded|kafka|both]
                                            [--quick]

A backlog of registrations from the realistic workload (tests/support/companies.py: seeded
Faker companies, a known share of true collisions, account keys derived as the edge derives
them) is appended to the intake topic first. Then, on the same log and records:

1. the **ceiling** (tests/bench/ceilings.py): the raw aiokafka transactional consume ->
   produce loop (Kafka), or the embedded log's transactional loop with a copying processor
   (embedded);
2. the **drain**: one adjudicator drains the backlog; events/s from start until the last
   decision is committed, sampled over time (chart), and drain / ceiling;
3. **recovery**: the time a fresh member needs to rebuild the state of all partitions.

Printed next to the rates: the observed collision rate (first decisions other than
`no_conflict`) and distinct account keys, beside the intended share and distinct companies.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from services.adjudication.worker import Adjudicator, run_adjudicator
from services.registration.domain.resolution import choose
from shared.accounts import AccountIdentity, AccountIndex
from shared.eventlog import EventLog, OutgoingRecord
from shared.eventlog.base import TopicSpec
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.kafka import KafkaEventLog
from shared.eventlog.topics import Topics
from shared.events import (
    Account,
    Amount,
    Opportunity,
    PartnerSnapshot,
    RegistrationDecided,
    RegistrationSubmitted,
    encode,
    new_envelope,
)
from shared.events.codec import decode
from tests.bench.ceilings import embedded_ceiling, kafka_ceiling
from tests.bench.common import record
from tests.support.companies import Registration, generate

PARTITIONS = 12


def registrations(n: int, collisions: float) -> tuple[list[Registration], float, int]:
    """`n` registrations of the realistic workload; (them, intended collision share,
    distinct companies). One workload, not shards of one: shards had their own seeds but
    Faker's names repeat, so a name registered name-only in one shard (unambiguous there)
    could be another shard's company's name, and the edge rightly filed the two under one
    key (32,000 companies, 31,744 keys; session 28)."""
    workload = generate(1000, n, collision_share=collisions)
    out = list(workload.registrations)
    return out, sum(r.collision for r in out) / max(1, n), workload.distinct_companies


def backlog(topics: Topics, regs: list[Registration]) -> tuple[list[OutgoingRecord], int]:
    """The intake records, and how many distinct account keys they carry."""
    # A backlog of the last few minutes: deadlines (protection, disputes) lie in the future,
    # as they do when a real backlog builds up behind a slow or stopped adjudicator.
    n = len(regs)
    start = datetime.now(UTC) - timedelta(milliseconds=10 * n)
    out = []
    keys = set()
    # The edge's own resolution (the registration service's choose() over an account
    # index), without its database: each registration gets the key the edge would give it.
    index = AccountIndex()
    for i, r in enumerate(regs):
        identity = AccountIdentity.from_raw(name=r.name, domain=r.domain, country=r.country,
                                            crm_account_id=r.crm_account_id)
        key = choose(identity, index.match(identity, 0.9, 0.1), index.identifiers,
                     index.__contains__).account_key
        index.add(key, identity)
        keys.add(key)
        at = start + timedelta(milliseconds=10 * i)
        event = RegistrationSubmitted(
            registration_id=f"reg_{i:08d}", partner_id=r.partner_id,
            partner=PartnerSnapshot(partner_id=r.partner_id, tier="gold"),
            account_key=key, account=Account(name=r.name, domain=r.domain, country=r.country,
                                             crm_account_id=r.crm_account_id),
            opportunity=Opportunity(title="Platform deal", products=r.products,
                                    amount=Amount(value="125000.00", currency="USD")),
            motion="resell", external_ref=f"PRM-{i}", submitted_at=at, policy_version=1,
        )
        out.append(OutgoingRecord(topics.intake, key, encode(new_envelope(
            event, id=f"evt_{i:08d}", source="urn:bench", subject=key, time=at))))
    return out, len(keys)


async def initial_decisions(log: EventLog, topics: Topics) -> dict[str, str]:
    """Registration event id -> the rule of its first decision (decision ids start with the
    input's)."""
    rules: dict[str, str] = {}
    for tp, end in (await log.end_positions(topics.decisions)).items():
        async for batch in log.read(tp, 0, end):
            for r in batch:
                envelope, event = decode(r.value)
                origin = envelope.id.split(".d")[0]
                if origin.startswith("evt_") and isinstance(event, RegistrationDecided):
                    rules.setdefault(origin, event.rule)
    return rules


async def run(log: EventLog, name: str, regs: list[Registration], intended: float,
              companies: int, bootstrap: str | None) -> dict[str, Any]:
    n = len(regs)
    topics = Topics.named(f"bench-{time.time_ns()}")
    await log.create_topics(topics.specs(PARTITIONS))
    records, distinct_keys = backlog(topics, regs)
    t0 = time.perf_counter()
    for i in range(0, n, 5000):
        await log.append(records[i:i + 5000])
    append_s = time.perf_counter() - t0
    del records

    ceiling_topic = f"{topics.intake}.ceiling-out"
    await log.create_topics([TopicSpec(ceiling_topic, PARTITIONS)])
    ceiling_cpu = time.process_time()
    if bootstrap is not None:
        ceiling = await kafka_ceiling(bootstrap, topics.intake, ceiling_topic, PARTITIONS, n)
    else:
        ceiling = await embedded_ceiling(log, topics.intake, ceiling_topic, n)
    # CPU time of this process (the ceiling's loop, then the adjudicator, run in it): on a
    # shared machine events per CPU-second compare where wall-clock rates cannot.
    ceiling_cpu = time.process_time() - ceiling_cpu
    print(f"  {name} ceiling (transactional copy loop): {ceiling:,.0f} events/s, "
          f"{n / ceiling_cpu:,.0f} events per CPU-second", flush=True)

    stop = asyncio.Event()
    group = f"bench-adj-{time.time_ns()}"
    started = time.perf_counter()
    drain_cpu = time.process_time()
    task = asyncio.create_task(run_adjudicator(log, topics, group_id=group,
                                               source="urn:bench", stopping=stop.is_set))
    # Poll the committed group positions: cheap on both backends.
    series: list[list[float]] = []
    while True:
        done = sum((await log.committed(group, topics.intake)).values())
        series.append([round(time.perf_counter() - started, 3), done])
        if done >= n:
            break
        if task.done():
            task.result()  # a crashed adjudicator: its error, not a hang
            raise RuntimeError("the adjudicator stopped before draining the backlog")
        await asyncio.sleep(0.1)
    drain_s = time.perf_counter() - started
    drain_cpu = time.process_time() - drain_cpu
    stop.set()
    await task
    rules = await initial_decisions(log, topics)
    assert len(rules) == n, f"{n - len(rules)} registrations were not decided"
    collided = sum(rule != "no_conflict" for rule in rules.values())

    adjudicator = Adjudicator(log, topics, "urn:bench")
    t1 = time.perf_counter()
    await adjudicator.assigned(await log.committed(group, topics.intake))
    recovery_s = time.perf_counter() - t1
    drain = n / drain_s
    print(f"  {name} drain: {drain:,.0f} events/s = {drain / ceiling:.1%} of the ceiling; "
          f"collisions intended {intended:.1%} / observed {collided / n:.1%}; "
          f"distinct companies {companies} / account keys {distinct_keys}", flush=True)
    print(f"  {name} drain CPU: {drain_cpu:.2f} s = {n / drain_cpu:,.0f} events per "
          f"CPU-second = {ceiling_cpu / drain_cpu:.1%} of the ceiling's", flush=True)
    return {
        f"{name}_events": n,
        f"{name}_append_events_per_s": round(n / append_s),
        f"{name}_drain_events_per_s": round(drain),
        f"{name}_drain_ceiling_events_per_s": round(ceiling),
        f"{name}_drain_over_ceiling": round(drain / ceiling, 4),
        f"{name}_drain_cpu_s": round(drain_cpu, 2),
        f"{name}_drain_events_per_cpu_s": round(n / drain_cpu),
        f"{name}_drain_ceiling_events_per_cpu_s": round(n / ceiling_cpu),
        f"{name}_recovery_s_all_partitions": round(recovery_s, 2),
        f"{name}_recovery_events_per_s": round(n / recovery_s),
        f"{name}_intended_collision_share": round(intended, 4),
        f"{name}_observed_collision_rate": round(collided / n, 4),
        f"{name}_intended_distinct_companies": companies,
        f"{name}_observed_distinct_account_keys": distinct_keys,
        f"{name}_drain_series": series,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--backend", choices=["embedded", "kafka", "both"], default="both")
    parser.add_argument("--collisions", type=float, default=0.2)
    parser.add_argument("--quick", action="store_true", help="a small backlog")
    args, _ = parser.parse_known_args()
    if args.quick:
        args.events = min(args.events, 5_000)
    regs, intended, companies = registrations(args.events, args.collisions)
    results: dict[str, Any] = {}
    if args.backend in ("embedded", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            log = EmbeddedEventLog(Path(tmp) / "log.sqlite3")
            await log.start()
            try:
                results.update(await run(log, "embedded", regs, intended, companies, None))
                record("adjudicator", results)  # kept if Kafka runs out of time
            finally:
                await log.close()
    if args.backend in ("kafka", "both"):
        from tests.support.servers import start_kafka

        with start_kafka() as server:
            klog = KafkaEventLog(server.url)
            await klog.start()
            try:
                results.update(await run(klog, "kafka", regs, intended, companies,
                                          server.url))
            finally:
                await klog.close()
    record("adjudicator", results)


if __name__ == "__main__":
    from tests.bench.common import exit_on_sigterm

    exit_on_sigterm()  # its servers stop when run.py stops it at its timeout
    asyncio.run(main())
