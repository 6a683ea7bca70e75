"""`dealreg`: run the service (embedded or distributed) and operate it."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import typer
import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console

from dealreg import __version__
from dealreg.admin import admin_app
from dealreg.poison import poison_app
from dealreg.preflight import (
    OperatorError,
    bind_port,
    check_backend,
    check_data_dir_free,
    check_database,
    check_kafka,
    check_servers,
    describe_store,
    unknown_variables,
)
from dealreg.runtime import Component, Runtime
from dealreg.server import Server
from shared.logging import LogFormat, configure_logging, get_logger
from shared.settings import Settings

app = typer.Typer(help="Deal registration and channel-conflict resolution.",
                  no_args_is_help=True, add_completion=False)
topics_app = typer.Typer(help="Kafka topic provisioning.", no_args_is_help=True)
db_app = typer.Typer(help="Read-model store schema.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(poison_app, name="poison")
console = Console(stderr=True, soft_wrap=True)


def _settings(**overrides: object) -> Settings:
    """The environment's settings (`DEALREG_*`) with the flags that were given on top."""
    for warning in unknown_variables(os.environ):
        console.print(f"[yellow]warning:[/yellow] {warning}")
    try:
        return Settings(**{k: v for k, v in overrides.items()  # type: ignore[arg-type]
                           if v is not None})
    except ValidationError as exc:
        errors = "; ".join(f"DEALREG_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                           for e in exc.errors())
        console.print(f"[red]error:[/red] invalid settings: {errors}")
        raise typer.Exit(2) from None
    except SettingsError as exc:  # a list or object variable that is not JSON
        console.print(f"[red]error:[/red] invalid settings: {exc} (expected JSON, e.g. [0, 5])")
        raise typer.Exit(2) from None


def _fail(exc: OperatorError) -> NoReturn:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(exc.exit_code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dealreg {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit")] = False,
) -> None:
    """Deal registration and channel-conflict resolution."""
    # An operator's Ctrl-C and a supervisor's SIGTERM reach every command, whatever mask
    # the process inherited: a signal blocked by a parent thread (a mask survives fork and
    # exec; the rebuild's own fork server is started with SIGINT blocked on purpose) would
    # let `projections rebuild` run to its end through a Ctrl-C. (An ignored SIGINT, as a
    # script's background job has, is the parent's choice and stays.)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _require_backend(settings: Settings, backend: str, command: str) -> None:
    """`serve` and `topics create` are distributed-only: an explicit other backend is a
    contradiction, not something to override silently."""
    if "backend" in settings.model_fields_set and settings.backend != backend:
        _fail(OperatorError(
            f"`dealreg {command}` runs on the {backend} backend but DEALREG_BACKEND="
            f"{settings.backend} is set; unset it"
            + (" (or use `dealreg dev` for the embedded backend)." if backend == "distributed"
               else ".")))


def _serve_http(settings: Settings, components: frozenset[Component],
                log_format: LogFormat = "json") -> None:
    """Bind the port, check the servers, then run: each failure is one clear line and a
    non-zero exit, before any migration runs. `dev` is read by a person (console format),
    `serve` by a log pipeline (JSON); `DEALREG_LOG_FORMAT` overrides both."""
    from dealreg.app import create_app
    from shared.tracing import configure_otel

    try:
        sock = bind_port(settings.host, settings.port)
        if settings.backend == "embedded":
            check_data_dir_free(settings)
        else:
            asyncio.run(check_servers(
                settings, kafka=True,
                database=bool(components & {"registration", "projections"})))
    except OperatorError as exc:
        _fail(exc)
    configure_logging(settings.log_level, settings.log_format or log_format)
    configure_otel(settings.otel, service=f"dealreg-{'-'.join(sorted(components))}")
    get_logger("dealreg").info("starting", components=sorted(components),
                               listen=f"{settings.host}:{settings.port}",
                               store=describe_store(settings))
    application = create_app(settings, components)
    server = Server(application, **server_options(settings))
    received = _run_server(server, sock, application.state.runtime)
    if not server.started:
        console.print("[red]error:[/red] dealreg did not start (see the log above)")
        raise typer.Exit(3)
    _stopped(received)


def _stopped(received: list[int]) -> None:
    """A clean stop: one `stopped` line, then exit 130 when Ctrl-C (SIGINT) stopped it (the
    shell's convention, as every other command's Ctrl-C), else 0 (SIGTERM: a stop asked
    for and done)."""
    code = 130 if signal.SIGINT in received else 0
    get_logger("dealreg").info("stopped", signal=signal.Signals(received[0]).name
                               if received else None, exit_code=code)
    if code:
        raise typer.Exit(code)


def _run_server(server: uvicorn.Server, sock: socket.socket, runtime: Runtime | None
                ) -> list[int]:
    """Serve until a signal; the signals received (SIGINT, SIGTERM). A shutdown that did not
    end cleanly within DEALREG_SHUTDOWN_TIMEOUT_SECONDS (a wedged disk: appends not
    flushed) ends the process with one line and exit 1 - at once, without waiting for a
    thread the disk never answers.

    uvicorn takes both signals while it serves and raises them again once it stopped, to
    the handlers it found: ours only note them (and stop a server not serving yet), so no
    KeyboardInterrupt unwinds the event loop's end and no default action kills the process
    before the `stopped` line and its exit code (`_stopped`). A signal while the loop
    closes is noted, not raised."""
    received: list[int] = []

    def note(signum: int, frame: object) -> None:
        received.append(signum)
        server.should_exit = True

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if runtime is not None and runtime.shutdown_problem is not None:
            console.print(f"[red]error:[/red] shutdown incomplete after "
                          f"{runtime.settings.shutdown_timeout_seconds:g} s "
                          f"(DEALREG_SHUTDOWN_TIMEOUT_SECONDS): {runtime.shutdown_problem}")
            if runtime.shutdown_stuck:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(1)  # a stuck thread would hold the interpreter's exit forever
            raise typer.Exit(1)
    return list(dict.fromkeys(received))


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's settings for every dealreg process (the bench's bare-endpoint ceiling runs
    with the same ones)."""
    return {"loop": "uvloop", "http": "httptools", "access_log": False, "log_config": None,
            # Above the app's own in-flight limit, which answers 503 with Retry-After first.
            "limit_concurrency": max(2000, 2 * settings.max_in_flight_requests + 100),
            "timeout_graceful_shutdown": 10,
            # Believe X-Forwarded-For only from our proxies (the gateway, the ingress): behind
            # them every client would otherwise share one address in the auth-failure limit.
            "proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}


@app.command()
def dev(
    host: Annotated[str | None, typer.Option(
        help="Bind address [env DEALREG_HOST; default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(
        help="HTTP port [env DEALREG_PORT; default 8080]")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Where the embedded log and read models live "
             "[env DEALREG_DATA_DIR; default ./dealreg-data]")] = None,
) -> None:
    """Run every service in one process on the embedded backend (SQLite files)."""
    settings = _settings(host=host, port=port, data_dir=data_dir)
    ignored = [f"DEALREG_{n.upper()}" for n in ("backend", "database_url",
                                                  "kafka_bootstrap_servers")
               if n in settings.model_fields_set and not (
                   n == "backend" and settings.backend == "embedded")]
    if ignored:
        console.print(f"[yellow]note:[/yellow] `dev` always runs on the embedded backend; "
                      f"{', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} ignored "
                      "(`dealreg serve` uses Kafka + PostgreSQL)")
    settings.backend = "embedded"
    if settings.admin_token is None:
        settings.admin_token = "drk_admin_" + secrets.token_urlsafe(32)
        console.print(f"[bold]Admin token (shown once):[/bold] {settings.admin_token}")
    if "webhook_allow_loopback" not in settings.model_fields_set:
        settings.webhook_allow_loopback = True  # a first look points webhooks at localhost
    if settings.seed_default_owners is None:
        settings.seed_default_owners = True  # the default policy's owners exist after `dev`
    console.print("Webhooks may target loopback addresses: "
                  f"{'yes' if settings.webhook_allow_loopback else 'no'} "
                  "(DEALREG_WEBHOOK_ALLOW_LOOPBACK; `serve` refuses them by default)")
    where = settings.data_dir.resolve()
    if not where.is_dir():
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _fail(OperatorError(f"cannot create the data directory {where}: {exc.strerror}; "
                                "choose another --data-dir / DEALREG_DATA_DIR"))
    console.print(f"dealreg dev on http://{settings.host}:{settings.port}  (API docs: "
                  f"http://{settings.host}:{settings.port}/docs, data: {where}"
                  f"{'' if settings.embedded_log_path.exists() else ', new'})")
    if settings.ops_token_required is None:
        # A first look should see /metrics and /readyz detail; `serve` requires a token.
        settings.ops_token_required = False
        console.print("/metrics and /readyz detail are open (DEALREG_OPS_TOKEN_REQUIRED=true "
                      "protects them)")
    _serve_http(settings, frozenset({"registration", "adjudication", "projections"}),
                log_format="console")


@app.command()
def serve(
    service: Annotated[Literal["registration", "adjudication", "projections"],
                       typer.Argument(help="Which service this process runs")],
    host: Annotated[str | None, typer.Option(
        help="Bind address [env DEALREG_HOST; default 127.0.0.1, 0.0.0.0 in the image]")]
    = None,
    port: Annotated[int | None, typer.Option(
        help="HTTP port [env DEALREG_PORT; default 8080]")] = None,
) -> None:
    """Run one service against Kafka and PostgreSQL (settings from DEALREG_* variables)."""
    settings = _settings(host=host, port=port)
    _require_backend(settings, "distributed", f"serve {service}")
    settings.backend = "distributed"
    _serve_http(settings, frozenset({service}))


@topics_app.command("create")
def topics_create(
    partitions: Annotated[int | None, typer.Option(
        help="Partitions of new topics [env DEALREG_TOPIC_PARTITIONS; default 12]")] = None,
) -> None:
    """Create the intake and decisions topics on Kafka (existing topics are kept)."""
    from dealreg.runtime import build_eventlog
    from shared.eventlog.topics import Topics

    settings = _settings(topic_partitions=partitions)
    _require_backend(settings, "distributed", "topics create")
    settings.backend = "distributed"
    console.print(f"Kafka {settings.kafka_bootstrap_servers}, topic prefix "
                  f"{settings.topic_prefix!r}")

    async def run() -> None:
        await check_kafka(settings)
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
def db_upgrade(
    data_dir: Annotated[Path | None, typer.Option(
        help="The embedded backend's data directory [env DEALREG_DATA_DIR]")] = None,
) -> None:
    """Migrate the read-model store to the newest schema (PostgreSQL: under an advisory
    lock, so concurrent upgrades take turns)."""
    from shared.readmodel.store import create_engine, migrate

    settings = _settings(data_dir=data_dir)
    try:
        check_backend(settings, data_dir_must_exist=True)
    except OperatorError as exc:
        _fail(exc)
    console.print(f"read-model store: {describe_store(settings, kafka=False)}")

    async def run() -> None:
        if settings.backend == "distributed":
            await check_database(settings)
        from services.projections.adapters.repository import outdated_models
        from services.projections.domain.batch import MODELS

        engine = create_engine(settings.readmodel_url)
        try:
            result = await migrate(engine, on_wait=lambda: console.print(
                "another process is upgrading this schema; waiting for its lock"))
            async with engine.begin() as conn:
                outdated = await outdated_models(conn, MODELS)
        finally:
            await engine.dispose()
        if result.changed:
            console.print(f"read-model schema upgraded from "
                          f"{', '.join(result.before) or '(empty)'} to "
                          f"{', '.join(result.after)}")
        else:
            console.print(f"read-model schema is current ({', '.join(result.after)})")
        if outdated:
            # Folded by an older release: rows this one files are missing until a replay.
            flags = " ".join(f"--model {m}" for m in outdated)
            console.print(
                f"read models folded by an older release: {', '.join(outdated)}; "
                + ("`dealreg dev` replays them at its next start" if
                   settings.backend == "embedded" else
                   f"run `dealreg projections rebuild {flags}` once, before the services")
                + " (README, Upgrading)")

    _run(run())


def _run(coro: Coroutine[Any, Any, None],
         interrupted: Callable[[], str] | None = None) -> None:
    """Run a command's coroutine. Ctrl-C: exit 130, after printing `interrupted()` (what
    the interruption left behind) when given."""
    try:
        asyncio.run(coro)
    except KeyboardInterrupt:
        if interrupted is not None:
            console.print(f"[yellow]interrupted:[/yellow] {interrupted()}")
        raise typer.Exit(130) from None
    except OperatorError as exc:
        _fail(exc)
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
        help="The embedded backend's data directory [env DEALREG_DATA_DIR]")] = None,
    batch: Annotated[int, typer.Option(min=100, help="Records per transaction")] = 20_000,
    processes: Annotated[int | None, typer.Option(
        min=1, max=64, help="Worker processes folding partition groups side by side (1-64; "
                            "more than the log's partitions use one per partition). "
                            "Default: one per core (at most 4) from 100,000 records on, "
                            "else 1")] = None,
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
    from services.projections.adapters.rebuild import (
        default_processes,
        describe_breach,
        log_size,
        rebuild,
    )
    from services.projections.domain.batch import MODELS
    from shared.eventlog.topics import Topics
    from shared.readmodel.store import create_engine, migrate

    models = tuple(dict.fromkeys(model or MODELS))
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise typer.BadParameter(f"unknown read model {unknown[0]!r}; one of "
                                 f"{', '.join(MODELS)}", param_hint="--model")
    settings = _settings(data_dir=data_dir)
    try:
        check_backend(settings, data_dir_must_exist=True)
    except OperatorError as exc:
        _fail(exc)
    console.print(f"rebuilding in {describe_store(settings)}")
    done = {"records": 0, "of": 0}  # for the message on Ctrl-C

    async def run() -> None:
        if settings.backend == "distributed":
            await check_servers(settings, database=True, kafka=True)
        eventlog = build_eventlog(settings)
        await eventlog.start()
        engine = create_engine(settings.readmodel_url)
        try:
            await migrate(engine)
            topics = Topics.named(settings.topic_prefix)
            ends = await log_size(eventlog, topics)
            done["of"] = sum(ends.values())
            with Progress(TextColumn("[bold]replaying[/bold] {task.description}"), BarColumn(),
                          MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
                task = bar.add_task(", ".join(models), total=sum(ends.values()) or 1, rate="")
                started = asyncio.get_running_loop().time()

                def advance(n: int) -> None:
                    done["records"] += n
                    bar.advance(task, n)
                    elapsed = asyncio.get_running_loop().time() - started
                    bar.update(task, rate=f"{done['records'] / elapsed:,.0f} events/s"
                               if elapsed else "")

                workers = processes or default_processes(sum(ends.values()))
                result = await rebuild(eventlog, engine, topics, models, batch_records=batch,
                                       progress=advance, ends=ends, processes=workers)
        finally:
            await engine.dispose()
            await eventlog.close()
        console.print(
            f"rebuilt {', '.join(result.models)} ({settings.backend}): {result.records:,} "
            f"records in {result.seconds:.1f} s, "
            f"[bold]{result.events_per_second:,.0f} events/s[/bold]")
        if result.skipped:
            # As the live worker: an undecodable record is skipped (it dead-letters it).
            console.print(f"[yellow]skipped {len(result.skipped)} undecodable record(s), "
                          "as the projection worker does:[/yellow]")
            for topic, partition, offset, error in result.skipped[:20]:
                console.print(f"  {topic} partition {partition} offset {offset}: "
                              f"{error[:200]}", markup=False, highlight=False)
        if result.misrouted:
            # A log this service did not write (a decision keyed by another account than
            # its own breaks invariant 14): no replay order is the live one; this one is
            # at least the same every time.
            console.print(
                f"[yellow]{result.misrouted} record(s) keyed by another account than the "
                "one their event names[/yellow] (each must be keyed by its own account "
                "key): their registrations' rows may differ from what a live worker folded. "
                + (f"The parallel rebuild found the first ({result.fell_back}) and "
                   "started again in one process, partition after partition."
                   if result.fell_back else "Replayed partition after partition."),
                highlight=False)
            for breach in result.misrouted_first[:5]:
                console.print(f"  {describe_breach(breach)}", markup=False, highlight=False)

    def interrupted() -> str:
        return (f"the rebuild stopped after {done['records']:,} of {done['of']:,} records. "
                "The read models hold the batches committed so far, each with its "
                "positions; run `dealreg projections rebuild` again to start over (it "
                "empties them first), or start the projections service, which continues "
                "from those positions.")

    _run(run(), interrupted)


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
    host: Annotated[str | None, typer.Option(
        help="Bind address [env DEALREG_HOST; default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(
        help="HTTP port [env DEALREG_PORT; default 8080]")] = None,
) -> None:
    """One front door for the distributed deployment: routes each request to the
    registration or projections service by method and path, and serves one /openapi.json
    and /docs for the whole API."""
    from dealreg.gateway import Gateway

    settings = _settings(host=host, port=port)
    try:
        for option, value in (("commands", commands), ("queries", queries)):
            _upstream(option, value)
        sock = bind_port(settings.host, settings.port)
    except OperatorError as exc:
        _fail(exc)
    configure_logging(settings.log_level, settings.log_format or "json")
    server = Server(
        Gateway(commands, queries, timeout=timeout), loop="uvloop", http="httptools",
        access_log=False, log_config=None, limit_concurrency=4000,
        timeout_graceful_shutdown=10, proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips)
    _stopped(_run_server(server, sock, None))


def _upstream(option: str, url: str) -> None:
    """An upstream the gateway can send to: a typo used to start a gateway that answered
    every request with an error."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https") or not rest.split("/")[0].strip():
        raise OperatorError(
            f"--{option} / DEALREG_GATEWAY_{option.upper()}_URL: {url!r} is not an http(s) "
            f"base URL (e.g. http://{'registration' if option == 'commands' else 'projections'}"
            ":8080)")


