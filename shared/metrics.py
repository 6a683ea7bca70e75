"""The operations metrics of every process, in one place (Prometheus, served on `/metrics`).

Counters and histograms are updated where things happen (a request finished, a decision
was written, a delivery attempt ended, a worker restarted); gauges that describe stored
state (adjudicator lag, outbox depth, dependency health) are measured when `/metrics` is
scraped (`dealreg.runtime.Runtime.measure`), time-bounded and cached briefly. The
projection metrics live with the projection worker (`services/projections/adapters/lag.py`)
and the adjudicator's own counters with it (`services/adjudication/worker.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Final

from prometheus_client import Counter, Gauge, Histogram

# --- HTTP ----------------------------------------------------------------------------------

HTTP_REQUESTS: Final = Counter(
    "dealreg_http_requests_total",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"])
HTTP_DURATION: Final = Histogram(
    "dealreg_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by method and route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

# --- adjudicator ---------------------------------------------------------------------------

ADJUDICATOR_LAG: Final = Gauge(
    "dealreg_adjudicator_lag_records",
    "Intake offsets not decided yet (end - committed), per partition this adjudicator "
    "replica is assigned (the group's lag is the sum over replicas)",
    ["partition"])
DECISIONS_BY_RULE: Final = Counter(
    "dealreg_adjudicator_decisions_by_rule_total",
    "Decision events written, by event type and the rule that fired",
    ["type", "rule"])

# --- notifications -------------------------------------------------------------------------

OUTBOX: Final = Gauge(
    "dealreg_notification_outbox",
    "Deliveries in the notification outbox by status (`pending` is the outbox depth, "
    "`dead` the dead letters)",
    ["status"])
OUTBOX_STATUSES: Final = ("pending", "delivered", "dead", "disabled", "stale")
DELIVERY_ATTEMPTS: Final = Counter(
    "dealreg_notification_attempts_total",
    "Delivery attempts by channel and outcome (delivered, failed, dead, disabled, stale)",
    ["channel", "outcome"])
DEAD_LETTERS: Final = Counter(
    "dealreg_notification_dead_letters_total",
    "Deliveries that failed their last scheduled attempt (status `dead`), by channel",
    ["channel"])

POISON_RECORDS: Final = Counter(
    "dealreg_poison_records_total",
    "Log records a consumer could not decode and wrote to the dead-letter topic, by "
    "consumer (adjudicator, projections) and origin topic",
    ["consumer", "topic"])

# --- workers and dependencies --------------------------------------------------------------

WORKER_RESTARTS: Final = Counter(
    "dealreg_worker_restarts_total", "Times a background worker crashed and was restarted",
    ["worker"])
WORKER_UP: Final = Gauge(
    "dealreg_worker_up", "1 while a background worker runs, 0 while it waits to restart",
    ["worker"])
WORKER_BACKOFF: Final = Gauge(
    "dealreg_worker_backoff_seconds", "The back-off before a crashed worker's next start",
    ["worker"])
SQLITE_BUSY_RETRIES: Final = Counter(
    "dealreg_sqlite_busy_retries_total",
    "Units of work (a projection batch, a delivery claim, an embedded-log commit) retried "
    "because another connection held the SQLite write lock past the busy timeout",
    ["work"])
DEPENDENCY_UP: Final = Gauge(
    "dealreg_dependency_up",
    "1 if the last readiness check reached the dependency (eventlog, database), else 0",
    ["dependency"])


# The method label: a client chooses the method, so anything else is `OTHER` (bounded).
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in HTTP_METHODS else "OTHER"
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


def decision_labels(decision: object) -> tuple[str, str]:
    """A decision event's labels: its type (without the `dealreg.` prefix and version) and
    its rule ("-" for events without one)."""
    kind = _kind_label(str(getattr(decision, "TYPE", type(decision).__name__)))
    rule = getattr(decision, "rule", None)
    return kind, str(rule) if rule else "-"


@functools.lru_cache(maxsize=256)
def _kind_label(type_name: str) -> str:
    """A type's label, once per type (the adjudicator labels every decision it writes)."""
    return type_name.removeprefix("dealreg.").rsplit(".v", 1)[0]


def count_decisions(decisions: Iterable[object]) -> None:
    """Count decision events by type and rule (`decision_labels`)."""
    for decision in decisions:
        DECISIONS_BY_RULE.labels(*decision_labels(decision)).inc()


def count_decision_labels(counts: Mapping[tuple[str, str], int]) -> None:
    """Add counts already summed by `decision_labels` (one increment per label pair: the
    adjudicator counts a batch at a time)."""
    for labels, n in counts.items():
        DECISIONS_BY_RULE.labels(*labels).inc(n)


def delivery_outcome(channel: str, outcome: str) -> None:
    DELIVERY_ATTEMPTS.labels(channel, outcome).inc()
    if outcome == "dead":
        DEAD_LETTERS.labels(channel).inc()


def set_outbox(counts: Mapping[str, int]) -> None:
    for status in (*OUTBOX_STATUSES, *counts):
        OUTBOX.labels(status).set(counts.get(status, 0))


_LAG_REPORTED: set[str] = set()


def set_adjudicator_lag(lag: Mapping[int, int]) -> None:
    """This replica's lag, per partition it holds; a partition it no longer holds is
    no longer reported (its new holder reports it)."""
    labels = {str(partition) for partition in lag}
    for gone in _LAG_REPORTED - labels:
        ADJUDICATOR_LAG.remove(gone)
    for partition, records in lag.items():
        ADJUDICATOR_LAG.labels(str(partition)).set(records)
    _LAG_REPORTED.clear()
    _LAG_REPORTED.update(labels)
