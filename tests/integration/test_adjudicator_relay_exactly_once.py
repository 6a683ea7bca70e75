"""A settlement that relays is relayed exactly once through a crash, on both backends
(DESIGN.md, "A settlement's word reaches the copy's own partition"; invariants 3, 4).

The input is built directly (no stateful machine): `reg_a` approved on the domain key
(partition 0); on the name-only key of the same customer (partition 2) the registration
service reports it as a copy ahead of `reg_b`, which goes to a possible-duplicate review
with it; a person awards `reg_b`. The real adjudicator decides it, one record per batch,
with a snapshot after every event, and is killed (no graceful stop) as soon as the relay
is in the intake, then restarted from the log and its snapshots while more input arrives
on both keys. The relay must be in the intake once, under the copy's own key, with the id
`<settlement input>.r0`; no decision may be written twice; the restart must have started
from a snapshot; and every decision written must equal a fresh pure replay of the intake
(the relay included).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from services.adjudication.domain import AdjudicationState, DecisionContext, decide
from services.adjudication.domain.decide import decide_relaying
from services.adjudication.snapshots import store_for
from services.adjudication.worker import run_adjudicator
from shared.eventlog import EventLog, OutgoingRecord, Record, TopicPartition
from shared.eventlog.partitioner import partition_for
from shared.eventlog.topics import Topics
from shared.events import (
    Account,
    AccountLinkReported,
    CopiesInReview,
    DisputeOpened,
    DisputeResolutionSubmitted,
    DomainEvent,
    HomeEndRelayed,
    Opportunity,
    PartnerSnapshot,
    RegistrationDecided,
    RegistrationSubmitted,
    ReportedRegistration,
    SettlementRelayed,
    encode,
    new_envelope,
)
from shared.events.codec import decode
from shared.policy import Policy
from tests.integration.test_adjudicator_exactly_once import Recovered

PARTITIONS = 3
HOME = "dom:heuser-holdings.com"
ALIAS = "name:heuser holdings gmbh"
START = datetime(2026, 11, 2, tzinfo=UTC)


def _submitted(rid: str, partner: str, key: str, at: datetime) -> RegistrationSubmitted:
    return RegistrationSubmitted(
        registration_id=rid, partner_id=partner, partner=PartnerSnapshot(partner_id=partner),
        account_key=key, account=Account(
            name="Heuser Holdings", domain="heuser-holdings.com" if key == HOME else None),
        opportunity=Opportunity(title="deal", products=("analytics",)), motion="resell",
        submitted_at=at, policy_version=1)


def _record(topics: Topics, eid: str, key: str, event: DomainEvent,
            at: datetime) -> OutgoingRecord:
    envelope = new_envelope(event, id=eid, source="urn:test", subject=key, time=at)
    return OutgoingRecord(topics.intake, key, encode(envelope))


def _settlement(topics: Topics) -> list[OutgoingRecord]:
    """The intake up to and including the award that relays. The review's id is the one
    the pure core derives from its input (what a person reads off the console)."""
    at = [START + timedelta(hours=h) for h in range(3)]
    first = _submitted("reg_a", "p-01", HOME, at[0])
    report = AccountLinkReported(
        account_key=ALIAS, alias_key=HOME, matched_by="name", reported_at=at[1],
        policy_version=1, registration_id="reg_b", possible_duplicate=True,
        registrations=(ReportedRegistration(
            registration_id="reg_a", party_type="partner", party_id="p-01", motion="resell",
            products=("analytics",), status="approved", submitted_at=at[0]),))
    rival = _submitted("reg_b", "p-02", ALIAS, at[1])
    state = AdjudicationState()
    for eid, event in (("evt_report", report), ("evt_b", rival)):
        decisions, _ = decide_relaying(state, event, DecisionContext(
            eid, at[1], Policy.default(1)))
    review = next(d.dispute_id for d in decisions if isinstance(d, DisputeOpened))
    award = DisputeResolutionSubmitted(
        dispute_id=review, account_key=ALIAS, actor_id="admin", actor_role="admin",
        outcome="award", registration_id="reg_b", submitted_at=at[2])
    return [_record(topics, "evt_a", HOME, first, at[0]),
            _record(topics, "evt_report", ALIAS, report, at[1]),
            _record(topics, "evt_b", ALIAS, rival, at[1]),
            _record(topics, "evt_award", ALIAS, award, at[2])]


def _after(topics: Topics, at: datetime = START + timedelta(hours=5)) -> list[OutgoingRecord]:
    """More input on both keys, decided after the restart."""
    return [_record(topics, "evt_c", HOME, _submitted("reg_c", "p-03", HOME, at), at),
            _record(topics, "evt_d", ALIAS, _submitted("reg_d", "p-04", ALIAS, at), at)]


async def _all(log: EventLog, topic: str) -> list[Record]:
    out: list[Record] = []
    for tp, end in (await log.end_positions(topic)).items():
        async for batch in log.read(tp, 0, end):
            out.extend(batch)
    return out


async def _relayed(log: EventLog, topics: Topics) -> bool:
    return any(isinstance(decode(r.value)[1], SettlementRelayed)
               for r in await _all(log, topics.intake))


async def _decided(log: EventLog, topics: Topics, *input_ids: str) -> bool:
    written = {decode(r.value)[0].id.split(".d")[0] for r in await _all(log, topics.decisions)}
    return set(input_ids) <= written


async def _wait(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _replay(intake: list[Record]) -> dict[str, dict[str, object]]:
    by_partition: dict[TopicPartition, list[Record]] = defaultdict(list)
    for record in intake:
        by_partition[record.tp].append(record)
    expected = {}
    for records in by_partition.values():
        state = AdjudicationState()
        for record in sorted(records, key=lambda r: r.offset):
            envelope, event = decode(record.value)
            _, decisions = decide(state, event, DecisionContext(
                envelope.id, envelope.time, Policy.default(1)))
            for i, d in enumerate(decisions):
                expected[f"{envelope.id}.d{i}"] = d.to_data()
    return expected


def _start(log: EventLog, topics: Topics, group: str, stop: asyncio.Event,
           recovered: Recovered) -> asyncio.Task[None]:
    return asyncio.create_task(run_adjudicator(
        log, topics, group_id=group, source="urn:test/adjudication", stopping=stop.is_set,
        max_records=1, snapshots=recovered, snapshot_every_events=1))


async def test_a_relaying_settlement_is_relayed_once_and_replays_the_same_through_a_crash(
    eventlog: EventLog, unique: str
) -> None:
    assert partition_for(HOME, PARTITIONS) != partition_for(ALIAS, PARTITIONS)
    topics = Topics.named(f"rlx-{unique}")
    await eventlog.create_topics(topics.specs(PARTITIONS))
    for record in _settlement(topics):
        await eventlog.append([record])
    group = f"adj-{unique}"

    first = _start(eventlog, topics, group, asyncio.Event(), Recovered(store_for(eventlog, topics)))
    await _wait(lambda: _relayed(eventlog, topics), 90, "the relay")
    first.cancel()  # killed right after the settlement's transaction, no graceful stop
    await asyncio.gather(first, return_exceptions=True)

    stop = asyncio.Event()
    recovered = Recovered(store_for(eventlog, topics))
    second = _start(eventlog, topics, group, stop, recovered)
    await eventlog.append(_after(topics))
    await _wait(lambda: _decided(eventlog, topics, "evt_award.r0", "evt_c", "evt_d"), 120,
                "the relay and the input after the restart decided")
    await asyncio.sleep(1.0)  # a duplicate relay or decision would show now
    stop.set()
    await asyncio.wait_for(second, 60)

    intake = await _all(eventlog, topics.intake)
    relays = [(r, *decode(r.value)) for r in intake
              if isinstance(decode(r.value)[1], SettlementRelayed)]
    assert len(relays) == 1, "the relay was appended more than once"
    kept, envelope, relay = relays[0]
    assert isinstance(relay, SettlementRelayed)
    assert (envelope.id, kept.key, kept.partition) == (
        "evt_award.r0", HOME, partition_for(HOME, PARTITIONS))
    assert [(d.registration_id, d.status) for d in relay.decisions] == [("reg_a", "rejected")]
    written = [decode(r.value) for r in await _all(eventlog, topics.decisions)]
    twice = {i: n for i, n in Counter(e.id for e, _ in written).items() if n != 1}
    assert twice == {}, "a decision was written twice"
    assert {e.id: d.to_data() for e, d in written} == _replay(intake)
    assert recovered.loaded, "the restart did not start from a snapshot"
    home = {e.id: d.status for e, d in written
            if isinstance(d, RegistrationDecided) and d.registration_id == "reg_a"}
    # Its approval, the settlement's word (keyed by its key) and its own partition's.
    assert sorted(home.values()) == ["approved", "rejected", "rejected"]
    assert home["evt_award.r0.d0"] == "rejected"


# --- the converse: a home decision reaches the review elsewhere that holds a copy ---------


def _home_rejection(topics: Topics) -> list[OutgoingRecord]:
    """`reg_a` approved on HOME for analytics and crm, its copy in `reg_b`'s review on
    ALIAS; on HOME platinum `reg_p` challenges `reg_a` for crm and a person awards it,
    rejecting `reg_a` at home. All of it is in the log before the adjudicator starts, so
    the review's notice (`evt_b.r0`) reaches HOME after the award and is answered at once
    (`evt_b.r0.r0`). It happens in the last hours before now: the worker fires timers by
    the wall clock, and a review's deadlines passed long ago would settle it by fallback
    before the notice's answer arrives (and the challenge before the award)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)
    at = [start + timedelta(hours=h) for h in range(4)]

    def submitted(rid: str, partner: str, key: str, when: datetime,
                  products: tuple[str, ...], tier: str = "registered") -> RegistrationSubmitted:
        return RegistrationSubmitted(
            registration_id=rid, partner_id=partner,
            partner=PartnerSnapshot(partner_id=partner, tier=tier), account_key=key,
            account=Account(name="Heuser Holdings",
                            domain="heuser-holdings.com" if key == HOME else None),
            opportunity=Opportunity(title="deal", products=products), motion="resell",
            submitted_at=when, policy_version=1)

    first = submitted("reg_a", "p-01", HOME, at[0], ("analytics", "crm"))
    report = AccountLinkReported(
        account_key=ALIAS, alias_key=HOME, matched_by="name", reported_at=at[1],
        policy_version=1, registration_id="reg_b", possible_duplicate=True,
        registrations=(ReportedRegistration(
            registration_id="reg_a", party_type="partner", party_id="p-01", motion="resell",
            products=("analytics", "crm"), status="approved", submitted_at=at[0]),))
    rival = submitted("reg_b", "p-02", ALIAS, at[1], ("analytics",))
    challenger = submitted("reg_p", "p-04", HOME, at[2], ("crm",), tier="platinum")
    state = AdjudicationState()
    for eid, event in (("evt_a", first), ("evt_p", challenger)):
        decisions, _ = decide_relaying(state, event, DecisionContext(
            eid, event.submitted_at, Policy.default(1)))
    challenge = next(d.dispute_id for d in decisions if isinstance(d, DisputeOpened))
    award = DisputeResolutionSubmitted(
        dispute_id=challenge, account_key=HOME, actor_id="admin", actor_role="admin",
        outcome="award", registration_id="reg_p", submitted_at=at[3])
    return [_record(topics, "evt_a", HOME, first, at[0]),
            _record(topics, "evt_report", ALIAS, report, at[1]),
            _record(topics, "evt_b", ALIAS, rival, at[1]),
            _record(topics, "evt_p", HOME, challenger, at[2]),
            _record(topics, "evt_home", HOME, award, at[3])]


