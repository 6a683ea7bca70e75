"""Stops a test server once the process that owns it is gone, however it ended.

``python -m tests.support.watchdog OWNER_PID OWNER_START -- COMMAND...`` waits until the
process OWNER_PID (whose start time in clock ticks, /proc/PID/stat field 22, is
OWNER_START: a recycled pid is not the owner) has ended, then runs COMMAND (the server's
stop script) and exits. A line ``done`` on its stdin means the owner stopped the server
itself: the watchdog exits without running anything.

``tests/support/servers.py`` starts one per server it starts from the deploy/ scripts, in
its own session (a Ctrl-C or a signal to the test run's process group does not reach it),
before the server starts, so a run killed even while a server is starting (``kill -9``,
an OOM kill, a CI job's timeout) leaves no Kafka broker or PostgreSQL server behind: its
``atexit`` clean-up never ran in those cases. ``tests/integration/test_servers.py`` holds it.
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

POLL_S = 0.2
"""How often the owner's pid is looked at (the stop itself then takes a few seconds)."""


def start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), None when it is gone or a
    zombie (ended, not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (the command) is in parentheses and may hold spaces: split after its end.
    fields = stat[stat.rindex(")") + 2:].split()
    state, started = fields[0], fields[19]
    return None if state in ("Z", "X") else started


def watch(owner: int, owner_start: str, command: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    listening = True
    while start_time(owner) == owner_start:
        if not listening:
            select.select([], [], [], POLL_S)
            continue
        readable, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if readable:
            line = sys.stdin.readline()
            if line.strip() == "done":
                return 0
            if not line:  # the owner's end of the pipe closed: look at its pid only
                listening = False
    return subprocess.run(command, stdin=subprocess.DEVNULL, check=False).returncode


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: python -m tests.support.watchdog OWNER_PID OWNER_START -- COMMAND...",
              file=sys.stderr)
        return 2
    return watch(int(argv[0]), argv[1], argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
