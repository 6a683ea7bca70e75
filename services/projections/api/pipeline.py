"""`GET /v1/pipeline` and `GET /v1/metrics/program`: the numbers of the program."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from services.projections.adapters import queries
from services.projections.api.deps import read_your_writes, viewer
from services.projections.api.schemas import (
    BreachCount,
    DisputeMetrics,
    Money,
    PartnerResults,
    PipelineBucket,
    PipelineGroup,
    PipelineView,
    ProgramMetricsView,
    Quantiles,
    RegistrationMetrics,
)
from services.projections.domain.registrations import from_e4, sourced
from shared.api import partner_view
from shared.api.auth import Principal, require
from shared.api.partner_view import Viewer
from shared.api.problems import PROBLEM_RESPONSES, Problem
from shared.events.registration import Motion, RegistrationStatus
from shared.inputs import Instant

router = APIRouter(prefix="/v1", tags=["queries"], dependencies=[Depends(read_your_writes)])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES, 503: {"description": "`min_position` not reached in time"}}


class _Sum:
    def __init__(self) -> None:
        self.count = 0
        self.amounts: dict[str, int] = defaultdict(int)

    def add(self, count: int, currency: str, amount: int) -> None:
        self.count += count
        if amount or currency:
            self.amounts[currency] += amount

    def money(self) -> list[Money]:
        return [Money(currency=c, value=from_e4(v)) for c, v in sorted(self.amounts.items())]

    def bucket(self) -> PipelineBucket:
        return PipelineBucket(count=self.count, amounts=self.money())


class _Group:
    def __init__(self) -> None:
        self.all, self.sourced, self.influenced = _Sum(), _Sum(), _Sum()

    def add(self, motion: str, currency: str, count: int, amount: int) -> None:
        self.all.add(count, currency, amount)
        (self.sourced if sourced(motion) else self.influenced).add(count, currency, amount)

    def view(self, key: str) -> PipelineGroup:
        return PipelineGroup(key=key, count=self.all.count, amounts=self.all.money(),
                             sourced=self.sourced.bucket(), influenced=self.influenced.bucket())


@router.get(
    "/pipeline", response_model=PipelineView, responses=_RESPONSES,
    summary="Pipeline: counts and amounts per currency, sourced vs influenced",
    description=(
        "Groups registrations by `partner`, `stage` (the registration status), `product` or "
        "`motion`, with counts and amounts per currency, split into partner-sourced "
        "(resell, co_sell) and partner-influenced (referral, influence). The amount is the "
        "CRM's closed amount when known, else the registered one. A deal naming several "
        "products counts in full under each. Filter by `status` (e.g. "
        "`status=submitted&status=in_review&status=approved` for the open pipeline). A "
        "partner sees only its own pipeline."
    ),
)
async def read_pipeline(
    request: Request,
    who: Annotated[Viewer, Depends(viewer)],
    group_by: Annotated[Literal["partner", "stage", "product", "motion"], Query()],
    partner_id: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[list[RegistrationStatus] | None, Query()] = None,
    motion: Annotated[list[Motion] | None, Query()] = None,
) -> PipelineView:
    if who.restricted:
        if partner_id is not None and partner_id != who.subject_id:
            raise Problem(403, "Forbidden", "A partner sees only its own pipeline.")
        partner_id = who.subject_id
    async with request.app.state.runtime.engine.connect() as conn:
        rows = await queries.pipeline(conn, group_by, partner_id=partner_id,
                                      statuses=status or [], motions=motion or [])
    groups: dict[str, _Group] = defaultdict(_Group)
    total = _Group()
    for key, row_motion, currency, count, amount in rows:
        groups[key].add(row_motion, currency, count, amount)
        if group_by != "product":
            total.add(row_motion, currency, count, amount)
    if group_by == "product":
        # Product groups overlap (multi-product deals); the total counts each deal once.
        async with request.app.state.runtime.engine.connect() as conn:
            for _, row_motion, currency, count, amount in await queries.pipeline(
                    conn, "motion", partner_id=partner_id, statuses=status or [],
                    motions=motion or []):
                total.add(row_motion, currency, count, amount)
    view = PipelineView(group_by=group_by,
                        groups=[groups[k].view(k) for k in sorted(groups)],
                        total=total.view("total"))
    return PipelineView.model_validate(partner_view.pipeline(view.model_dump(), who))


PROGRAM_READERS = ("integration", "channel_manager", "owner")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(count: int, values: dict[float, int | None]) -> Quantiles:
    def s(p: float) -> float | None:
        v = values.get(p)
        return None if v is None else v / 1000.0
    return Quantiles(count=count, p50=s(0.5), p90=s(0.9), p95=s(0.95), p99=s(0.99))


@router.get(
    "/metrics/program", response_model=ProgramMetricsView, responses=_RESPONSES,
    summary="Program metrics: decisions, collisions, disputes, SLAs, partner results",
    description=(
        "Registration figures count registrations submitted in [`since`, `until`); "
        "disputes opened / resolved count by their opening / resolution time; breaches by "
        "the deadline that passed; partner results by when the deal closed. Without a "
        "window, all time. Quantiles are exact (nearest rank)."
    ),
)
async def program_metrics(
    request: Request,
    _: Annotated[Principal, Depends(require(*PROGRAM_READERS))],
    since: Annotated[Instant | None, Query(description="Window start (inclusive)")] = None,
    until: Annotated[Instant | None, Query(description="Window end (exclusive)")] = None,
) -> ProgramMetricsView:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise Problem(422, "Validation failed", "The request has invalid fields.",
                          errors=[{"field": name, "message": "give a time zone offset"}])
    async with request.app.state.runtime.engine.connect() as conn:
        counts, (latency_n, latency) = await queries.registration_metrics(conn, since, until)
        dispute_counts, (resolve_n, resolve), breaches = await queries.dispute_metrics(
            conn, since, until)
        results = await queries.partner_results(conn, since, until)
    partners: dict[str, dict[str, Any]] = {}
    for partner, result_status, row_motion, currency, count, amount in results:
        entry = partners.setdefault(partner, {"won": 0, "lost": 0, "sourced": _Sum(),
                                              "influenced": _Sum()})
        entry[result_status] += count
        if result_status == "won":
            entry["sourced" if sourced(row_motion) else "influenced"].add(count, currency,
                                                                         amount)
    return ProgramMetricsView(
        since=since, until=until,
        registrations=RegistrationMetrics(
            **counts,
            auto_approval_rate=_rate(counts["auto_approved"], counts["decided"]),
            collision_rate=_rate(counts["collided"], counts["decided"]),
            decision_latency_seconds=_seconds(latency_n, latency),
        ),
        disputes=DisputeMetrics(
            **dispute_counts,
            time_to_resolve_seconds=_seconds(resolve_n, resolve),
            sla_breaches=[
                BreachCount.model_validate({"level": level, "outcome": outcome, "count": n})
                for level, outcome, n in breaches],
        ),
        partners=[
            PartnerResults(partner_id=p, won=e["won"], lost=e["lost"],
                           win_rate=_rate(e["won"], e["won"] + e["lost"]),
                           sourced_won=e["sourced"].money(),
                           influenced_won=e["influenced"].money())
            for p, e in sorted(partners.items())
        ],
    )
