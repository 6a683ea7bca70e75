"""A rebuild in several processes: partition groups folded side by side.

One interpreter decodes, folds and prepares about 30,000 records per CPU-second; a second
core needs a second interpreter. The read models are partition-independent, which is what
makes this correct (checked in `services/projections/NOTES.md`, "Rebuild"): partition p of
intake and of decisions hold the same accounts, every row of a registration, claim,
dispute, timeline subject or account link is written from one partition, and what rows of
two partitions share is commutative (pipeline totals are added; directory facts are
first-writer-wins on a fact every submission of it agrees on). The keying that makes
it so is checked on every record (`rebuild.Keying`): a record keyed by another account
key than its event's raises `PartitioningBroken`, and the rebuild starts again in one
process. So each worker process
replays whole partition groups with the in-process replay (`rebuild.replay`), each batch
committing its rows with its partitions' positions: a failure anywhere leaves committed
batches only, and a projection worker resumes from their positions.

This process reads the log (cheap) and sends each worker its groups' batches, raw record
values, over a pipe (the embedded log is one process's; Kafka would need one consumer per
worker); the workers decode them. A pipe holds about one batch, so reading keeps one
batch ahead of each worker. Groups are handed out one at a time, largest first, to
whichever worker is free, so a worker that started late or runs on a busier core takes
fewer. Workers write through their own engine on the same URL.

Start-up: a spawned interpreter spent about a CPU-second importing before its first
record (29 % of a worker's CPU in a 100,000-record rebuild, paid once per worker).
Workers are forked from a fork server (`multiprocessing`'s "forkserver": a fresh,
single-threaded interpreter, so no inherited threads or event loop) that imports what a
worker needs once, and never the program's main script, which workers do not need
(`rebuild_preload`); each rebuild starts its own and stops it at the end,
so its start-up stays inside the rebuild's measured time. While it imports, this process
replays groups itself (leaving at least one group per worker) and stops taking groups
once a worker is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import forkserver, resource_tracker, spawn
from multiprocessing.connection import Connection
from typing import Any, NamedTuple, cast

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.adapters.rebuild import PartitioningBroken
from services.projections.adapters.rebuild_preload import MAIN_PATH
from shared.eventlog import Record, TopicPartition

Progress = Callable[[int], None]
Raw = tuple[list[Record], dict[TopicPartition, int]]
Skipped = tuple[str, int, int, str]
"""An undecodable record a rebuild skipped, as the live worker does: topic, partition,
offset, error."""
_DONE = "done"
_FAILED = "failed"
_PROGRESS = "progress"
_READY = "ready"
_MISROUTED = "misrouted"
_SQLITE_WRITE_WAIT_MS = 120_000


class RebuildWorkerFailed(RuntimeError):
    """A worker process of a parallel rebuild failed, or this process's own share of the
    groups (its traceback is the message)."""


Batches = Callable[[], AsyncIterator[Raw]]
Unit = tuple[int, Batches]
"""One partition group: its partition number and a way to read its batches."""


class _Units:
    """The partition groups not taken yet, largest first: each worker (and this process
    while the workers start) takes the next one when it is done with its last, so a worker
    that started late or runs on a busier core simply takes fewer."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self._left = list(reversed(units))

    def take(self, leave: int = 0) -> Unit | None:
        """The next group, unless no more than `leave` are left."""
        return self._left.pop() if len(self._left) > leave else None


async def replay_in_processes(
    engine: AsyncEngine, models: tuple[str, ...], units: Sequence[Unit], processes: int,
    progress: Progress | None,
) -> tuple[int, int, list[Skipped]]:
    """Replay the partition groups `units` in `processes` worker processes; returns
    (records, events, skipped undecodable records). Until the first worker is ready to
    fold (a spawned interpreter spends most of a CPU-second importing), this process
    replays groups itself, so start-up is not idle time.

    On a failure, the other workers are sent no more batches, finish what they hold and
    stop; then the failure is raised, naming the worker and the partitions it was given (a
    worker that died without an answer, killed for instance, is a failure too: its pipe
    ends, nobody waits on it)."""
    # A pipe read per worker, a send per worker, joining the starter: never short.
    pool = ThreadPoolExecutor(max_workers=2 * processes + 2,
                              thread_name_prefix="dealreg-rebuild-pipe")
    token = _threads.set(pool)
    try:
        return await _replay_in_processes(engine, models, units, processes, progress)
    finally:
        _threads.reset(token)
        pool.shutdown(wait=False, cancel_futures=True)


