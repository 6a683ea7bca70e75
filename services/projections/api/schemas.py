"""Response shapes of the query API beyond the shared resources (`shared.api.resources`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.api.resources import DisputeView, RegistrationView


class RegistrationPage(BaseModel):
    items: list[RegistrationView]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page")


class DisputePage(BaseModel):
    items: list[DisputeView]
    next_cursor: str | None = None


class TimelineEntry(BaseModel):
    at: datetime = Field(description="When it happened (the event's own time)")
    type: str = Field(description="The CloudEvents type, e.g. dealreg.registration.decided.v1")
    event_id: str
    subject_id: str = Field(description="The registration, claim or dispute it is filed under")
    data: dict[str, Any] = Field(description="The event's data (empty fields left out)")


class TimelineView(BaseModel):
    id: str
    entries: list[TimelineEntry]

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "reg_01jd2x",
        "entries": [
            {"at": "2027-01-06T09:00:00Z", "type": "dealreg.registration.submitted.v1",
             "event_id": "evt_01jd2x", "subject_id": "reg_01jd2x",
             "data": {"partner_id": "p-1", "account_key": "dom:acme.com", "motion": "resell"}},
            {"at": "2027-01-06T09:00:00Z", "type": "dealreg.registration.decided.v1",
             "event_id": "evt_01jd2x.d0", "subject_id": "reg_01jd2x",
             "data": {"status": "approved", "rule": "no_conflict", "policy_version": 1}},
        ],
    }]})


class Money(BaseModel):
    currency: str = Field(description="ISO 4217; empty for deals registered without amount")
    value: Decimal


class PipelineBucket(BaseModel):
    count: int
    amounts: list[Money]


class PipelineGroup(BaseModel):
    key: str = Field(description="The partner id, stage (status), product or motion")
    count: int
    amounts: list[Money]
    sourced: PipelineBucket = Field(description="Partner-sourced: resell, co_sell")
    influenced: PipelineBucket = Field(description="Partner-influenced: referral, influence")


class PipelineView(BaseModel):
    group_by: Literal["partner", "stage", "product", "motion"]
    groups: list[PipelineGroup]
    total: PipelineGroup

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "group_by": "stage",
        "groups": [{"key": "approved", "count": 2,
                    "amounts": [{"currency": "USD", "value": "240000.00"}],
                    "sourced": {"count": 1, "amounts": [{"currency": "USD",
                                                         "value": "120000.00"}]},
                    "influenced": {"count": 1, "amounts": [{"currency": "USD",
                                                            "value": "120000.00"}]}}],
        "total": {"key": "total", "count": 2,
                  "amounts": [{"currency": "USD", "value": "240000.00"}],
                  "sourced": {"count": 1, "amounts": [{"currency": "USD",
                                                       "value": "120000.00"}]},
                  "influenced": {"count": 1, "amounts": [{"currency": "USD",
                                                          "value": "120000.00"}]}},
    }]})


class Quantiles(BaseModel):
    count: int = Field(description="How many values the quantiles are taken over")
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None


class RegistrationMetrics(BaseModel):
    submitted: int
    decided: int
    auto_approved: int = Field(description="First decision approved without a person "
                                           "(no_conflict, non_exclusive)")
    auto_approval_rate: float | None
    collided: int = Field(description="First decision weighed at least one conflicting "
                                      "registration or claim")
    collision_rate: float | None
    decision_latency_seconds: Quantiles = Field(
        description="Submitted -> first decision, nearest-rank p50/p95/p99")


class BreachCount(BaseModel):
    level: int
    outcome: Literal["escalated", "kept_open", "fallback"]
    count: int


class DisputeMetrics(BaseModel):
    opened: int
    resolved: int = Field(description="Settled (merged disputes are counted apart)")
    merged: int
    open: int = Field(description="Open now, whatever the window")
    time_to_resolve_seconds: Quantiles = Field(description="Opened -> resolved, p50/p90")
    sla_breaches: list[BreachCount] = Field(
        description="Level deadlines passed, by level and what followed")


class PartnerResults(BaseModel):
    partner_id: str
    won: int
    lost: int
    win_rate: float | None = Field(description="won / (won + lost)")
    sourced_won: list[Money] = Field(
        description="Won amount of partner-sourced deals (resell, co_sell), per currency")
    influenced_won: list[Money]


class ProgramMetricsView(BaseModel):
    since: datetime | None
    until: datetime | None
    registrations: RegistrationMetrics
    disputes: DisputeMetrics
    partners: list[PartnerResults]

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "since": None, "until": None,
        "registrations": {"submitted": 120, "decided": 118, "auto_approved": 97,
                          "auto_approval_rate": 0.822, "collided": 21,
                          "collision_rate": 0.178,
                          "decision_latency_seconds": {"count": 118, "p50": 0.012,
                                                       "p95": 0.045, "p99": 0.09}},
        "disputes": {"opened": 9, "resolved": 7, "merged": 1, "open": 1,
                     "time_to_resolve_seconds": {"count": 7, "p50": 86400.0,
                                                 "p90": 190000.0},
                     "sla_breaches": [{"level": 1, "outcome": "escalated", "count": 2}]},
        "partners": [{"partner_id": "p-1", "won": 3, "lost": 1, "win_rate": 0.75,
                      "sourced_won": [{"currency": "USD", "value": "360000.00"}],
                      "influenced_won": []}],
    }]})
