"""The distributed benches' CPU accounting (tests/bench/cpu.py): a server whose workers come
and go (PostgreSQL's backends) is counted whole, once; the per-decision figures add up.
Real processes burning real CPU, no mocks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from tests.bench import bench_api_latency, cpu

# A "server" that forks workers on command, like a postmaster: each worker burns CPU
# (process time, so a busy machine does not change the figure) and the parent reaps it.
SERVER = textwrap.dedent("""
    import os, signal, sys, time

    def burn(seconds):
        start = time.process_time()
        while time.process_time() - start < seconds:
            pass

    def say(word):
        sys.stdout.write(word + "\\n")
        sys.stdout.flush()

    signal.signal(signal.SIGUSR1, lambda *_: None)
    held = None
    for line in sys.stdin:
        verb, arg = (line.split() + [""])[:2]
        if verb == "hold":  # burns arg, then again once told to go, then ends
            held = os.fork()
            if held == 0:
                burn(float(arg)); say("half"); signal.pause(); burn(float(arg)); os._exit(0)
        elif verb == "go":
            os.kill(held, signal.SIGUSR1); os.waitpid(held, 0); say("reaped")
        elif verb == "spawn":  # burns arg and lives on
            if os.fork() == 0:
                burn(float(arg)); say("burnt"); signal.pause(); os._exit(0)
        elif verb == "run":  # burns arg and ends, reaped
            child = os.fork()
            if child == 0:
                burn(float(arg)); os._exit(0)
            os.waitpid(child, 0); say("reaped")
""")


@pytest.fixture
def server() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        yield proc
    finally:
        for pid in cpu.children(proc.pid):
            subprocess.run(["kill", "-9", str(pid)], check=False)
        proc.kill()
        proc.wait()


def _ask(proc: subprocess.Popen[str], command: str, answer: str) -> None:
    assert proc.stdin and proc.stdout
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == answer


def test_workers_that_end_or_start_inside_the_window_are_counted_once(
        server: subprocess.Popen[str]) -> None:
    group = cpu.Group("server", [server.pid], parent=server.pid)
    accounting = cpu.Accounting([group])
    _ask(server, "hold 0.2", "half")  # 0.2 s before the window: not counted
    accounting.start()
    _ask(server, "go", "reaped")  # its other 0.2 s inside, then it ends (reaped)
    _ask(server, "spawn 0.3", "burnt")  # a worker started inside, alive at the end
    _ask(server, "run 0.1", "reaped")  # started and ended inside
    window = accounting.stop()
    # 0.6 s burnt inside the window, plus the server's own few ms of reading commands;
    # summing per-process deltas instead would add the first worker's 0.2 s before it.
    assert 0.57 <= window.groups["server"] <= 0.7, window.groups


def test_per_decision_figures_add_up_to_the_total_beside_the_machine() -> None:
    window = cpu.Window(wall=2.0, groups={"registration": 1.0, "kafka": 0.5}, machine=3.0,
                        cores=2)
    fig = window.report(decided=100, client_seconds=0.1)
    assert fig["registration_cpu_ms_per_decided"] == 10.0
    assert fig["kafka_cpu_ms_per_decided"] == 5.0
    assert fig["client_cpu_ms_per_decided"] == 1.0
    assert fig["total_cpu_ms_per_decided"] == 16.0
    assert fig["registration_cores"] == 0.5
    assert fig["total_cores"] == 0.8
    assert fig["machine_busy_cores"] == 1.5
    assert fig["other_jobs_cores"] == 0.7  # the machine's busy time nobody counted
    assert fig["machine_cores"] == 2
    assert any("of the machine's 2 cores" in line for line in window.lines(100, 0.1))


def test_the_servers_are_found_by_the_ports_they_listen_on() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        groups = cpu.server_groups({"registration": 1}, port, None)
        assert [(g.name, g.pids) for g in groups] == [("registration", [1]),
                                                      ("kafka", [os.getpid()])]
    assert bench_api_latency.kafka_port("127.0.0.1:9092,other:9093") == 9092
    assert bench_api_latency.postgres_port(
        "postgresql+asyncpg://dealreg:pw@127.0.0.1:54321/bench_1") == 54321
    assert bench_api_latency.postgres_port("postgresql+asyncpg://u@localhost/db") == 5432


def test_live_threads_of_one_kind_are_summed() -> None:
    """Numbered threads of one kind (a JVM's request handlers) add up under one name, so
    a broker's request work shows apart from its compiler and collector threads."""
    import ctypes
    import threading
    import time

    libc = ctypes.CDLL(None)
    burnt = threading.Barrier(3)
    done = threading.Event()

    def burner(n: int) -> None:
        libc.prctl(15, f"handler-{n}".encode(), 0, 0, 0)
        start = time.thread_time()
        while time.thread_time() - start < 0.15:
            pass
        burnt.wait()
        done.wait()

    threads = [threading.Thread(target=burner, args=(n,), daemon=True) for n in (1, 2)]
    for thread in threads:
        thread.start()
    burnt.wait()
    try:
        kinds = cpu.thread_cpu(os.getpid())
        assert 0.28 <= kinds["handler"] <= 0.4, kinds
    finally:
        done.set()
        for thread in threads:
            thread.join()
