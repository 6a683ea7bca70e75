"""`dealreg poison`: the dead-letter topic of poison records (shared/eventlog/deadletter.py).

It reads the event log itself (settings from `DEALREG_*`, like `dealreg rebuild`): `list`
shows the dead letters, `replay` appends a dead letter's original bytes to its origin
partition again (for when an upgraded build can read them). docs/runbook.md, "Dead letters".
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

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


def _run(settings: Settings, work: object) -> None:
    from dealreg.runtime import build_eventlog

    async def main() -> None:
        eventlog = build_eventlog(settings)
        await eventlog.start()
        try:
            await work(eventlog, Topics.named(settings.topic_prefix))  # type: ignore[operator]
        finally:
            await eventlog.close()

    asyncio.run(main())


@poison_app.command("list")
def poison_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every dead letter: origin (topic, partition, offset), consumer, error."""
    settings = Settings()

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
    settings = Settings()
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
            out.print(f"[red]unknown ids:[/red] {sorted(wanted - {d.id for d in letters})}")
            raise typer.Exit(1)

    _run(settings, work)
