"""One settings object per process, from the environment (prefix `DEALREG_`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEALREG_", env_file=None, extra="ignore")

    backend: Literal["embedded", "distributed"] = Field(
        "embedded", description="`embedded` (SQLite files) or `distributed` (Kafka + PostgreSQL)"
    )
    data_dir: Path = Field(Path("./dealreg-data"), description="Embedded backend's files")
    host: str = Field("127.0.0.1", description="HTTP bind address")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port")
    admin_token: str | None = Field(
        None, description="Accepted as an admin bearer token; generated and printed by `dev`"
    )
    position_secret: str | None = Field(
        None, description="Key of the sealed log positions partners get (`X-Log-Position`); "
        "unset: derived from the admin token, else from the connection settings. Set the "
        "same value on every process")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka brokers")
    kafka_replication_factor: int = Field(1, description="Replication factor of new topics")
    kafka_transaction_timeout_ms: int = Field(10_000, description="Adjudicator transactions")
    kafka_session_timeout_ms: int = Field(
        30_000, ge=6_000, le=300_000, description="Consumer group session timeout: a member "
        "silent this long is dropped from its group (heartbeats every tenth of it)")
    kafka_retry_backoff_ms: int = Field(
        20, ge=1, le=1_000, description="Producers' pause before retrying a retriable broker "
        "error (aiokafka's default is 100 ms): a Kafka 4 broker answers NOT_ENOUGH_REPLICAS "
        "to a transactional produce while the same producer's previous transaction is still "
        "completing, and every such retry held the adjudicator's whole batch")
    kafka_batch_linger_ms: int = Field(
        20, ge=0, le=1_000, description="The adjudicator's pause after committing a batch "
        "that was not full, before it fetches the next: more records per partition per "
        "transaction (each input partition of a batch is one Kafka transaction, the broker's "
        "main cost per decision). 0: fetch again at once")
    kafka_batch_linger_from_records: int = Field(
        12, ge=1, le=50_000, description="The adjudicator lingers only after a batch of at "
        "least this many records (the loop falling behind its input): a smaller batch is "
        "followed by a fetch at once, so at low rates a decision does not wait for the "
        "linger. 1: after every batch that was not full")
    kafka_projections_linger_ms: int = Field(
        0, ge=0, le=1_000, description="The projections' pause after applying a big batch "
        "that was not full (`kafka_projections_linger_from_records`), before they fetch the "
        "next (distributed): more events per read-model transaction, and per NOTIFY the "
        "registration services read back. 0 (default since session 27, no measured gain at "
        "200/s): fetch again at once")
    kafka_projections_linger_from_records: int = Field(
        24, ge=1, le=50_000, description="The projections linger only after a batch of at "
        "least this many events (falling behind their input); after a smaller one they "
        "fetch again at once. 1: after every batch that was not full")
    kafka_projections_hold_ms: int = Field(
        100, ge=0, le=1_000, description="The projections hold a fetched batch of intake "
        "events with no decision in it for at most this long, fetching on until a decision "
        "arrives, then apply both in one read-model transaction (distributed): at low rates "
        "a registration and its decision were two transactions, two NOTIFYs and two read "
        "backs. A batch already holding a decision (any batch under load) is applied at "
        "once. 0: never hold")
    topic_partitions: int = Field(12, ge=1, description="Partitions of new topics")
    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/dealreg",
        description="Read-model store (distributed backend)",
    )
    embedded_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL", description="SQLite fsync level of the embedded log (FULL: durable on 2xx)"
    )
    embedded_linger_ms: float = Field(
        5.0, ge=0, le=1000, description="How long a consumer of the embedded log (adjudicator, "
        "projections) waits for more records once some arrived, unless a full batch is there: "
        "under load a batch then carries several registrations instead of one, each batch's "
        "fixed cost is shared (Kafka's fetch.max.wait). 0: read at once")
    embedded_projections_hold_ms: int = Field(
        100, ge=0, le=1_000, description="`kafka_projections_hold_ms` for the embedded log "
        "(`dealreg dev`): the projections hold a fetched batch of intake events with no "
        "decision in it for at most this long, until its decision arrives, and apply both "
        "in one read-model transaction (one SQLite write turn, one hand-over to the waiting "
        "requests and the re-reporter instead of two per registration at low rates). "
        "0: never hold")
    log_level: str = Field("INFO", description="Log level")
    log_format: Literal["json", "console"] | None = Field(
        None, description="Log renderer: `json` (one object per line) or `console` (for a "
        "person); unset: `console` under `dev`, `json` under `serve`")
    topic_prefix: str = Field(
        "dealreg", description="Topic names: <prefix>.intake, <prefix>.decisions"
    )
    source: str = Field("urn:dealreg", description="CloudEvents `source` of events we write")
    adjudicator_group: str = Field("dealreg-adjudicator", description="Consumer group")
    projections_group: str = Field("dealreg-projections", description="Consumer group")
    snapshot_every_events: int = Field(
        20_000, ge=0, description="The adjudicator snapshots a partition's state after this "
        "many events (0: never; recovery then replays the whole history)")
    adjudicator_max_records: int = Field(
        5_000, ge=1, le=50_000, description="Records the adjudicator decides per batch (one "
        "transaction per partition of the batch; at most 50,000: a batch is one transaction "
        "per partition, which must end within DEALREG_KAFKA_TRANSACTION_TIMEOUT_MS)")
    snapshot_every_seconds: float = Field(
        60.0, gt=0, description="... or after this many seconds with events, whichever first")
    max_wait_seconds: float = Field(30.0, description="Upper bound for `Prefer: wait=N`")
    connect_timeout_seconds: float = Field(
        10.0, gt=0, description="How long a command waits for Kafka or PostgreSQL to answer "
        "at start before it exits naming the unreachable one")
    seed_default_owners: bool | None = Field(
        None, description="Create the escalation owners the policy names (`cm-1`, `dir-1` "
        "in the default policy) when missing; unset: `dev` does, `serve` only warns")
    # --- registration service (commands, reference data, auth) -------------------------
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest accepted request body (413 above it)"
    )
    idempotency_ttl_seconds: float = Field(
        86_400.0, gt=0, description="How long an `Idempotency-Key` is remembered"
    )
    idempotency_lease_seconds: float = Field(
        60.0, gt=0,
        description="A running request renews its key's lease every third of this; a lease "
        "not renewed this long is taken as abandoned (crash)",
    )
    re_report_recheck_seconds: float = Field(
        10.0, gt=0,
        description="How often the post-decision re-reporter re-reads its pending "
        "registrations and claims (a lost notification) and renews its leases",
    )
    re_report_lease_seconds: float = Field(
        60.0, gt=0,
        description="A pending re-report whose process has not renewed it this long (a "
        "crash) is taken over by another registration process, or by it once restarted",
    )
    re_report_orphan_seconds: float = Field(
        86_400.0, gt=0,
        description="A pending re-report whose registration or claim is not in the read "
        "model after this long is dropped (its append failed), once the projections have "
        "applied a registration or claim filed this long after it",
    )
    api_key_cache_seconds: float = Field(
        30.0, ge=0, description="How long a verified API key is trusted from memory"
    )
    reference_cache_seconds: float = Field(
        1.0, ge=0, description="How long the current policy and partner snapshots are cached"
    )
    unknown_partners: Literal["accept", "reject"] = Field(
        "accept",
        description="A registration for a partner never PUT: `accept` (stamped as an active "
        "registered-tier reseller) or `reject` (422)",
    )
    directory_rewarm_seconds: float = Field(
        600.0, gt=0, description="How often the in-memory account index is rebuilt"
    )
    max_batch_events: int = Field(
        1000, ge=1, description="Most CloudEvents accepted in one batch request"
    )
    # --- capacity and backpressure ------------------------------------------------------
    max_in_flight_requests: int = Field(
        256, ge=0, description="Requests one process handles at once; the next is answered "
        "503 with `Retry-After` at the door (0 disables). Waiting requests (`Prefer: wait`) "
        "count, but hold no database connection")
    overload_retry_after_seconds: int = Field(
        1, ge=1, description="`Retry-After` of a 503 from an overloaded process")
    db_pool_size: int = Field(
        20, ge=1, description="Read-model store connections kept per process (the workers "
        "of a process take at most two at a time; requests take one briefly), opened as "
        "needed and then kept")
    db_pool_max_overflow: int = Field(
        0, ge=0, description="Extra connections a process may open above the pool size, "
        "each closed again when returned: under load that is a new PostgreSQL server "
        "process (fork, authentication, catalog caches, statements prepared again) per "
        "burst -- 0.15-0.19 new sessions per decided registration at 100/s on an "
        "overloaded machine with 10 + 10, their CPU doubling PostgreSQL's per decision")
    db_pool_timeout_seconds: float = Field(
        5.0, gt=0, description="How long a request waits for a pooled connection before it "
        "is answered 503 with `Retry-After`")
    # --- abuse limits and operations endpoints -------------------------------------------
    rate_limit_per_second: float = Field(
        100.0, ge=0, description="Requests per second each API key may make to one process "
        "(token bucket; 0 disables). The admin token is not limited")
    rate_limit_burst: int = Field(
        200, ge=1, description="Requests an idle API key may make at once (bucket size)")
    auth_failure_limit_per_second: float = Field(
        10.0, ge=0, description="Failed authentications per second per client address "
        "before they are answered 429 instead of 401 (0 disables)")
    auth_failure_burst: int = Field(
        100, ge=1, description="Failed authentications a client address may make at once")
    forwarded_allow_ips: str = Field(
        "127.0.0.1,::1", description="Addresses or networks (comma-separated) of the proxies "
        "whose `X-Forwarded-For`/`-Proto` an HTTP process believes: the gateway's and the "
        "ingress's. The client address (which keys the failed-authentication limit) is the "
        "right-most one no trusted proxy added; a request from any other peer is keyed by "
        "that peer, whatever it sends. Never `*` in production (a client would choose its "
        "address)")
    ops_token: str | None = Field(
        None, description="Bearer token for `/metrics` and the detail of `/readyz` (the "
        "admin token and admin API keys are accepted too)")
    ops_token_required: bool | None = Field(
        None, description="Whether `/metrics` and `/readyz` detail need a token; unset: "
        "`dev` leaves them open, `serve` (and any other app) requires it")

    # --- console (the web UI under /console) ---------------------------------------------
    session_secret: str | None = Field(
        None, description="Key of the console's session cookies; unset: a random key per "
        "process, so sign-ins end when the process restarts and are not shared by replicas")
    session_max_age_seconds: int = Field(
        8 * 3600, ge=60, description="How long a console sign-in lasts")
    session_cookie_secure: bool | None = Field(
        None, description="Mark the session cookie `Secure`; unset: when the request came "
        "over https (set `true` behind a proxy that terminates TLS)")
    console_api_url: str | None = Field(
        None, description="Where the console sends its /v1 calls (the one front door of a "
        "distributed deployment); unset: the same process, in memory")

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("database_url")
    @classmethod
    def _postgresql(cls, value: str) -> str:
        """`postgresql://` (what people paste) means the async driver dealreg uses; any
        other scheme would fail deep inside SQLAlchemy. The value is never echoed (it
        holds the password)."""
        scheme, sep, rest = value.partition("://")
        if sep and scheme in ("postgresql", "postgres"):
            return f"postgresql+asyncpg://{rest}"
        if not sep or scheme != "postgresql+asyncpg":
            raise ValueError("must be a PostgreSQL URL, "
                             "postgresql+asyncpg://user:password@host:port/database")
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _brokers(cls, value: str) -> str:
        """host[:port][,host[:port]...] (port 9092 when left out): a typo would otherwise
        surface as "cannot reach Kafka" (a configuration mistake reported as an outage)."""
        for broker in value.split(","):
            host, colon, port = broker.strip().rpartition(":")
            if not colon:
                host, port = port, "9092"
            if not host or not port.isdigit() or not 0 < int(port) < 65536 \
                    or any(c.isspace() for c in host):
                raise ValueError(f"{broker.strip()!r} is not host[:port] (brokers are "
                                 "host:port separated by commas, e.g. kafka1:9092,kafka2:9092)")
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError: refused at start
        return value

    @property
    def embedded_log_path(self) -> Path:
        return self.data_dir / "eventlog.sqlite3"

    @property
    def embedded_readmodel_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.data_dir / 'readmodel.sqlite3'}"

    @property
    def readmodel_url(self) -> str:
        return self.embedded_readmodel_url if self.backend == "embedded" else self.database_url

    # --- notifications (delivery worker, runs with the projections) ----------------------
    notification_schedule_seconds: list[float] = Field(
        [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400], min_length=1,
        description="Delay before each delivery attempt (Standard Webhooks guidance); after "
        "the last one fails the delivery is dead-lettered",
    )
    notification_jitter: float = Field(
        0.1, ge=0, le=1, description="Each retry delay is scaled by 1 ± this (random)")
    notification_timeout_seconds: float = Field(
        15.0, gt=0, description="Webhook request / SMTP timeout")
    notification_max_age_seconds: float = Field(
        86_400.0,
        description="A delivery for an event older than this, never attempted, is not sent "
        "(status `stale`): a read model rebuilt from an old log must not replay history",
    )
    notification_lease_seconds: float = Field(
        60.0, gt=0, description="A claimed delivery not finished after this long (a crashed "
        "sender) is retried")
    notification_poll_seconds: float = Field(
        5.0, gt=0, description="The longest the idle delivery worker sleeps before it looks "
        "for due deliveries again (deliveries queued by another process); it wakes at once "
        "for deliveries its own process queues and at the next one's due time")
    notification_coalesce_seconds: float = Field(
        0.05, ge=0, le=5, description="How long the delivery worker, woken (its projection "
        "worker queued deliveries, a delivery finished), waits before it claims: the "
        "deliveries of the batches committed meanwhile are claimed together, one claim "
        "instead of one per batch (0: at once). Deliveries only, never a decision")
    notification_endpoint_concurrency: int = Field(
        4, ge=1, description="Concurrent deliveries per endpoint (URL origin or SMTP)")
    notification_max_in_flight: int = Field(
        64, ge=1, description="Concurrent deliveries per delivery worker")
    webhook_allowed_networks: list[str] = Field(
        [], description="Private / loopback networks (CIDR) webhooks may target; link-local "
        "and cloud metadata addresses are always refused")
    webhook_allow_loopback: bool = Field(
        False, description="Webhooks may target loopback addresses (127.0.0.0/8, ::1, "
        "localhost); `dealreg dev` turns it on unless set, `serve` keeps it off")
    smtp_host: str | None = Field(None, description="SMTP server; unset: e-mail disabled")
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        "none", description="`tls`: implicit TLS (465); `starttls`: upgrade (587)")
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = Field("dealreg@localhost", description="Sender of notification e-mail")
    webhook_secret_grace_seconds: float = Field(
        86_400.0, ge=0, description="After `rotate_secret`, how long the previous webhook "
        "secret keeps signing deliveries (next to the new one)")
    # --- observability: worker supervision, readiness, tracing ---------------------------
    worker_backoff_initial_seconds: float = Field(
        0.5, gt=0, description="Back-off before restarting a worker after its first crash "
        "(doubled for each further crash in a row, with jitter)")
    worker_backoff_max_seconds: float = Field(
        60.0, gt=0, description="Longest back-off between two restarts of a worker")
    worker_healthy_seconds: float = Field(
        60.0, gt=0, description="A worker that ran this long is healthy again (its back-off "
        "restarts from the beginning); also the window in which crashes are counted")
    worker_crash_limit: int = Field(
        3, ge=1, description="Crashes of one worker within `DEALREG_WORKER_HEALTHY_SECONDS` "
        "that make `/readyz` fail (crash-looping)")
    shutdown_timeout_seconds: float = Field(
        30.0, gt=0, description="How long stopping a process may take after its HTTP "
        "connections are drained: workers stop (at most a third of it), then the event log "
        "flushes and the files and pools close. Past it (a wedged disk, a broker that does "
        "not answer) the process logs `shutdown_incomplete` with what was not flushed and "
        "exits 1 without waiting further")
    readiness_timeout_seconds: float = Field(
        2.0, gt=0, description="Time limit of each dependency check (event log, database) "
        "of `/readyz` and of each gauge measured for `/metrics`")
    readiness_cache_seconds: float = Field(
        2.0, ge=0, description="How long a dependency check's result is reused")
    otel: Literal["off", "console", "otlp"] | None = Field(
        None, description="OpenTelemetry spans: `console` (printed), `otlp` (to "
        "`OTEL_EXPORTER_OTLP_ENDPOINT`), `off`; unset: `otlp` when that variable is set, "
        "else off. Needs the `otel` extra")