async def _told(log: EventLog, topics: Topics) -> bool:
    return any(isinstance(decode(r.value)[1], HomeEndRelayed)
               for r in await _all(log, topics.intake))


async def test_a_home_rejection_reaches_the_review_holding_its_copy_once_through_a_crash(
    eventlog: EventLog, unique: str
) -> None:
    topics = Topics.named(f"rlc-{unique}")
    await eventlog.create_topics(topics.specs(PARTITIONS))
    for record in _home_rejection(topics):
        await eventlog.append([record])
    group = f"adj-{unique}"

    stop = asyncio.Event()
    recovered = Recovered(store_for(eventlog, topics))
    first = _start(eventlog, topics, group, asyncio.Event(), Recovered(store_for(eventlog, topics)))
    second = None
    try:
        await _wait(lambda: _told(eventlog, topics), 90, "the home end relayed")
        first.cancel()  # killed right after the transaction that told the review
        await asyncio.gather(first, return_exceptions=True)

        second = _start(eventlog, topics, group, stop, recovered)
        await eventlog.append(_after(topics, datetime.now(UTC).replace(microsecond=0)))
        await _wait(lambda: _decided(eventlog, topics, "evt_b.r0.r0", "evt_c", "evt_d"), 120,
                    "the review freed and the input after the restart decided")
        await asyncio.sleep(1.0)  # a duplicate relay or decision would show now
        stop.set()
        await asyncio.wait_for(second, 60)
    finally:  # a failure above reports instead of leaving a worker the teardown waits on
        for task in (first, second):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    intake = await _all(eventlog, topics.intake)
    # The partitions' records in id order (the backends list partitions in any order).
    notes = sorted(((r.key, r.partition, *decode(r.value)) for r in intake
                    if isinstance(decode(r.value)[1], CopiesInReview | HomeEndRelayed)),
                   key=lambda note: note[2].id)
    assert [(key, part, env.id, type(e).__name__) for key, part, env, e in notes] == [
        (HOME, partition_for(HOME, PARTITIONS), "evt_b.r0", "CopiesInReview"),
        (ALIAS, partition_for(ALIAS, PARTITIONS), "evt_b.r0.r0", "HomeEndRelayed"),
    ], "a relay missing or appended more than once"
    told = notes[1][3]
    assert isinstance(told, HomeEndRelayed)
    assert [(e.registration_id, e.status) for e in told.ended] == [("reg_a", "rejected")]
    written = [decode(r.value) for r in await _all(eventlog, topics.decisions)]
    twice = {i: n for i, n in Counter(e.id for e, _ in written).items() if n != 1}
    assert twice == {}, "a decision was written twice"
    assert {e.id: d.to_data() for e, d in written} == _replay(intake)
    assert recovered.loaded, "the restart did not start from a snapshot"
    freed = [(d.registration_id, d.status) for e, d in written
             if e.id.startswith("evt_b.r0.r0.") and isinstance(d, RegistrationDecided)]
    assert freed == [("reg_b", "approved")]  # the review closed moot: nothing waits
