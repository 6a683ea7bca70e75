"""A rebuild in several processes: partition groups folded side by side.

One interpreter decodes, folds and prepares about 30,000 records per CPU-second; a second
core needs a second interpreter. The read models are partition-independent, which is what
makes this correct (checked in `services/projections/NOTES.md`, "Rebuild"): partition p of
intake and of decisions hold the same accounts, every row of a registration, claim,
dispute, timeline subject or account link is written from one partition, and what rows of
two partitions share is commutative (pipeline totals are added; directory facts are
first-writer-wins on a fact every submission of it agrees on). So each worker process
replays whole partition groups with the in-process replay (`rebuild.replay`), each batch
committing its rows with its partitions' positions: a failure anywhere leaves committed
batches only, and a projection worker resumes from their positions.

This process reads the log (cheap) and sends each worker its groups' batches, raw record
values, over a pipe (the embedded log is one process's; Kafka would need one consumer per
worker); the workers decode them. A pipe holds about one batch, so reading keeps one
batch ahead of each worker. Workers are spawned (no inherited threads or event loop) and
write through their own engine on the same URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.eventlog import Record, TopicPartition

Progress = Callable[[int], None]
Raw = tuple[list[Record], dict[TopicPartition, int]]
Skipped = tuple[str, int, int, str]
"""An undecodable record a rebuild skipped, as the live worker does: topic, partition,
offset, error."""
_DONE = "done"
_FAILED = "failed"
_PROGRESS = "progress"
_SQLITE_WRITE_WAIT_MS = 120_000


class RebuildWorkerFailed(RuntimeError):
    """A worker process of a parallel rebuild failed (its traceback is the message)."""


async def replay_in_processes(
    engine: AsyncEngine, models: tuple[str, ...], sources: Sequence[AsyncIterator[Raw]],
    progress: Progress | None, names: Sequence[str] | None = None,
) -> tuple[int, int, list[Skipped]]:
    """Replay each of `sources` in its own worker process; returns (records, events,
    skipped undecodable records). `names`: what each source holds ("partitions 0, 2"), named
    in a failure. On a failure, the other workers are sent no more batches, finish what
    they hold and stop; then the failure is raised (a worker that died without an answer,
    killed for instance, is a failure too: its pipe ends, nobody waits on it)."""
    names = list(names) if names is not None else [f"source {n}" for n in range(len(sources))]
    url = engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    pipes = [context.Pipe() for _ in sources]
    workers = [context.Process(target=_worker, args=(url, models, child),
                               name=f"dealreg-rebuild-{n}", daemon=True)
               for n, (_, child) in enumerate(pipes)]
    for worker in workers:
        worker.start()
    for _, child in pipes:
        child.close()
    stopping = asyncio.Event()
    try:
        results = await asyncio.gather(
            *(_drive(source, parent, progress, stopping, f"{worker.name} ({name})")
              for source, (parent, _), worker, name in zip(sources, pipes, workers, names,
                                                           strict=True)),
            return_exceptions=True)
    finally:
        # Every answer is in (or this rebuild failed or was cancelled): closing the pipes
        # ends a worker still waiting for batches (its recv fails, its open write rolls
        # back), then each is waited for.
        for parent, _ in pipes:
            parent.close()
        for worker in workers:
            await asyncio.to_thread(worker.join, 60)
            if worker.is_alive():
                worker.kill()
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise failures[0]
    done = [r for r in results if not isinstance(r, BaseException)]
    return (sum(r[0] for r in done), sum(r[1] for r in done),
            [s for r in done for s in r[2]])


async def _drive(source: AsyncIterator[Raw], pipe: Connection, progress: Progress | None,
                 stopping: asyncio.Event, name: str) -> tuple[int, int, list[Skipped]]:
    """Send `source`'s batches to one worker (until it ends or another worker failed),
    relaying its progress; returns its (records, events, skipped)."""
    answers = asyncio.ensure_future(_answers(pipe, progress, name))
    try:
        async for records, read_to in source:
            if stopping.is_set() or answers.done():
                break
            payload = ([(r.topic, r.partition, r.offset, r.value) for r in records], read_to)
            try:
                await asyncio.to_thread(pipe.send, payload)
            except OSError:  # the worker is gone: its answer (or its death) says why
                break
        if not answers.done():
            with contextlib.suppress(OSError):
                await asyncio.to_thread(pipe.send, None)
        return await answers
    except BaseException:
        stopping.set()
        if answers.done() and not answers.cancelled() and answers.exception() is not None:
            # The worker's own failure, not the broken pipe it left behind.
            raise answers.exception() from None  # type: ignore[misc]
        raise
    finally:
        if not answers.done():
            answers.cancel()


async def _answers(pipe: Connection, progress: Progress | None, name: str
                   ) -> tuple[int, int, list[Skipped]]:
    while True:
        try:
            kind, *values = await asyncio.to_thread(pipe.recv)
        except (EOFError, OSError) as exc:
            raise RebuildWorkerFailed(
                f"rebuild worker {name} ended without an answer (killed?); its batches "
                "committed so far are whole, rebuild again") from exc
        if kind == _PROGRESS:
            if progress is not None:
                progress(values[0])
        elif kind == _DONE:
            return values[0], values[1], values[2]
        else:
            raise RebuildWorkerFailed(f"rebuild worker {name} failed:\n{values[0]}")


def _worker(url: str, models: tuple[str, ...], pipe: Connection) -> None:
    """A worker process: replay the batches arriving on `pipe` into the store at `url`."""
    try:
        seen, events, skipped = asyncio.run(_work(url, models, pipe))
    except BaseException:
        answer: tuple[Any, ...] = (_FAILED, traceback.format_exc())
    else:
        answer = (_DONE, seen, events, skipped)
    with contextlib.suppress(OSError):  # the rebuild stopped listening: nothing to tell
        pipe.send(answer)
    pipe.close()


async def _work(url: str, models: tuple[str, ...], pipe: Connection
                ) -> tuple[int, int, list[Skipped]]:
    from services.projections.adapters.rebuild import _decoded, replay
    from shared.readmodel.store import create_engine

    async def received() -> AsyncIterator[Raw]:
        while (payload := await asyncio.to_thread(pipe.recv)) is not None:
            rows, read_to = payload
            yield [Record(t, p, o, "", v, 0) for t, p, o, v in rows], read_to

    def report(records: int) -> None:
        pipe.send((_PROGRESS, records))

    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        # Workers take turns on SQLite's one write lock: wait for it as long as a batch
        # may take on a loaded machine, not the service's 5 s.
        @event.listens_for(engine.sync_engine, "connect")
        def _patient(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_WRITE_WAIT_MS}")
            cursor.close()

    try:
        skipped: list[Skipped] = []
        seen, events = await replay(engine, _decoded(received(), models, skipped), models,
                                    report)
        return seen, events, skipped
    finally:
        await engine.dispose()