async def _replay_in_processes(
    engine: AsyncEngine, models: tuple[str, ...], units: Sequence[Unit], processes: int,
    progress: Progress | None,
) -> tuple[int, int, list[Skipped]]:
    url = engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("forkserver")
    ours = not _forkserver_running()
    if ours:
        context.set_forkserver_preload([*_PRELOAD, *_DRIVERS.get(engine.dialect.name, ())])
    pipes = [context.Pipe() for _ in range(processes)]
    workers = [context.Process(target=_worker, args=(url, models, child),
                               name=f"dealreg-rebuild-{n}", daemon=True)
               for n, (_, child) in enumerate(pipes)]
    # Starting the first worker waits for the fork server to import what a worker needs:
    # a thread does that while this process replays.
    failed_to_start: list[BaseException] = []
    starter = threading.Thread(target=_start, args=(workers, pipes, failed_to_start, ours),
                               name="dealreg-rebuild-start", daemon=True)
    starter.start()
    started = asyncio.ensure_future(_blocking(starter.join))
    queue = _Units(units)
    stopping = asyncio.Event()
    ready = asyncio.Event()
    try:
        results = await asyncio.gather(
            _replay_here(url, models, queue, processes, progress, ready, stopping),
            *(_drive(queue, parent, progress, stopping, ready, worker.name, started,
                     failed_to_start)
              for (parent, _), worker in zip(pipes, workers, strict=True)),
            return_exceptions=True)
    finally:
        # Every answer is in (or this rebuild failed or was cancelled): closing the pipes
        # ends a worker still waiting for batches (its recv fails, its open write rolls
        # back), then each is waited for, and the fork server this rebuild started is
        # stopped (the next rebuild pays for its own).
        await _blocking(starter.join)
        for parent, _ in pipes:
            parent.close()
        for worker in workers:
            if worker.pid is None:
                continue
            await _blocking(worker.join, 60)
            if worker.is_alive():
                worker.kill()
        if ours:
            await _blocking(_stop_forkserver)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        # A misrouted decision first: the caller starts again in one process.
        raise next((f for f in failures if isinstance(f, PartitioningBroken)),
                   next((f for f in failures if isinstance(f, RebuildWorkerFailed)),
                        failures[0]))
    done = [r for r in results if not isinstance(r, BaseException)]
    return (sum(r[0] for r in done), sum(r[1] for r in done),
            [s for r in done for s in r[2]])


async def _replay_here(url: str, models: tuple[str, ...], queue: _Units, workers: int,
                       progress: Progress | None, ready: asyncio.Event,
                       stopping: asyncio.Event) -> tuple[int, int, list[Skipped]]:
    """Replay groups in this process until a worker is ready (the group in hand is
    finished); returns (records, events, skipped)."""
    from services.projections.adapters.rebuild import Keying, _decoded, replay

    given: list[int] = []

    async def batches() -> AsyncIterator[Raw]:
        while not ready.is_set() and not stopping.is_set():
            unit = queue.take(leave=workers)  # one group at least for every worker
            if unit is None:
                return
            given.append(unit[0])
            async for batch in unit[1]():
                if stopping.is_set():
                    return
                yield batch

    skipped: list[Skipped] = []
    here = _engine(url)  # this process's own, as patient for SQLite's lock as the workers'
    try:
        seen, events = await replay(
            here, _decoded(batches(), models, skipped, Keying(strict=True)),
            models, progress)
    except PartitioningBroken:
        stopping.set()
        raise
    except Exception as exc:
        stopping.set()
        raise RebuildWorkerFailed(
            f"rebuild in the main process ({_partitions(given)}) failed:\n"
            f"{traceback.format_exc()}") from exc
    except BaseException:
        stopping.set()
        raise
    finally:
        await here.dispose()
    return seen, events, skipped


