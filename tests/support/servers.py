"""Real Kafka and PostgreSQL servers for the test suite (pytest-independent).

Tests never mock Kafka or PostgreSQL. ``start_kafka()`` / ``start_postgres()`` find a real
server in this order:

1. the environment: ``DEALREG_TEST_KAFKA_BOOTSTRAP_SERVERS`` / ``DEALREG_TEST_DATABASE_URL``
   are used as they are (CI, or ``set -a; . .services/env; set +a`` after
   ``deploy/services.sh up``);
2. a Docker engine that answers: testcontainers (``apache/kafka:4.1.1`` in KRaft mode,
   ``postgres:15``); set ``DEALREG_TEST_DOCKER=0`` to skip this step;
3. otherwise the project's own scripts ``deploy/kafka.sh`` / ``deploy/postgres.sh``, started
   in a fresh temporary directory and stopped (and removed) by ``ServerHandle.stop()``, or,
   should the owner process end without stopping it (``kill -9``, a CI timeout), by a
   watchdog process (``tests/support/watchdog.py``) within seconds of the owner's end.
   (Testcontainers' own reaper container does that for step 2.)

No server is a hard error (``RuntimeError``): the tests must fail loudly, never skip.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from tests.support.processes import free_port
from tests.support.watchdog import start_time

__all__ = [
    "DATABASE_URL_ENV",
    "KAFKA_BOOTSTRAP_ENV",
    "ServerHandle",
    "create_database",
    "start_kafka",
    "start_postgres",
]

KAFKA_BOOTSTRAP_ENV = "DEALREG_TEST_KAFKA_BOOTSTRAP_SERVERS"
DATABASE_URL_ENV = "DEALREG_TEST_DATABASE_URL"
DOCKER_SWITCH_ENV = "DEALREG_TEST_DOCKER"

KAFKA_IMAGE = "apache/kafka:4.1.1"
POSTGRES_IMAGE = "postgres:15"

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"

# Cold start includes fetching the Kafka jars with Maven (seconds, or minutes on a slow link).
_KAFKA_START_TIMEOUT_S = 900.0
_POSTGRES_START_TIMEOUT_S = 180.0
_STOP_TIMEOUT_S = 60.0
_KAFKA_READY_TIMEOUT_S = 90.0

_T = TypeVar("_T")


class ServerHandle:
    """A running server: ``url`` to connect to, ``stop()`` to release it (idempotent).

    ``url`` is a Kafka bootstrap string (``host:port``) or a SQLAlchemy asyncpg URL
    (``postgresql+asyncpg://user[:password]@host:port/dealreg``). ``source`` says where it
    came from: ``"env"``, ``"docker"`` or ``"local"``.
    """

    def __init__(self, url: str, source: str, stopper: Callable[[], None] | None = None) -> None:
        self.url: str = url
        self.source: str = source
        self._stopper = stopper
        self._lock = threading.Lock()
        if stopper is not None:
            atexit.register(self.stop)  # safety net if the caller never stops it

    def stop(self) -> None:
        with self._lock:
            stopper, self._stopper = self._stopper, None
        if stopper is not None:
            atexit.unregister(self.stop)
            stopper()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ServerHandle(url={self.url!r}, source={self.source!r})"


# --------------------------------------------------------------------------------- Kafka
def start_kafka(owner_pid: int | None = None) -> ServerHandle:
    """A real Kafka broker (bootstrap ``host:port`` in ``.url``); raises RuntimeError if none.
    ``owner_pid``: the process whose end stops a broker started here (default: this one)."""
    bootstrap = os.environ.get(KAFKA_BOOTSTRAP_ENV, "").strip()
    if bootstrap:
        return ServerHandle(bootstrap, "env")
    errors: list[str] = []
    if _docker_available():
        try:
            return _start_kafka_docker()
        except Exception as exc:
            errors.append(f"testcontainers ({KAFKA_IMAGE}): {exc!r}")
    try:
        return _start_local_again("kafka", _KAFKA_START_TIMEOUT_S, KAFKA_BOOTSTRAP_ENV, owner_pid)
    except Exception as exc:
        errors.append(f"deploy/kafka.sh: {exc}")
    raise RuntimeError(
        "No Kafka broker for the tests. Set "
        f"{KAFKA_BOOTSTRAP_ENV}=host:port, run a Docker engine, or install Java 17 + Maven "
        "(deploy/kafka.sh needs them).\n" + "\n".join(errors)
    )


def _start_kafka_docker() -> ServerHandle:
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("testcontainers is not installed (pip install -e '.[test]')") from exc

    # The testcontainers KafkaContainer drives the confluentinc/cp-kafka image's own start
    # scripts and does not work with apache/kafka, so configure that image directly. The
    # broker must advertise the address clients use, so the container listens on the same
    # port number as the host side of the mapping.
    port = free_port()
    container = DockerContainer(KAFKA_IMAGE)
    host = container.get_docker_client().host()
    container.with_bind_ports(port, port)
    for key, value in {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://0.0.0.0:{port},CONTROLLER://127.0.0.1:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{host}:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@127.0.0.1:9093",
        "KAFKA_NUM_PARTITIONS": "12",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "12",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS": "12",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }.items():
        container.with_env(key, value)
    container.start()
    bootstrap = f"{host}:{port}"
    try:
        _run_coroutine(lambda: _wait_kafka_ready(bootstrap, _KAFKA_READY_TIMEOUT_S))
    except BaseException as exc:
        logs = _container_logs(container)
        container.stop()
        raise RuntimeError(
            f"Kafka container not ready at {bootstrap}; last log lines:\n{logs}"
        ) from exc
    return ServerHandle(bootstrap, "docker", container.stop)


async def _wait_kafka_ready(bootstrap: str, timeout_s: float) -> None:
    """Describe-cluster and a group-coordinator look-up both succeed (retried)."""
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(admin.start(), 10)
            cluster = await asyncio.wait_for(admin.describe_cluster(), 10)
            if cluster.get("brokers"):
                await asyncio.wait_for(admin.find_coordinator("dealreg-readiness-probe"), 10)
                return
        except Exception as exc:
            last = exc
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
    raise RuntimeError(f"Kafka at {bootstrap} not ready after {timeout_s:.0f} s: {last!r}")


# ---------------------------------------------------------------------------- PostgreSQL
def start_postgres(owner_pid: int | None = None) -> ServerHandle:
    """A real PostgreSQL server; ``.url`` is a ``postgresql+asyncpg://`` URL of its
    ``dealreg`` database. Raises RuntimeError if none can be had. ``owner_pid``: the process
    whose end stops a server started here (default: this one)."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        return ServerHandle(_asyncpg_sqlalchemy_url(url), "env")
    errors: list[str] = []
    if _docker_available():
        try:
            return _start_postgres_docker()
        except Exception as exc:
            errors.append(f"testcontainers ({POSTGRES_IMAGE}): {exc!r}")
    try:
        return _start_local_again("postgres", _POSTGRES_START_TIMEOUT_S, DATABASE_URL_ENV,
                                  owner_pid)
    except Exception as exc:
        errors.append(f"deploy/postgres.sh: {exc}")
    raise RuntimeError(
        "No PostgreSQL server for the tests. Set "
        f"{DATABASE_URL_ENV}=postgresql+asyncpg://..., run a Docker engine, or install the "
        "server binaries (apt-get install -y postgresql).\n" + "\n".join(errors)
    )


def _start_postgres_docker() -> ServerHandle:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:
        try:
            from testcontainers.postgres import PostgresContainer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "testcontainers is not installed (pip install -e '.[test]')"
            ) from exc

    container = PostgresContainer(
        POSTGRES_IMAGE, username="postgres", password="postgres", dbname="dealreg", driver="asyncpg"
    )
    # Throw-away test server only: durability off for speed.
    container.with_command(
        "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        " -c max_connections=200"
    )
    container.start()
    url = _asyncpg_sqlalchemy_url(container.get_connection_url())
    return ServerHandle(url, "docker", container.stop)


