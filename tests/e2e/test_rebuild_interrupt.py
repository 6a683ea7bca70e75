"""Ctrl-C during `dealreg projections rebuild`, as an operator's terminal sends it (SIGINT to
the whole process group: the command and its worker processes): a clear message, exit code
130, no process left behind, and a read model the next rebuild handles (its rows equal an
uninterrupted rebuild's)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.topics import Topics
from shared.readmodel.store import create_engine
from tests.integration.projections.projection_support import append_workload, snapshot
from tests.unit.projections.projection_workload import generate

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env.update(COLUMNS="250", PYTHONPATH=str(REPO))
    return env


def _as_a_terminals_foreground_job() -> None:
    """The child starts as a terminal's foreground job does: SIGINT's default action (a
    test run started in the background of a non-interactive shell, as `cmd &` in a script,
    ignores SIGINT, and an ignored signal stays ignored across exec: the rebuild then ran
    to its end through the Ctrl-C, exit 0, as in session 28's suites started that way) --
    but with SIGINT blocked, as a mask a parent thread left behind would leave it (a mask
    survives fork and exec too): the CLI unblocks it (`dealreg.cli.main`)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _rebuild(data: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dealreg", "projections", "rebuild", "--data-dir", str(data),
         "--batch", "200", *args],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=_as_a_terminals_foreground_job)


def _committed(data: Path) -> int:
    """Records the rebuild committed so far (their positions)."""
    try:
        with sqlite3.connect(data / "readmodel.sqlite3", timeout=0.2) as db:
            row = db.execute("SELECT coalesce(sum(position), 0) FROM projection_positions "
                             "WHERE projection = 'registrations'").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


def _wait_for_a_commit(data: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while _committed(data) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def _group_ends(pgid: int) -> bool:
    """Whether every process of the group is gone within 10 s."""
    for _ in range(100):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


async def _read_models(data: Path) -> dict[str, object]:
    engine = create_engine(f"sqlite+aiosqlite:///{data / 'readmodel.sqlite3'}")
    try:
        return await snapshot(engine)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_ctrl_c_stops_the_rebuild_with_a_message_and_exit_130_and_a_rerun_is_whole(
    tmp_path: Path, processes: str,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    log = EmbeddedEventLog(data / "eventlog.sqlite3")
    await log.start()
    topics = Topics.named("dealreg")
    await log.create_topics(topics.specs(12))
    workload = generate(8000, seed=3, accounts=2600, partners=300)
    await append_workload(log, topics, workload)
    await log.close()
    total = len(workload.records)

    proc = _rebuild(data, "--processes", processes)
    _wait_for_a_commit(data, proc)
    assert proc.poll() is None, f"finished before it could be interrupted: {proc.stdout}"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
    output, _ = await asyncio.to_thread(proc.communicate, timeout=120)
    said = " ".join(output.split())
    assert proc.returncode == 130, output
    assert "interrupted: the rebuild stopped after" in said, output
    assert f"of {total:,} records" in said and "run `dealreg projections rebuild` again" in said
    assert "Traceback" not in output, output
    assert _group_ends(proc.pid)  # the workers and the fork server are gone with it
    kept = _committed(data)
    assert 0 < kept < total  # whole batches with their positions, not the whole log

    rerun = _rebuild(data, "--processes", processes)
    output, _ = await asyncio.to_thread(rerun.communicate, timeout=300)
    assert rerun.returncode == 0, output
    interrupted_then_rerun = await _read_models(data)

    # The whole database: a WAL file left beside a new main file belongs to the old one
    # (SQLite then fails "disk I/O error"; the rerun's last connection usually removes it
    # at close, but not always under load: 2 of 2 variants failed so in a full suite).
    for name in ("readmodel.sqlite3", "readmodel.sqlite3-wal", "readmodel.sqlite3-shm"):
        (data / name).unlink(missing_ok=True)
    fresh = _rebuild(data, "--processes", "1")
    output, _ = await asyncio.to_thread(fresh.communicate, timeout=300)
    assert fresh.returncode == 0, output
    assert interrupted_then_rerun == await _read_models(data)