def _partitions(given: Sequence[int]) -> str:
    held = ", ".join(str(p) for p in sorted(given)) or "none yet"
    return f"{'partition' if len(given) == 1 else 'partitions'} {held}"


async def _drive(queue: _Units, pipe: Connection, progress: Progress | None,
                 stopping: asyncio.Event, ready: asyncio.Event, name: str,
                 started: asyncio.Future[None], failed_to_start: list[BaseException],
                 ) -> tuple[int, int, list[Skipped]]:
    """Once its worker is ready, send it the batches of group after group (until none is
    left or another worker failed), relaying its progress; returns its (records, events,
    skipped)."""
    given: list[int] = []
    await started
    if failed_to_start:
        stopping.set()
        raise failed_to_start[0]
    mine = asyncio.Event()

    def named() -> str:
        return f"{name} ({_partitions(given)})"

    answers = asyncio.ensure_future(_answers(pipe, progress, named, (mine, ready)))
    waiting = asyncio.ensure_future(mine.wait())
    try:
        await asyncio.wait((waiting, answers), return_when=asyncio.FIRST_COMPLETED)
        sending = True
        while sending and (unit := queue.take()) is not None:
            given.append(unit[0])
            async for records, read_to in unit[1]():
                if stopping.is_set() or answers.done():
                    sending = False
                    break
                payload = ([(r.topic, r.partition, r.offset, r.key, r.value)
                            for r in records],
                           read_to)
                try:
                    await _blocking(pipe.send, payload)
                except OSError:  # the worker is gone: its answer (or its death) says why
                    sending = False
                    break
            sending = sending and not stopping.is_set()
        if not answers.done():
            with contextlib.suppress(OSError):
                await _blocking(pipe.send, None)
        return await answers
    except BaseException:
        stopping.set()
        if answers.done() and not answers.cancelled() and answers.exception() is not None:
            # The worker's own failure, not the broken pipe it left behind.
            raise answers.exception() from None  # type: ignore[misc]
        raise
    finally:
        waiting.cancel()
        if not answers.done():
            answers.cancel()


async def _answers(pipe: Connection, progress: Progress | None, name: Callable[[], str],
                   ready: tuple[asyncio.Event, ...]) -> tuple[int, int, list[Skipped]]:
    while True:
        try:
            kind, *values = await _blocking(pipe.recv)
        except (EOFError, OSError) as exc:
            raise RebuildWorkerFailed(
                f"rebuild worker {name()} ended without an answer (killed?); its batches "
                "committed so far are whole, rebuild again") from exc
        if kind == _READY:
            for event_ in ready:
                event_.set()
        elif kind == _PROGRESS:
            if progress is not None:
                progress(values[0])
        elif kind == _DONE:
            return values[0], values[1], values[2]
        elif kind == _MISROUTED:
            raise PartitioningBroken(values[0])
        else:
            raise RebuildWorkerFailed(f"rebuild worker {name()} failed:\n{values[0]}")


_threads: contextvars.ContextVar[ThreadPoolExecutor | None] = contextvars.ContextVar(
    "dealreg_rebuild_threads", default=None)
"""The rebuild's own threads for its blocking pipe calls: each worker holds one in a pipe
read for the whole rebuild, so asyncio's default executor (cpu count + 4 threads, shared
with the caller) ran out at 6 workers on two cores, and nothing could send a batch."""


async def _blocking(function: Callable[..., Any], *args: Any) -> Any:
    pool = _threads.get()
    if pool is None:
        return await asyncio.to_thread(function, *args)
    return await asyncio.get_running_loop().run_in_executor(pool, function, *args)


def _worker(url: str, models: tuple[str, ...], pipe: Connection) -> None:
    """A worker process: replay the batches arriving on `pipe` into the store at `url`.
    Ctrl-C (blocked in the fork server, see `_start`) interrupts it: its open write rolls
    back and the rebuild hears of it."""
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        seen, events, skipped = asyncio.run(_work(url, models, pipe))
    except PartitioningBroken as exc:
        answer: tuple[Any, ...] = (_MISROUTED, str(exc))
    except BaseException:
        answer = (_FAILED, traceback.format_exc())
    else:
        answer = (_DONE, seen, events, skipped)
    with contextlib.suppress(OSError):  # the rebuild stopped listening: nothing to tell
        pipe.send(answer)
    pipe.close()


