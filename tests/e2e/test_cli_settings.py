"""Settings that cannot surprise: every command as an operator runs it (a real process),
with the `DEALREG_*` variables the README lists, against real Kafka and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

import dealreg
from tests.support.processes import free_port
from tests.support.servers import ServerHandle

REPO = Path(__file__).resolve().parents[2]


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env.update({f"DEALREG_{k.upper()}": v for k, v in settings.items()})
    env["COLUMNS"] = "250"
    env["PYTHONPATH"] = str(REPO)
    return env


def run(cwd: Path, *args: str, timeout: float = 120, **settings: str
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dealreg", *args], cwd=cwd,
                          env=_env(**settings), capture_output=True, text=True,
                          timeout=timeout, check=False)


@contextmanager
def running(cwd: Path, *args: str, **settings: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "dealreg", *args], cwd=cwd,
                            env=_env(**settings), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(proc: subprocess.Popen[str], url: str, path: str = "/readyz") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never became ready")


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    result = run(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"dealreg {dealreg.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", dealreg.__version__)


def test_dev_binds_the_environments_host_port_and_data_dir_and_the_image_healthcheck_passes(
        tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "elsewhere"
    with running(tmp_path, "dev", host="127.0.0.1", port=str(port),
                 data_dir=str(data), admin_token="t") as proc:
        wait_healthy(proc, f"http://127.0.0.1:{port}")
        assert (data / "eventlog.sqlite3").exists()
        assert not (tmp_path / "dealreg-data").exists()
        # The Dockerfile's HEALTHCHECK is Python (the slim image has no curl): run it.
        dockerfile = (REPO / "Dockerfile").read_text()
        check = re.search(r"HEALTHCHECK .*?CMD (\[.*?\])\n", dockerfile, re.S)
        assert check, "no HEALTHCHECK"
        argv = json.loads(check.group(1))
        assert argv[0] == "python"
        ok = subprocess.run([sys.executable, *argv[1:]], env={"DEALREG_PORT": str(port)},
                            timeout=30, check=False)
        assert ok.returncode == 0
    bad = subprocess.run([sys.executable, *argv[1:]], env={"DEALREG_PORT": str(port)},
                         timeout=30, check=False, capture_output=True)
    assert bad.returncode != 0  # the check fails once nothing answers
    assert re.search(r"^EXPOSE 8080$", dockerfile, re.M)
    assert re.search(r"DEALREG_HOST=0\.0\.0\.0", dockerfile)


def test_a_flag_overrides_the_environment(tmp_path: Path) -> None:
    env_port, flag_port = free_port(), free_port()
    with running(tmp_path, "dev", "--port", str(flag_port), "--data-dir", str(tmp_path / "d"),
                 port=str(env_port), admin_token="t") as proc:
        wait_healthy(proc, f"http://127.0.0.1:{flag_port}")
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", env_port)) != 0


def test_a_busy_port_fails_dev_at_once_and_clearly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(tmp_path, "dev", "--data-dir", str(tmp_path / "d"), port=str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in one_line(result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "d" / "readmodel.sqlite3").exists()  # nothing migrated


def test_only_a_database_url_is_an_ambiguous_backend_and_nothing_is_created(
        tmp_path: Path) -> None:
    result = run(tmp_path, "db", "upgrade",
                 database_url="postgresql+asyncpg://ops:hunter2@db.example:5432/dealreg")
    assert result.returncode == 2, result.stderr
    message = one_line(result.stderr)
    assert "DEALREG_DATABASE_URL is set but DEALREG_BACKEND is not" in message
    assert "DEALREG_BACKEND=distributed" in message
    assert "hunter2" not in result.stderr + result.stdout
    assert not (tmp_path / "dealreg-data").exists()
    # Embedded explicitly, but no data directory there: refused, not created.
    result = run(tmp_path, "db", "upgrade", backend="embedded")
    assert result.returncode == 2
    assert "no embedded data directory" in one_line(result.stderr)
    assert not (tmp_path / "dealreg-data").exists()
    result = run(tmp_path, "projections", "rebuild")
    assert result.returncode == 2 and not (tmp_path / "dealreg-data").exists()


def test_an_unreachable_database_is_named_with_its_password_masked(tmp_path: Path) -> None:
    port = free_port()
    result = run(tmp_path, "db", "upgrade", backend="distributed", connect_timeout_seconds="3",
                 database_url=f"postgresql+asyncpg://ops:hunter2@127.0.0.1:{port}/dealreg")
    assert result.returncode == 1
    message = one_line(result.stderr)
    assert f"cannot reach the database postgresql+asyncpg://ops:***@127.0.0.1:{port}/dealreg " \
           f"(127.0.0.1:{port})" in message
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_an_unreachable_kafka_is_named(tmp_path: Path) -> None:
    port = free_port()
    for args in (("topics", "create"), ("serve", "adjudication", "--port", str(free_port()))):
        result = run(tmp_path, *args, kafka_bootstrap_servers=f"127.0.0.1:{port}",
                     connect_timeout_seconds="3")
        assert result.returncode == 1, (args, result.stderr)
        assert f"cannot reach Kafka at 127.0.0.1:{port}" in one_line(result.stderr), args
        assert "Traceback" not in result.stderr + result.stdout


def test_db_upgrade_names_the_database_with_the_password_masked(
        tmp_path: Path, fresh_database: str) -> None:
    url = make_url(fresh_database)
    secret = url.password or "no-password-given"
    result = run(tmp_path, "db", "upgrade", backend="distributed", database_url=fresh_database)
    assert result.returncode == 0, result.stderr
    text = one_line(result.stderr)
    assert f"{url.host}:{url.port}/{url.database}" in text
    assert secret not in text
    assert "upgraded from (empty)" in text
    again = run(tmp_path, "db", "upgrade", backend="distributed", database_url=fresh_database)
    assert again.returncode == 0 and "is current" in again.stderr


async def test_serve_binds_the_configured_host_before_migrating_and_warns_of_missing_owners(
        tmp_path: Path, fresh_database: str, kafka_server: ServerHandle, unique: str) -> None:
    settings = {"kafka_bootstrap_servers": kafka_server.url, "database_url": fresh_database,
                "topic_prefix": f"cli-{unique}", "topic_partitions": "2",
                "admin_token": "t"}
    dsn = make_url(fresh_database).set(drivername="postgresql").render_as_string(
        hide_password=False)

    async def tables() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema='public'"))
        finally:
            await conn.close()

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run(tmp_path, "serve", "registration", host="127.0.0.1",
                     port=str(busy.getsockname()[1]), **settings)
    assert result.returncode == 1 and "cannot listen" in result.stderr
    assert await tables() == 0  # refused before any migration

    port = free_port()
    with running(tmp_path, "serve", "registration", host="127.0.0.2", port=str(port),
                 **settings) as proc:
        wait_healthy(proc, f"http://127.0.0.2:{port}", "/healthz")
        with socket.socket() as probe:  # bound to the configured address, not all
            assert probe.connect_ex(("127.0.0.1", port)) != 0
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    warning = next(json.loads(line) for line in output.splitlines()
                   if "escalation_owners_missing" in line)
    assert warning["owners"] == ["cm-1", "dir-1"] and warning["level"] == "warning"
    assert "dealreg admin owners put" in warning["detail"]
    assert await tables() > 0


async def test_serve_stops_each_role_on_sigterm_with_one_line_exit_0_and_no_stack_trace(
        tmp_path: Path, fresh_database: str, kafka_server: ServerHandle, unique: str) -> None:
    """The distributed roles as an orchestrator stops them (SIGTERM): one JSON `stopped`
    line, exit 0 (the default action of SIGTERM used to end them, 143), no stack trace;
    Ctrl-C (SIGINT) on one of them is exit 130, as `dev`'s."""
    settings = {"kafka_bootstrap_servers": kafka_server.url, "database_url": fresh_database,
                "topic_prefix": f"stop-{unique}", "topic_partitions": "2",
                "adjudicator_group": f"adj-{unique}", "projections_group": f"proj-{unique}",
                "admin_token": "t"}
    stops = {"registration": signal.SIGTERM, "adjudication": signal.SIGTERM,
             "projections": signal.SIGINT}
    for role, sig in stops.items():
        port = free_port()
        with running(tmp_path, "serve", role, port=str(port), **settings) as proc:
            wait_healthy(proc, f"http://127.0.0.1:{port}")
            proc.send_signal(sig)
            output = proc.communicate(timeout=60)[0]
        code = 130 if sig == signal.SIGINT else 0
        assert proc.returncode == code, (role, proc.returncode, output[-3000:])
        assert "Traceback" not in output and "CancelledError" not in output, output[-6000:]
        stopped = [json.loads(line) for line in output.splitlines()
                   if line.startswith("{") and json.loads(line)["event"] == "stopped"]
        assert [(s["signal"], s["exit_code"]) for s in stopped] == [(sig.name, code)], output
