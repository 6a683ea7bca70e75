"""CPU accounting for the distributed benches: every process that takes part in a decision.

The three `dealreg serve` processes are not the whole cost of a decision: the Kafka broker
(one java process) and PostgreSQL (the postmaster and a backend per connection, plus its
writer, checkpointer and autovacuum processes) run on the same 2 cores. `Group` sums the
user + system CPU of a set of processes read from /proc; `Accounting` samples every group
and the machine as a whole around a measured window and reports, per group, milliseconds
of CPU per decided registration and cores used, the total beside the machine's cores, and
what the rest of the machine (other jobs) used in the same window.

PostgreSQL's backends come and go. A process's CPU in /proc/<pid>/stat includes its
*waited-for* children (cutime, cstime), and the postmaster waits for every backend it
forked, so "the postmaster with its reaped children, plus every live child" is a total
that only grows: a backend's CPU moves from the live sum to the postmaster's when it ends,
and nothing is counted twice or lost. (Subtracting per-pid samples instead would count an
ended backend's whole life once more in the postmaster.)
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        # The command name (field 2) may hold spaces and parentheses: split after the last.
        return stat.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, its threads, and its waited-for children."""
    fields = _stat_fields(pid)
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICKS


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU per kind of thread of a process (its threads' names with their numbers taken
    out: a JVM's "data-plane-kafka-request-handler-3" and "-5" are one kind), so a
    broker's request handling shows apart from its compiler and collector threads."""
    out: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat", encoding="ascii",
                      errors="replace") as stat:
                text = stat.read()
        except OSError:
            continue
        name = _thread_kind(text[text.index("(") + 1:text.rindex(")")])
        fields = text.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def _thread_kind(name: str) -> str:
    return re.sub(r"[-_ #]*\d+$", "", name.strip()) or name