async def _work(url: str, models: tuple[str, ...], pipe: Connection
                ) -> tuple[int, int, list[Skipped]]:
    from services.projections.adapters.rebuild import Keying, _decoded, replay

    async def received() -> AsyncIterator[Raw]:
        while (payload := await _blocking(pipe.recv)) is not None:
            rows, read_to = payload
            yield cast(list[Record], [_Piped(t, p, o, k, v) for t, p, o, k, v in rows]), read_to

    def report(records: int) -> None:
        pipe.send((_PROGRESS, records))

    engine = _engine(url)
    try:
        pipe.send((_READY,))
        skipped: list[Skipped] = []
        seen, events = await replay(
            engine, _decoded(received(), models, skipped, Keying(strict=True)),
            models, report)
        return seen, events, skipped
    finally:
        await engine.dispose()


class _Piped(NamedTuple):
    """A record as a worker receives it: what decoding reads of a `Record` (the same
    attributes), made in a fraction of the time a frozen `Record` takes (one per
    record)."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    timestamp_ms: int = 0


def _engine(url: str) -> AsyncEngine:
    """An engine on `url` for one replaying process."""
    from shared.readmodel.store import create_engine

    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        # Processes take turns on SQLite's one write lock: wait for it as long as a batch
        # may take on a loaded machine, not the service's 5 s.
        @event.listens_for(engine.sync_engine, "connect")
        def _patient(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_WRITE_WAIT_MS}")
            cursor.close()

    return engine


_PRELOAD = ("services.projections.adapters.rebuild_preload",
            "services.projections.adapters.parallel", "services.projections.adapters.rebuild",
            "shared.readmodel.store")
"""What the fork server imports once for every worker it forks (the main script is not:
`rebuild_preload`): about a CPU-second a worker does not pay."""
_DRIVERS = {"sqlite": ("aiosqlite", "sqlalchemy.dialects.sqlite.aiosqlite"),
            "postgresql": ("asyncpg", "sqlalchemy.dialects.postgresql.asyncpg")}


def _start(workers: Sequence[multiprocessing.process.BaseProcess],
           pipes: Sequence[tuple[Connection, Connection]],
           failed: list[BaseException], server: bool) -> None:
    """Start `workers` (each closes its end of its pipe here), and first the fork server
    if `server`; a failure is put in `failed`, for the drivers to raise.

    SIGINT is blocked in this thread, so the fork server starts with it blocked (a mask
    survives fork and exec): a Ctrl-C while it imports (it ignores SIGINT only once it
    serves) printed its KeyboardInterrupt traceback under the rebuild's message. Its
    workers unblock it (`_worker`); this process's main thread still receives it."""
    try:
        # The resource tracker first: starting it unblocks SIGINT in the calling thread.
        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        if server:
            _start_forkserver()
        for worker in workers:
            worker.start()
    except BaseException as exc:
        failed.append(exc)
    finally:
        for _, child in pipes:
            child.close()


def _start_forkserver() -> None:
    """Start the fork server with this process's module path, and only it (Python 3.11's
    server ignores the one `multiprocessing` hands it: a worktree or a script that put its
    checkout on `sys.path` would get the installed modules in its workers, and `-c` puts
    the working directory first), and the main script's path, which the server marks as
    its main module without running it (`rebuild_preload`)."""
    main = spawn.get_preparation_data("rebuild").get("init_main_from_path")
    # The server runs as `python -c`, which puts its working directory first: safe-path
    # mode keeps it off, so a checkout in the working directory does not shadow this
    # process's modules ("" on this process's path is its working directory: kept as such).
    wanted = {"PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path),
              "PYTHONSAFEPATH": "1"}
    if main is not None:
        wanted[MAIN_PATH] = main
    before = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        forkserver.ensure_running()
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def _forkserver_running() -> bool:
    return getattr(forkserver._forkserver, "_forkserver_pid", None) is not None


def _stop_forkserver() -> None:
    stop = getattr(forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()