# --- moving an embedded program ------------------------------------------------------------

DataDir = Annotated[Path | None, typer.Option(
    help="The embedded backend's data directory [env DEALREG_DATA_DIR; default "
         "./dealreg-data]")]


@app.command("export")
def export(
    archive: Annotated[Path, typer.Argument(help="The archive to write (.tar.gz)")],
    data_dir: DataDir = None,
) -> None:
    """Archive the embedded data directory consistently, with a manifest (stop `dev`)."""
    from dealreg.moving import export_data_dir

    settings = _settings(data_dir=data_dir)
    console.print(f"exporting {settings.data_dir.resolve()} to {archive}")
    try:
        manifest = export_data_dir(settings.data_dir, archive, console.print)
    except OperatorError as exc:
        _fail(exc)
    console.print(f"exported {manifest.records:,} records of "
                  f"{len(manifest.data['topics'])} topics to {archive}")


@app.command("import")
def import_(
    archive: Annotated[Path, typer.Argument(help="An archive `dealreg export` wrote")],
    data_dir: DataDir = None,
) -> None:
    """Unpack an export into a new (or empty) data directory, verifying it first."""
    from dealreg.moving import import_archive

    settings = _settings(data_dir=data_dir)
    console.print(f"importing {archive} into {settings.data_dir.resolve()}")
    try:
        manifest = import_archive(archive, settings.data_dir, console.print)
    except OperatorError as exc:
        _fail(exc)
    console.print(f"imported {manifest.records:,} records (exported "
                  f"{manifest.data['created_at']} by dealreg {manifest.data['dealreg_version']})")


@app.command("migrate-to-kafka")
def migrate_to_kafka(
    data_dir: DataDir = None,
    database: Annotated[bool, typer.Option(
        help="Also move the store into DEALREG_DATABASE_URL and rebuild the read models "
             "there")] = True,
) -> None:
    """Copy an embedded program's history into new Kafka topics (same partitions, offsets
    and events) and its store into PostgreSQL, so `dealreg serve` takes over. Stop `dev`."""
    from dealreg.moving import locked
    from dealreg.moving import migrate_to_kafka as move

    settings = _settings(data_dir=data_dir)
    settings.backend = "distributed"
    target = describe_store(settings) if database \
        else f"Kafka {settings.kafka_bootstrap_servers}"
    console.print(f"from the embedded data directory {settings.data_dir.resolve()} to {target}")

    async def run() -> None:
        await check_servers(settings, kafka=True, database=database)
        moved = await move(settings, settings.data_dir, console.print, database=database)
        console.print(f"moved {sum(moved.records.values()):,} records; start "
                      "`dealreg serve` with these settings")

    try:
        with locked(settings.data_dir):
            pass
    except OperatorError as exc:
        _fail(exc)
    _run(run())