async def create_database(server_url: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``server_url`` and return the
    ``postgresql+asyncpg://`` URL of the new database (one database per test module)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise ValueError(f"invalid database name {name!r} (letters, digits, _; max 63)")
    url = make_url(_asyncpg_sqlalchemy_url(server_url))
    admin_dbs = [db for db in (url.database, "dealreg", "postgres") if db and db != name]
    conn: Any = None
    last: BaseException | None = None
    for db in dict.fromkeys(admin_dbs):
        dsn = url.set(drivername="postgresql", database=db).render_as_string(hide_password=False)
        try:
            conn = await asyncpg.connect(dsn, timeout=30)
            break
        except asyncpg.InvalidCatalogNameError as exc:
            last = exc
    if conn is None:
        raise RuntimeError(f"cannot connect to any maintenance database on {server_url}: {last!r}")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False
    )


def _asyncpg_sqlalchemy_url(url: str) -> str:
    """``postgres://``, ``postgresql://`` or ``postgresql+driver://`` → ``postgresql+asyncpg://``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return f"postgresql+asyncpg://{rest}"


# ------------------------------------------------------------------ local deploy/ scripts
def _start_local_again(kind: str, timeout_s: float, env_key: str,
                       owner_pid: int | None = None) -> ServerHandle:
    """`_start_local`, started afresh (new state, new ports) when the server lost a port it
    was given: the deploy scripts pick free ports and the server binds them later, and on a
    busy machine another process can take one in between (BindException, session 29)."""
    for attempt in range(3):
        try:
            return _start_local(kind, timeout_s, env_key, owner_pid)
        except RuntimeError as exc:
            if "already in use" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _start_local(kind: str, timeout_s: float, env_key: str,
                 owner_pid: int | None = None) -> ServerHandle:
    """Runs ``deploy/<kind>.sh start`` in a fresh temporary directory, watched (first) by a
    watchdog that runs its ``stop`` once ``owner_pid`` (default: this process) has ended."""
    script = DEPLOY_DIR / f"{kind}.sh"
    if not script.is_file():
        raise RuntimeError(f"{script} is missing")
    state = Path(tempfile.mkdtemp(prefix="dealreg-servers-"))
    watchdog = _start_watchdog(
        owner_pid or os.getpid(),
        ["bash", "-c", 'bash "$0" stop "$1"; rm -rf "$1"', str(script), str(state)])

    def stop() -> None:
        try:
            subprocess.run(
                ["bash", str(script), "stop", str(state)],
                capture_output=True,
                timeout=_STOP_TIMEOUT_S,
                check=False,
            )
        finally:
            shutil.rmtree(state, ignore_errors=True)
            _dismiss_watchdog(watchdog)

    try:
        proc = subprocess.run(
            ["bash", str(script), "start", str(state)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        stop()
        raise RuntimeError(f"{script.name} start timed out after {timeout_s:.0f} s") from exc
    env_file = state / f"{kind}.env"
    if proc.returncode != 0 or not env_file.is_file():
        stop()
        raise RuntimeError(
            f"{script.name} start {state} failed (exit {proc.returncode}):\n"
            f"{_tail(proc.stdout)}\n{_tail(proc.stderr, 80)}"
        )
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    url = values.get(env_key, "").strip()
    if not url:
        stop()
        raise RuntimeError(f"{env_file} has no {env_key}")
    return ServerHandle(url, "local", stop)


def _start_watchdog(owner_pid: int, command: list[str]) -> subprocess.Popen[bytes]:
    """``tests/support/watchdog.py``: runs ``command`` once ``owner_pid`` has ended. In its own
    session, so the signals that end a test run (Ctrl-C, a kill of its process group) spare
    it; its stdin is the pipe on which ``_dismiss_watchdog`` sends ``done``."""
    started = start_time(owner_pid)
    if started is None:
        raise RuntimeError(f"owner process {owner_pid} is not running")
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("watchdog.py")), str(owner_pid),
         started, "--", *command],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _dismiss_watchdog(watchdog: subprocess.Popen[bytes]) -> None:
    """The server was stopped by its owner: the watchdog exits without doing anything."""
    try:
        assert watchdog.stdin is not None
        watchdog.stdin.write(b"done\n")
        watchdog.stdin.close()
        watchdog.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        watchdog.kill()
        watchdog.wait()


# --------------------------------------------------------------------------------- helpers
def _docker_available() -> bool:
    """True when a Docker engine answers (``docker info``, else the Docker SDK's ping)."""
    if os.environ.get(DOCKER_SWITCH_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    docker_cli = shutil.which("docker")
    if docker_cli:
        try:
            proc = subprocess.run(
                [docker_cli, "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                timeout=15,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            return proc.returncode == 0 and bool(proc.stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            return False
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return False
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _run_coroutine(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Runs a coroutine to completion on a private loop in a worker thread, so it works
    whether or not the caller's thread already runs an event loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _container_logs(container: Any) -> str:
    try:
        out, err = container.get_logs()
        return _tail((out or b"").decode(errors="replace") + (err or b"").decode(errors="replace"))
    except Exception as exc:
        return f"(no container logs: {exc!r})"


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
