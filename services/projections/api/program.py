"""`GET /v1/program/metrics[/{series}]`: the program leader's series over a date range,
as JSON or CSV (channel managers and admins)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel, Field

from services.projections.adapters import program as sql
from services.projections.api.deps import read_your_writes
from services.projections.domain import program
from shared.api.auth import Principal, require
from shared.api.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(prefix="/v1/program", tags=["queries"],
                   dependencies=[Depends(read_your_writes)])

PROGRAM_LEADERS = ("channel_manager",)  # and admin, always
DEFAULT_DAYS = 30
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EARLIEST, _LATEST = date(1970, 1, 1), date(9998, 12, 31)

Cell = str | int | float | None


class SeriesView(BaseModel):
    name: str = Field(description="`decision_time`, `decisions`, `disputes`, "
                                  "`sla_breaches`, `pipeline_by_partner`, "
                                  "`pipeline_by_product` or `win_rates`")
    title: str
    columns: list[str] = Field(description="The row fields in order (the CSV header)")
    rows: list[dict[str, Cell]]
    summary: dict[str, Cell] = Field(description="Totals over the whole range")


class ProgramSeriesView(BaseModel):
    from_: date = Field(alias="from", description="First day (UTC), included")
    to: date = Field(description="Last day (UTC), included")
    bucket: Literal["day", "week"]
    series: list[SeriesView]

    model_config = {"populate_by_name": True}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    406: PROBLEM_RESPONSES[422] | {"description": "CSV asked of all series at once"},
    503: {"description": "`min_position` not reached in time"},
}

_DESCRIPTION = (
    "Buckets are whole UTC days, or ISO weeks labelled by their Monday (the first and last "
    "clipped to the range); every bucket of the range is present, zeros included. "
    "`from`/`to` are dates (`YYYY-MM-DD`, both included; default: the last 30 days); at "
    "most 400 buckets. Series: `decision_time` (histogram of the time from submission to "
    "the first decision that settled the registration, approved or rejected, `in_review` "
    "still waiting; p50/p90 in `summary`), `decisions` (per submission bucket: submitted, "
    "first-decided, auto-approved, collided, their rates, p50/p90 time to decision), "
    "`disputes` (opened, "
    "resolved, p50/p90 time to resolve), `sla_breaches` (per deadline bucket and level), "
    "`pipeline_by_partner` / `pipeline_by_product` (registrations submitted in the range "
    "but rejected ones, sourced vs influenced, count and amount per currency), `win_rates` "
    "(deals closed in the range). Channel managers and admins only."
)


def _day(name: str, raw: str | None) -> date | None:
    if raw is None:
        return None
    try:
        if not _DATE.match(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise _invalid(name, "a date YYYY-MM-DD (UTC)") from None
    if not _EARLIEST <= day <= _LATEST:
        raise _invalid(name, f"a date between {_EARLIEST} and {_LATEST}")
    return day


def _invalid(name: str, message: str) -> Problem:
    return Problem(422, "Validation failed", "The request has invalid fields.",
                   errors=[{"field": name, "message": message}])


def _period(start: str | None, end: str | None, bucket: program.Bucket) -> program.Period:
    first, last = _day("from", start), _day("to", end)
    if last is None:
        last = (first + timedelta(days=DEFAULT_DAYS - 1) if first is not None
                else datetime.now(UTC).date())
        last = min(last, _LATEST)
    if first is None:
        first = max(last - timedelta(days=DEFAULT_DAYS - 1), _EARLIEST)
    try:
        return program.period(first, last, bucket)
    except program.RangeError as exc:
        raise _invalid(exc.field, exc.message) from None


def _wants_csv(fmt: str | None, accept: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in (accept or "").lower()


def _view(series: program.Series) -> SeriesView:
    return SeriesView(name=series.name, title=series.title, columns=list(series.columns),
                      rows=series.records(), summary=series.summary)


From = Annotated[str | None, Query(alias="from", max_length=10,
                                   description="First day, `YYYY-MM-DD` (UTC), included")]
To = Annotated[str | None, Query(max_length=10,
                                 description="Last day, `YYYY-MM-DD` (UTC), included")]
BucketQuery = Annotated[Literal["day", "week"], Query(description="Bucket size")]
Format = Annotated[Literal["json", "csv"] | None, Query(
    description="`csv` for a download (same as `Accept: text/csv`)")]
Accept = Annotated[str | None, Header(max_length=500)]


@router.get("/metrics", response_model=ProgramSeriesView, responses=_RESPONSES,
            response_model_by_alias=True,
            summary="Program series over a date range (every series)",
            description=_DESCRIPTION)
async def list_program_series(
    request: Request,
    _: Annotated[Principal, Depends(require(*PROGRAM_LEADERS))],
    start: From = None, to: To = None, bucket: BucketQuery = "day",
    format: Format = None, accept: Accept = None,
) -> ProgramSeriesView:
    if _wants_csv(format, accept):
        raise Problem(406, "Not acceptable",
                      "CSV is one table: ask for one series, "
                      "/v1/program/metrics/{series}?format=csv.")
    span = _period(start, to, bucket)
    async with request.app.state.runtime.engine.connect() as conn:
        found = [await read(conn, span) for read in sql.READERS.values()]
    return ProgramSeriesView(from_=span.start, to=span.end, bucket=span.bucket,
                             series=[_view(s) for s in found])


@router.get("/metrics/{series}", response_model=SeriesView, responses={
    **_RESPONSES, 200: {"content": {"application/json": {}, "text/csv": {}},
                        "description": "The series (CSV: its columns and rows)"}},
            summary="One program series over a date range, JSON or CSV",
            description=_DESCRIPTION)
async def get_program_series(
    request: Request,
    _: Annotated[Principal, Depends(require(*PROGRAM_LEADERS))],
    series: Annotated[str, Path(max_length=40)],
    start: From = None, to: To = None, bucket: BucketQuery = "day",
    format: Format = None, accept: Accept = None,
) -> Any:
    read = sql.READERS.get(series)
    if read is None:
        raise Problem(404, "Not found",
                      f"No such series; one of {', '.join(sorted(sql.READERS))}.")
    span = _period(start, to, bucket)
    async with request.app.state.runtime.engine.connect() as conn:
        found = await read(conn, span)
    if _wants_csv(format, accept):
        filename = f"dealreg-{series}-{span.start}-{span.end}-{span.bucket}.csv"
        return Response(program.to_csv(found), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return _view(found)
