"""The program leader's series (`GET /v1/program/metrics`) over a seeded, realistic
workload, equal to an independent count from the events.

A generated workload (tests/support/companies.py: real company look-alikes, true
collisions) goes through the real registration handlers, the adjudicator and the projection
worker (tests/support/pipeline.py) over three simulated weeks: amounts in two currencies,
every motion, disputes opened by collisions inside the tie window, some resolved by a
person, the rest escalated past their SLAs (breaches at level 1 and fallbacks at level 2),
deals closed won and lost. The series are then read through the real HTTP handlers and
compared, bucket by bucket, with what the intake and decision logs say, counted here
without the read models.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from dealreg.app import create_app
from services.registration.models import (
    DisputeRequest,
    OpportunityClosedRequest,
    RegistrationRequest,
    ResolutionRequest,
)
from shared.events import DomainEvent, RegistrationDecided, RegistrationSubmitted
from shared.events.codec import decode
from shared.events.disputes import (
    DisputeEscalated,
    DisputeOpened,
    DisputeResolved,
    DisputeSlaBreached,
)
from shared.events.lifecycle import ProtectionEnded
from tests.support.companies import generate
from tests.support.pipeline import ADMIN, EPOCH, Pipeline, SimClock, simulated_time

SEED = 20261126
REGISTRATIONS = 140
MOTIONS = ("resell",) * 6 + ("co_sell",) * 2 + ("referral", "influence")
FIRST_DAY = EPOCH.date()
LAST_DAY = FIRST_DAY + timedelta(days=27)


@dataclass
class Truth:
    """What the logs say, counted without the read models."""

    submitted: dict[str, RegistrationSubmitted] = field(default_factory=dict)
    first: dict[str, RegistrationDecided] = field(default_factory=dict)
    settled: dict[str, RegistrationDecided] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    ended: dict[str, ProtectionEnded] = field(default_factory=dict)
    opened: dict[str, DisputeOpened] = field(default_factory=dict)
    resolved: dict[str, DisputeResolved] = field(default_factory=dict)
    breaches: dict[tuple[str, int], datetime] = field(default_factory=dict)

    def add(self, event: DomainEvent) -> None:
        if isinstance(event, RegistrationSubmitted):
            self.submitted[event.registration_id] = event
            self.status.setdefault(event.registration_id, "submitted")
        elif isinstance(event, RegistrationDecided):
            self.first.setdefault(event.registration_id, event)
            if event.status != "in_review":
                self.settled.setdefault(event.registration_id, event)
            self.status[event.registration_id] = event.status
        elif isinstance(event, ProtectionEnded) and event.party_type == "partner":
            self.ended[event.registration_id] = event
            self.status[event.registration_id] = event.status
        elif isinstance(event, DisputeOpened):
            self.opened[event.dispute_id] = event
        elif isinstance(event, DisputeResolved):
            self.resolved[event.dispute_id] = event
            if event.outcome == "final_breach_fallback":
                self.breaches[(event.dispute_id, event.level)] = event.resolved_at
        elif isinstance(event, DisputeEscalated):
            self.breaches[(event.dispute_id, event.from_level)] = event.breached_deadline
        elif isinstance(event, DisputeSlaBreached):
            self.breaches[(event.dispute_id, event.level)] = event.breached_deadline


@dataclass
class World:
    app: Any
    truth: Truth
    keys: dict[str, str]
    resolved_by_hand: int
    closed: Counter[str]


def ms(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds() * 1000))


def nearest(values: list[int], percent: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(percent * len(ordered) / 100) - 1)] / 1000, 3)


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def bucket_of(at: datetime, bucket: str) -> str:
    day = at.astimezone(UTC).date()
    if bucket == "week":
        day -= timedelta(days=day.weekday())
    return day.isoformat()


def inside(at: datetime, first: date, last: date) -> bool:
    return first <= at.astimezone(UTC).date() <= last


def labels(first: date, last: date, bucket: str) -> list[str]:
    day = first if bucket == "day" else first - timedelta(days=first.weekday())
    step = timedelta(days=1 if bucket == "day" else 7)
    out = []
    while day <= last:
        out.append(day.isoformat())
        day += step
    return out


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    workload = generate(SEED, REGISTRATIONS, collision_share=0.3)
    rng = random.Random(SEED)
    clock = SimClock()
    data = tmp_path_factory.mktemp("program") / "data"
    pipeline = Pipeline(data, clock)
    closed: Counter[str] = Counter()
    by_hand = 0
    contested: set[str] = set()
    with simulated_time(clock):
        await pipeline.start()
        try:
            for partner, tier in workload.partners:
                await pipeline.commands.reference.put_partner(partner, {
                    "name": partner, "type": "reseller", "tier": tier, "status": "active"},
                    by="test")
            ids: list[str] = []
            for n, spec in enumerate(workload.registrations, start=1):
                clock.advance(timedelta(minutes=rng.choice((20, 90, 240, 600))))
                body = spec.request(motion=rng.choice(MOTIONS))
                if rng.random() < 0.85:
                    body["opportunity"]["amount"] = {
                        "value": f"{rng.randrange(1000, 90000)}.{rng.randrange(100):02d}",
                        "currency": rng.choice(("USD", "USD", "EUR"))}
                outcome = await pipeline.commands.submit_registration(
                    ADMIN, RegistrationRequest.model_validate(body))
                ids.append(outcome.body.id)  # type: ignore[attr-defined]
                if n % 8 == 0:
                    await pipeline.pump()
                    # Every rejected partner contests once.
                    async with pipeline.runtime.engine.connect() as conn:
                        rejected = [r for (r,) in (await conn.execute(text(
                            "SELECT id FROM registrations WHERE status = 'rejected' AND "
                            "dispute_id IS NULL "
                            "ORDER BY id")))]
                    for rid in rejected:
                        if rid not in contested:
                            contested.add(rid)
                            await pipeline.commands.file_dispute(
                                ADMIN, rid, DisputeRequest(reason="We were there first."))
                    await pipeline.pump()
                    # A person settles every third open dispute; the rest breach their SLA.
                    async with pipeline.runtime.engine.connect() as conn:
                        open_ones = (await conn.execute(text(
                            "SELECT id, registration_ids FROM disputes WHERE status = 'open' "
                            "ORDER BY id"))).all()
                    for dispute_id, members in open_ones[::3]:
                        first = (json.loads(members) if isinstance(members, str)
                                 else members)[0]
                        await pipeline.commands.resolve(ADMIN, dispute_id, ResolutionRequest(
                            outcome="award", registration_id=first, note="first in"))
                        by_hand += 1
                    await pipeline.pump()
            # Close some approved deals, won (with the CRM's amount) or lost.
            async with pipeline.runtime.engine.connect() as conn:
                approved = [r for (r,) in (await conn.execute(text(
                    "SELECT id FROM registrations WHERE status = 'approved' ORDER BY id")))]
            for rid in approved[::3]:
                clock.advance(timedelta(hours=5))
                won = rng.random() < 0.6
                request: dict[str, Any] = {"registration_id": rid,
                                           "outcome": "won" if won else "lost"}
                if won and rng.random() < 0.5:
                    request["amount"] = {"value": f"{rng.randrange(500, 5000)}.00",
                                         "currency": "USD"}
                await pipeline.commands.close(
                    ADMIN, OpportunityClosedRequest.model_validate(request))
                closed["won" if won else "lost"] += 1
                await pipeline.pump()
            # Let every SLA run out (level 1 escalates, level 2 falls back).
            for _ in range(12):
                clock.advance(timedelta(hours=12))
                await pipeline.pump()
            truth = Truth()
            for topic in (pipeline.topics.intake, pipeline.topics.decisions):
                for records in (await pipeline.all_records(topic)).values():
                    for record in records:
                        truth.add(decode(record.value)[1])
            app = create_app(pipeline.settings, frozenset({"projections"}))
            keys = {"admin": "t"}
            for role, subject in (("channel_manager", None), ("partner", "p-x"),
                                  ("rep", "rep-x"), ("owner", "cm-1"),
                                  ("integration", None)):
                keys[role] = (await app.state.authenticator.mint(role, subject, role)).token
            yield World(app, truth, keys, by_hand, closed)
        finally:
            await pipeline.close()


async def get(world: World, path: str, role: str = "channel_manager",
              **params: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=world.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dealreg") as client:
        headers = {"Authorization": f"Bearer {world.keys[role]}"}
        headers.update(params.pop("headers", {}))
        return await client.get(path, params=params, headers=headers)


def expected_decisions(truth: Truth, first: date, last: date, bucket: str
                       ) -> tuple[list[dict[str, Any]], list[int]]:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    latency: dict[str, list[int]] = defaultdict(list)
    everything: list[int] = []
    for rid, sub in truth.submitted.items():
        if not inside(sub.submitted_at, first, last):
            continue
        key = bucket_of(sub.submitted_at, bucket)
        per[key][0] += 1
        decided = truth.first.get(rid)
        if decided is None:
            continue
        per[key][1] += 1
        per[key][2] += decided.rule in ("no_conflict", "non_exclusive")
        per[key][3] += bool(decided.conflicts)
        settled = truth.settled.get(rid)
        if settled is None:
            continue
        value = ms(settled.decided_at - sub.submitted_at)
        latency[key].append(value)
        everything.append(value)
    rows = []
    for label in labels(first, last, bucket):
        s, d, a, c = per.get(label, [0, 0, 0, 0])
        rows.append({"bucket": label, "submitted": s, "decided": d, "auto_approved": a,
                     "collided": c, "auto_approval_rate": rate(a, d),
                     "collision_rate": rate(c, d),
                     "p50_seconds": nearest(latency.get(label, []), 50),
                     "p90_seconds": nearest(latency.get(label, []), 90)})
    return rows, everything


def expected_disputes(truth: Truth, first: date, last: date, bucket: str
                      ) -> list[dict[str, Any]]:
    opened: Counter[str] = Counter(bucket_of(e.opened_at, bucket) for e in truth.opened.values()
                                   if inside(e.opened_at, first, last))
    resolved: Counter[str] = Counter()
    times: dict[str, list[int]] = defaultdict(list)
    for dispute_id, e in truth.resolved.items():
        if e.outcome == "merged" or not inside(e.resolved_at, first, last):
            continue
        key = bucket_of(e.resolved_at, bucket)
        resolved[key] += 1
        times[key].append(ms(e.resolved_at - truth.opened[dispute_id].opened_at))
    return [{"bucket": label, "opened": opened[label], "resolved": resolved[label],
             "p50_seconds_to_resolve": nearest(times.get(label, []), 50),
             "p90_seconds_to_resolve": nearest(times.get(label, []), 90)}
            for label in labels(first, last, bucket)]


def expected_breaches(truth: Truth, first: date, last: date, bucket: str
                      ) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, int]] = Counter(
        (bucket_of(at, bucket), level) for (_, level), at in truth.breaches.items()
        if inside(at, first, last))
    levels = sorted({level for _, level in counts})
    return [{"bucket": label, "level": level, "breaches": counts[(label, level)]}
            for label in labels(first, last, bucket) for level in levels]


def e4(value: Decimal) -> int:
    return int(value * 10000)


def money(value: int) -> str:
    places = Decimal("0.01") if value % 100 == 0 else Decimal("0.0001")
    return str((Decimal(value) / 10000).quantize(places))


def expected_pipeline(truth: Truth, first: date, last: date, by: str) -> list[dict[str, Any]]:
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for rid, sub in truth.submitted.items():
        if not inside(sub.submitted_at, first, last) or truth.status[rid] == "rejected":
            continue
        ended = truth.ended.get(rid)
        amount = (ended.amount if ended is not None and ended.amount is not None
                  else sub.opportunity.amount)
        value, currency = (e4(amount.value), amount.currency) if amount else (0, "")
        offset = 0 if sub.motion in ("resell", "co_sell") else 2
        keys = [sub.partner_id] if by == "partner" else sorted(
            set(sub.opportunity.products)) or [""]
        for key in keys:
            sums[(key, currency)][offset] += 1
            sums[(key, currency)][offset + 1] += value
    return [{by: k, "currency": c, "sourced_count": v[0], "sourced_amount": money(v[1]),
             "influenced_count": v[2], "influenced_amount": money(v[3])}
            for (k, c), v in sorted(sums.items())]


def expected_win_rates(truth: Truth, first: date, last: date) -> list[dict[str, Any]]:
    results: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for ended in truth.ended.values():
        if ended.reason in ("won", "lost") and inside(ended.ended_at, first, last):
            results[ended.party_id][0 if ended.reason == "won" else 1] += 1
    return [{"partner": p, "won": w, "lost": lo, "win_rate": rate(w, w + lo)}
            for p, (w, lo) in sorted(results.items())]


def series_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in body["series"]}


async def test_the_workload_exercises_every_series(world: World) -> None:
    truth = world.truth
    assert len(truth.submitted) == REGISTRATIONS
    assert sum(bool(d.conflicts) for d in truth.first.values()) >= 12
    assert len(truth.opened) >= 10 and world.resolved_by_hand >= 4
    # Some registrations waited in review (a tie window, a dispute) before they settled.
    waited = [ms(d.decided_at - truth.submitted[rid].submitted_at)
              for rid, d in truth.settled.items() if truth.first[rid].status == "in_review"]
    assert len(waited) >= 3 and max(waited) > 3_600_000
    assert {level for _, level in truth.breaches} == {1, 2}
    assert world.closed["won"] >= 3 and world.closed["lost"] >= 2


@pytest.mark.parametrize(("first", "last", "bucket"), [
    (FIRST_DAY, LAST_DAY, "day"),
    (FIRST_DAY + timedelta(days=3), LAST_DAY - timedelta(days=2), "week"),  # clipped weeks
    (FIRST_DAY + timedelta(days=2), FIRST_DAY + timedelta(days=6), "day"),
])
async def test_every_series_equals_a_count_from_the_events(
        world: World, first: date, last: date, bucket: str) -> None:
    response = await get(world, "/v1/program/metrics", **{
        "from": first.isoformat(), "to": last.isoformat(), "bucket": bucket})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"], body["bucket"]) == (first.isoformat(), last.isoformat(),
                                                         bucket)
    found = series_of(body)
    truth = world.truth

    rows, latencies = expected_decisions(truth, first, last, bucket)
    assert found["decisions"]["rows"] == rows
    assert sum(r["submitted"] for r in rows) > 0
    histogram = found["decision_time"]
    assert sum(r["registrations"] for r in histogram["rows"]) == len(latencies)
    for row in histogram["rows"]:
        high = math.inf if row["to_seconds"] is None else row["to_seconds"] * 1000
        assert row["registrations"] == sum(
            row["from_seconds"] * 1000 <= v < high for v in latencies), row
    assert histogram["summary"] == {"count": len(latencies),
                                    "p50_seconds": nearest(latencies, 50),
                                    "p90_seconds": nearest(latencies, 90)}
    assert found["disputes"]["rows"] == expected_disputes(truth, first, last, bucket)
    assert found["sla_breaches"]["rows"] == expected_breaches(truth, first, last, bucket)
    assert found["pipeline_by_partner"]["rows"] == expected_pipeline(truth, first, last,
                                                                     "partner")
    assert found["pipeline_by_product"]["rows"] == expected_pipeline(truth, first, last,
                                                                     "product")
    assert found["win_rates"]["rows"] == expected_win_rates(truth, first, last)


async def test_the_full_range_has_activity_in_every_series(world: World) -> None:
    found = series_of((await get(world, "/v1/program/metrics", **{
        "from": FIRST_DAY.isoformat(), "to": LAST_DAY.isoformat()})).json())
    assert found["disputes"]["summary"]["resolved"] > 0
    assert found["sla_breaches"]["summary"]["total"] > 0
    assert found["win_rates"]["summary"]["won"] > 0
    assert found["decisions"]["summary"]["collided"] > 0
    amounts = {r["currency"] for r in found["pipeline_by_partner"]["rows"]}
    assert {"USD", "EUR"} <= amounts


@pytest.mark.parametrize("name", ["decision_time", "decisions", "disputes", "sla_breaches",
                                  "pipeline_by_partner", "pipeline_by_product", "win_rates"])
async def test_each_series_downloads_as_csv_with_the_same_numbers(
        world: World, name: str) -> None:
    params = {"from": FIRST_DAY.isoformat(), "to": LAST_DAY.isoformat(), "bucket": "week"}
    as_json = (await get(world, f"/v1/program/metrics/{name}", **params)).json()
    for how in ({"format": "csv"}, {"headers": {"Accept": "text/csv"}}):
        response = await get(world, f"/v1/program/metrics/{name}", **params, **how)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert f"dealreg-{name}-" in response.headers["content-disposition"]
        table = list(csv.reader(io.StringIO(response.text)))
        assert table[0] == as_json["columns"]
        assert len(table) - 1 == len(as_json["rows"]) > 0
        for line, row in zip(table[1:], as_json["rows"], strict=True):
            assert line == ["" if row[c] is None else str(row[c]) for c in as_json["columns"]]


@pytest.mark.parametrize(("role", "status"), [
    ("admin", 200), ("channel_manager", 200), ("partner", 403), ("rep", 403),
    ("owner", 403), ("integration", 403)])
async def test_only_program_leaders_read_the_series(world: World, role: str,
                                                    status: int) -> None:
    for path in ("/v1/program/metrics", "/v1/program/metrics/win_rates"):
        response = await get(world, path, role=role)
        assert response.status_code == status, (role, path, response.text)
        if status == 403:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "rows" not in response.text


async def test_a_range_without_activity_gives_empty_series(world: World) -> None:
    response = await get(world, "/v1/program/metrics", **{
        "from": "2001-01-01", "to": "2001-01-10", "bucket": "day"})
    assert response.status_code == 200, response.text
    found = series_of(response.json())
    assert [r["submitted"] for r in found["decisions"]["rows"]] == [0] * 10
    assert {r["auto_approval_rate"] for r in found["decisions"]["rows"]} == {None}
    assert [r["opened"] for r in found["disputes"]["rows"]] == [0] * 10
    assert sum(r["registrations"] for r in found["decision_time"]["rows"]) == 0
    assert found["decision_time"]["summary"]["p50_seconds"] is None
    for name in ("sla_breaches", "pipeline_by_partner", "pipeline_by_product", "win_rates"):
        assert found[name]["rows"] == [], name
    csv_body = await get(world, "/v1/program/metrics/win_rates", format="csv",
                         **{"from": "2001-01-01", "to": "2001-01-10"})
    assert csv_body.text.strip() == "partner,won,lost,win_rate"


@pytest.mark.parametrize(("params", "status", "field"), [
    ({"from": "2026-13-01"}, 422, "from"),
    ({"from": "yesterday"}, 422, "from"),
    ({"to": "2026-02-30"}, 422, "to"),
    ({"from": "1234567890"}, 422, "from"),
    ({"from": "2026-01-05T00:00:00Z"}, 422, "from"),
    ({"from": "2026-02-01", "to": "2026-01-01"}, 422, "to"),
    ({"from": "2020-01-01", "to": "2026-01-01", "bucket": "day"}, 422, "to"),
    ({"from": "0001-01-01", "to": "0001-01-02"}, 422, "from"),
    ({"from": "9999-12-31"}, 422, "from"),
    ({"bucket": "month"}, 422, "bucket"),
    ({"format": "xml"}, 422, "format"),
])
async def test_bad_ranges_are_problems(world: World, params: dict[str, str], status: int,
                                       field: str) -> None:
    response = await get(world, "/v1/program/metrics", **params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in {e["field"] for e in response.json()["errors"]}, response.text


async def test_a_long_range_in_weeks_is_served(world: World) -> None:
    response = await get(world, "/v1/program/metrics", **{
        "from": "2020-01-01", "to": "2026-12-31", "bucket": "week"})
    assert response.status_code == 200, response.text
    rows = series_of(response.json())["decisions"]["rows"]
    assert rows[0]["bucket"] == "2019-12-30" and len(rows) == 366
    assert sum(r["submitted"] for r in rows) == REGISTRATIONS


async def test_csv_of_everything_at_once_and_unknown_series_are_problems(
        world: World) -> None:
    everything = await get(world, "/v1/program/metrics", format="csv")
    assert everything.status_code == 406
    assert "/v1/program/metrics/{series}" in everything.json()["detail"]
    unknown = await get(world, "/v1/program/metrics/nope")
    assert unknown.status_code == 404 and "win_rates" in unknown.json()["detail"]
