"""`dealreg poison`: the dead-letter topic of poison records (shared/eventlog/deadletter.py).

It reads the event log itself (settings from `DEALREG_*`, like `dealreg rebuild`): `list`
shows the dead letters, `replay` appends a dead letter's original bytes to its origin
partition again (for when an upgraded build can read them). docs/runbook.md, "Dead letters".
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dealreg.preflight import OperatorError, check_backend, check_servers, describe_store
from shared.eventlog import EventLog
from shared.eventlog.deadletter import DeadLetter, read_dead_letter, replayed
from shared.eventlog.topics import Topics
from shared.events.codec import decode
from shared.settings import Settings

poison_app = typer.Typer(help="Poison records (undecodable log records): list, replay.",
                         no_args_is_help=True)
out = Console(soft_wrap=True)


async def _letters(eventlog: EventLog, topics: Topics) -> list[DeadLetter]:
    found: list[DeadLetter] = []
    for tp, end in sorted((await eventlog.end_positions(topics.dead_letters)).items()):
        async for batch in eventlog.read(tp, 0, end):
            found.extend(read_dead_letter(r.value) for r in batch)
    return list({d.id: d for d in found}.values())  # the projections' may repeat


def _settings() -> Settings:
    from dealreg.cli import _settings as from_environment

    return from_environment()  # invalid settings: one line, exit 2


def _run(settings: Settings, work: Callable[[EventLog, Topics], Awaitable[None]]) -> None:
    """As every command that touches a store: an ambiguous backend or a missing data
    directory refused (nothing created), the store named, an unreachable Kafka or a log
    without the dead-letter topic one line and a non-zero exit, never a stack trace."""
    from dealreg.cli import _fail, console
    from dealreg.cli import _run as run_command
    from dealreg.runtime import build_eventlog

    try:
        check_backend(settings, data_dir_must_exist=True)
    except OperatorError as exc:
        _fail(exc)
    console.print("event log: " + (
        describe_store(settings) if settings.backend == "embedded"
        else f"distributed backend, Kafka {settings.kafka_bootstrap_servers}"))

    async def main() -> None:
        if settings.backend == "distributed":
            await check_servers(settings, kafka=True, database=False)
        eventlog = build_eventlog(settings)
        await eventlog.start()
        try:
            topics = Topics.named(settings.topic_prefix)
            try:
                await eventlog.partitions(topics.dead_letters)
            except KeyError:
                raise OperatorError(
                    f"this log has no dead-letter topic {topics.dead_letters}: run `dealreg "
                    "topics create` (distributed) or start `dealreg dev` once (embedded)",
                    exit_code=1) from None
            await work(eventlog, topics)
        finally:
            await eventlog.close()

    run_command(main())


@poison_app.command("list")
def poison_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every dead letter: origin (topic, partition, offset), consumer, error."""
    settings = _settings()

    async def work(eventlog: EventLog, topics: Topics) -> None:
        letters = await _letters(eventlog, topics)
        if as_json:
            out.print_json(json.dumps([d.to_json() for d in letters]))
            return
        table = Table(title=f"dead letters on {topics.dead_letters}")
        for column in ("id", "origin", "key", "error"):
            table.add_column(column)
        for d in letters:
            table.add_row(d.id, f"{d.topic}/{d.partition}@{d.offset}", d.key, d.error[:120])
        out.print(table)

    _run(settings, work)


@poison_app.command("replay")
def poison_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead-letter ids")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every dead letter")] = False,
    force: Annotated[bool, typer.Option(
        help="Replay even records this build still cannot decode")] = False,
) -> None:
    """Append dead letters' original records to their origin partitions (at the end)."""
    settings = _settings()
    wanted = set(ids or ())
    if not wanted and not every:
        raise typer.BadParameter("name dead-letter ids, or --all")

    async def work(eventlog: EventLog, topics: Topics) -> None:
        letters = [d for d in await _letters(eventlog, topics) if every or d.id in wanted]
        # The adjudicator's and the projections' letters of one record are one record.
        origins = {(d.topic, d.partition, d.offset): d for d in letters}
        chosen = []
        for d in origins.values():
            try:
                decode(d.value)
            except ValueError as exc:
                if not force:
                    out.print(f"[yellow]skipped[/yellow] {d.id}: still undecodable ({exc})")
                    continue
            chosen.append(d)
        landed = await eventlog.append([replayed(d) for d in chosen]) if chosen else []
        for d, at in zip(chosen, landed, strict=True):
            out.print(f"replayed {d.id} -> {at.topic}/{at.partition}@{at.offset}")
        if wanted - {d.id for d in letters}:
            raise OperatorError(f"unknown dead-letter ids: "
                                f"{', '.join(sorted(wanted - {d.id for d in letters}))}",
                                exit_code=1)

    _run(settings, work)
