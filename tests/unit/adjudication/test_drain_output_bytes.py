"""A whole drain through the worker's hot path (`prepare` + `process`: decode, decide,
encode) writes, byte for byte, what the model path writes: `decode` of each record via the
envelope model, `decide`, and `encode(new_envelope(...))` of each decision. Guards every
shortcut taken in the drain's decode/encode (issue 16) against changing a decision's bytes."""

from __future__ import annotations

import asyncio
from typing import Any

from adjudication_workload import generate, workload_policies

from services.adjudication.domain import (
    AdjudicationState,
    DecisionContext,
    decide,
    policy_version_of,
)
from services.adjudication.worker import Adjudicator
from shared.eventlog import Record
from shared.eventlog.topics import Topics
from shared.events import encode, new_envelope
from shared.events.codec import decode


def test_a_drain_writes_the_bytes_the_model_path_writes() -> None:
    log, _ = generate(3_000, seed=23)
    topics = Topics.named("drainbytes")
    records = []
    for i, (event, at) in enumerate(log):
        key = getattr(event, "account_key", None) or "acct-none"
        value = encode(new_envelope(event, id=f"evt_{i:06d}", source="urn:test", subject=key,
                                    time=at, traceparent=None if i % 3 else
                                    f"00-{i:032x}-{i + 1:016x}-01"))
        records.append(Record(topics.intake, 0, i, key, value, 0))

    # The model path.
    policies = workload_policies()
    state = AdjudicationState()
    expected: list[tuple[str, str, bytes]] = []
    for record in records:
        envelope, event = decode(record.value)
        version = policy_version_of(event)
        _, decisions = decide(state, event, DecisionContext(
            envelope.id, envelope.time, policies[version] if version is not None else None))
        for i, decision in enumerate(decisions):
            key = getattr(decision, "account_key", None) or record.key
            expected.append((topics.decisions, key, encode(new_envelope(
                decision, id=f"{envelope.id}.d{i}", source="urn:adj", subject=key,
                time=envelope.time, traceparent=envelope.traceparent,
                tracestate=envelope.tracestate))))

    # The worker's path, in batches as a drain reads them.
    worker = Adjudicator(None, topics, "urn:adj",  # type: ignore[arg-type]
                         timer_interval=float("inf"))
    worker.policies.versions.update(policies)
    tp = records[0].tp
    got: list[Any] = []

    async def drain() -> None:
        for start in range(0, len(records), 500):
            batch = records[start:start + 500]
            await worker.prepare(tp, batch)
            got.extend(worker.process(tp, batch))

    asyncio.run(drain())
    assert len(expected) > len(records) // 2
    assert [(r.topic, r.key, r.value) for r in got] == expected