def children(ppid: int) -> list[int]:
    """The live processes whose parent is `ppid`."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if int(_stat_fields(int(name))[1]) == ppid:
                out.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def listening_pid(port: int) -> int | None:
    """The process listening on a TCP port of this machine (/proc/net/tcp{,6})."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as rows:
                lines = list(rows)[1:]
        except OSError:
            continue
        for row in lines:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    if not inodes:
        return None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{name}/fd"):
                link = os.readlink(f"/proc/{name}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(name)
        except OSError:
            continue
    return None


@dataclass
class Group:
    """Processes whose CPU is summed: `pids`, and with `parent` every live child of it too
    (the parent itself belongs in `pids`; its reaped children are in its own figure)."""

    name: str
    pids: list[int]
    parent: int | None = None
    threads: bool = False  # also break its CPU down by kind of thread (`thread_cpu`)

    def by_thread(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid in self.pids if self.threads else ():
            for kind, seconds in thread_cpu(pid).items():
                out[kind] = out.get(kind, 0.0) + seconds
        return out

    def seconds(self) -> float:
        """CPU so far; a process that has ended is left out (for a child of `parent`, its
        CPU is in the parent's figure once the parent reaped it)."""
        pids = set(self.pids)
        if self.parent is not None:
            pids.update(children(self.parent))
        total = 0.0
        for pid in pids:
            try:
                total += cpu_seconds(pid)
            except (OSError, IndexError, ValueError):
                continue
        return total


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (every core, all processes), from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        cols = stat.readline().split()
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    values = [int(v) for v in cols[1:9]]
    return (sum(values) - values[3] - values[4]) / _TICKS


@dataclass
class Window:
    """The CPU of each group over one measured window (see `Accounting`)."""

    wall: float
    groups: dict[str, float]  # seconds of CPU per group
    machine: float  # busy seconds of the whole machine
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    threads: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per group broken down by thread: kind of thread -> seconds of CPU."""

    def report(self, decided: int, client_seconds: float | None = None) -> dict[str, float]:
        """Flat figures: `<group>_cpu_ms_per_decided`, `<group>_cores`, the totals, the
        machine's busy cores and what other jobs used (machine less the counted ones)."""
        groups = dict(self.groups)
        if client_seconds is not None:
            groups["client"] = client_seconds
        per = max(1, decided)
        wall = max(1e-9, self.wall)
        out: dict[str, float] = {}
        for name, seconds in groups.items():
            out[f"{name}_cpu_ms_per_decided"] = round(seconds * 1000 / per, 3)
            out[f"{name}_cores"] = round(seconds / wall, 3)
        counted = sum(groups.values())
        out["total_cpu_ms_per_decided"] = round(counted * 1000 / per, 3)
        out["total_cores"] = round(counted / wall, 3)
        out["machine_busy_cores"] = round(self.machine / wall, 3)
        out["other_jobs_cores"] = round(max(0.0, self.machine - counted) / wall, 3)
        out["machine_cores"] = self.cores
        for group, kinds in self.threads.items():
            for kind, seconds in sorted(kinds.items(), key=lambda kv: -kv[1])[:8]:
                out[f"{group}_thread_{kind}_cpu_ms_per_decided"] = round(seconds * 1000 / per,
                                                                         3)
        return out

    def lines(self, decided: int, client_seconds: float | None = None) -> list[str]:
        fig = self.report(decided, client_seconds)
        names = [*self.groups, *(["client"] if client_seconds is not None else [])]
        rows = []
        for n in names:
            rows.append(f"    {n:13s} {fig[f'{n}_cpu_ms_per_decided']:7.2f} ms CPU/decided "
                        f"{fig[f'{n}_cores']:5.2f} cores")
            kinds = sorted(self.threads.get(n, {}).items(), key=lambda kv: -kv[1])
            if kinds:
                rows.append("      threads (ms/decided): " + ", ".join(
                    f"{kind} {seconds * 1000 / max(1, decided):.2f}"
                    for kind, seconds in kinds[:8] if seconds > 0))
        rows.append(f"    {'total':13s} {fig['total_cpu_ms_per_decided']:7.2f} ms CPU/decided "
                    f"{fig['total_cores']:5.2f} of the machine's {self.cores} cores; machine "
                    f"busy {fig['machine_busy_cores']:.2f} cores (other jobs "
                    f"{fig['other_jobs_cores']:.2f}); load average "
                    f"{os.getloadavg()[0]:.2f}")
        return rows


class Accounting:
    """`start()` before the measured window, `stop()` after it: a `Window`."""

    def __init__(self, groups: list[Group]) -> None:
        self.groups = groups
        self._before: list[float] = []
        self._threads: list[dict[str, float]] = []
        self._machine = 0.0
        self._t0 = 0.0
        self.last: dict[str, float] = {}  # the last window's report, set by its user

    def start(self) -> None:
        self._before = [g.seconds() for g in self.groups]
        self._threads = [g.by_thread() for g in self.groups]
        self._machine = machine_busy_seconds()
        self._t0 = time.perf_counter()

    def stop(self) -> Window:
        wall = time.perf_counter() - self._t0
        after = [g.seconds() for g in self.groups]
        threads = {}
        for group, before in zip(self.groups, self._threads, strict=True):
            if group.threads:
                threads[group.name] = {kind: seconds - before.get(kind, 0.0)
                                       for kind, seconds in group.by_thread().items()}
        return Window(wall=wall,
                      groups={g.name: a - b for g, a, b in zip(self.groups, after, self._before,
                                                               strict=True)},
                      machine=machine_busy_seconds() - self._machine, threads=threads)


def server_groups(services: dict[str, int], kafka_port: int | None,
                  postgres_port: int | None) -> list[Group]:
    """One group per `serve` process (name -> pid), the Kafka broker and PostgreSQL (found
    by the ports they listen on; a server not found on this machine is left out). The
    servers must be the bench's own (deploy/ scripts): a shared one counts its other
    users too, and one in a container is seen as the process that forwards its port."""
    groups = [Group(name, [pid]) for name, pid in services.items()]
    kafka = listening_pid(kafka_port) if kafka_port else None
    if kafka:
        groups.append(Group("kafka", [kafka], threads=True))
    postgres = listening_pid(postgres_port) if postgres_port else None
    if postgres:
        groups.append(Group("postgres", [postgres], parent=postgres))
    return groups
