"""`dealreg`: run the service (embedded or distributed) and operate it."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import uvicorn
from rich.console import Console

from dealreg.runtime import Component
from shared.logging import configure_logging
from shared.settings import Settings

app = typer.Typer(help="Deal registration and channel-conflict resolution.",
                  no_args_is_help=True, add_completion=False)
topics_app = typer.Typer(help="Kafka topic provisioning.", no_args_is_help=True)
db_app = typer.Typer(help="Read-model store schema.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
console = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]


def _serve_http(settings: Settings, components: frozenset[Component]) -> None:
    from dealreg.app import create_app

    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(create_app(settings, components), **server_options(settings))


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's settings for every dealreg process (the bench's bare-endpoint ceiling runs
    with the same ones)."""
    return {"host": settings.host, "port": settings.port, "loop": "uvloop",
            "http": "httptools", "access_log": False, "log_config": None,
            # Above the app's own in-flight limit, which answers 503 with Retry-After first.
            "limit_concurrency": max(2000, 2 * settings.max_in_flight_requests + 100),
            "timeout_graceful_shutdown": 10}


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="Bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8080,
    data_dir: Annotated[Path, typer.Option(help="Where the embedded log and read models live")]
    = Path("./dealreg-data"),
) -> None:
    """Run every service in one process on the embedded backend (SQLite files)."""
    settings = _settings(backend="embedded", host=host, port=port, data_dir=data_dir)
    if settings.admin_token is None:
        settings.admin_token = "drk_admin_" + secrets.token_urlsafe(32)
        console.print(f"[bold]Admin token (shown once):[/bold] {settings.admin_token}")
    if "webhook_allow_loopback" not in settings.model_fields_set:
        settings.webhook_allow_loopback = True  # a first look points webhooks at localhost
    console.print("Webhooks may target loopback addresses: "
                  f"{'yes' if settings.webhook_allow_loopback else 'no'} "
                  "(DEALREG_WEBHOOK_ALLOW_LOOPBACK; `serve` refuses them by default)")
    console.print(f"dealreg dev on http://{host}:{port}  (API docs: http://{host}:{port}/docs, "
                  f"data: {data_dir.resolve()})")
    if settings.ops_token_required is None:
        # A first look should see /metrics and /readyz detail; `serve` requires a token.
        settings.ops_token_required = False
        console.print("/metrics and /readyz detail are open (DEALREG_OPS_TOKEN_REQUIRED=true "
                      "protects them)")
    _serve_http(settings, frozenset({"registration", "adjudication", "projections"}))


@app.command()
def serve(
    service: Annotated[Literal["registration", "adjudication", "projections"],
                       typer.Argument(help="Which service this process runs")],
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
) -> None:
    """Run one service against Kafka and PostgreSQL (settings from DEALREG_* variables)."""
    settings = _settings(backend="distributed", host=host, port=port)
    _serve_http(settings, frozenset({service}))


@topics_app.command("create")
def topics_create(
    partitions: Annotated[int | None, typer.Option(help="Partitions of new topics")] = None,
) -> None:
    """Create the intake and decisions topics on Kafka (existing topics are kept)."""
    from dealreg.runtime import build_eventlog
    from shared.eventlog.topics import Topics

    settings = _settings(backend="distributed", topic_partitions=partitions)

    async def run() -> None:
        log = build_eventlog(settings)
        await log.start()
        try:
            specs = Topics.named(settings.topic_prefix).specs(settings.topic_partitions)
            await log.create_topics(specs)
            for spec in specs:
                console.print(f"{spec.name}: {await log.partitions(spec.name)} partitions")
        finally:
            await log.close()

    _run(run())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the read-model store to the newest schema."""
    from shared.readmodel.store import create_engine, migrate

    settings = _settings()

    async def run() -> None:
        engine = create_engine(settings.readmodel_url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()
        console.print(f"read-model schema is current ({settings.backend})")

    _run(run())


def _run(coro: object) -> None:
    try:
        asyncio.run(coro)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except (OSError, KeyError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


# --- projections ------------------------------------------------------------------------

projections_app = typer.Typer(help="Read models: rebuild from the log.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")


@projections_app.command("rebuild")
def projections_rebuild(
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="A read model to rebuild (repeatable): registrations, ownership, "
                        "directory, disputes, timelines. Default: all.")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="The embedded backend's data directory")] = None,
    batch: Annotated[int, typer.Option(min=100, help="Records per transaction")] = 20_000,
) -> None:
    """Empty read models and replay the log from the beginning into them.

    Stop the projection workers of this store first (`dealreg dev` holds the embedded data
    directory's lock, so it must be stopped anyway)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from dealreg.runtime import build_eventlog
    from services.projections.adapters.rebuild import log_size, rebuild
    from services.projections.domain.batch import MODELS
    from shared.eventlog.topics import Topics
    from shared.readmodel.store import create_engine, migrate

    models = tuple(dict.fromkeys(model or MODELS))
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise typer.BadParameter(f"unknown read model {unknown[0]!r}; one of "
                                 f"{', '.join(MODELS)}", param_hint="--model")
    settings = _settings(data_dir=data_dir)

    async def run() -> None:
        eventlog = build_eventlog(settings)
        await eventlog.start()
        engine = create_engine(settings.readmodel_url)
        try:
            await migrate(engine)
            topics = Topics.named(settings.topic_prefix)
            ends = await log_size(eventlog, topics)
            with Progress(TextColumn("[bold]replaying[/bold] {task.description}"), BarColumn(),
                          MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
                task = bar.add_task(", ".join(models), total=sum(ends.values()) or 1, rate="")
                started = asyncio.get_running_loop().time()

                def advance(n: int) -> None:
                    bar.advance(task, n)
                    elapsed = asyncio.get_running_loop().time() - started
                    done = bar.tasks[0].completed
                    bar.update(task, rate=f"{done / elapsed:,.0f} events/s" if elapsed else "")

                result = await rebuild(eventlog, engine, topics, models, batch_records=batch,
                                       progress=advance, ends=ends)
        finally:
            await engine.dispose()
            await eventlog.close()
        console.print(
            f"rebuilt {', '.join(result.models)} ({settings.backend}): {result.records:,} "
            f"records in {result.seconds:.1f} s, "
            f"[bold]{result.events_per_second:,.0f} events/s[/bold]")

    _run(run())


# --- the front door ---------------------------------------------------------------------


@app.command()
def gateway(
    commands: Annotated[str, typer.Option(
        envvar="DEALREG_GATEWAY_COMMANDS_URL",
        help="Base URL of the registration service(s) (commands)")] = "http://127.0.0.1:8081",
    queries: Annotated[str, typer.Option(
        envvar="DEALREG_GATEWAY_QUERIES_URL",
        help="Base URL of the projections service(s) (queries)")] = "http://127.0.0.1:8082",
    timeout: Annotated[float, typer.Option(
        envvar="DEALREG_GATEWAY_TIMEOUT_SECONDS", min=1.0,
        help="Longest wait for an upstream's answer (above DEALREG_MAX_WAIT_SECONDS)")]
    = 60.0,
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
) -> None:
    """One front door for the distributed deployment: routes each request to the
    registration or projections service by method and path, and serves one /openapi.json
    and /docs for the whole API."""
    from dealreg.gateway import Gateway

    settings = _settings(host=host, port=port)
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(Gateway(commands, queries, timeout=timeout), host=settings.host,
                port=settings.port, loop="uvloop", http="httptools", access_log=False,
                log_config=None, limit_concurrency=4000, timeout_graceful_shutdown=10)
