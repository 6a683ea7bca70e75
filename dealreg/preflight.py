"""What a command checks before it does anything: which store it will touch, that the
choice is not ambiguous, that the port is free and the servers answer.

Every failure is an `OperatorError`: one sentence saying what is wrong and how to fix it,
printed by the CLI without a stack trace, exit code 2 (configuration) or 1 (unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import tempfile
from pathlib import Path

from shared.settings import Settings


class OperatorError(Exception):
    """A mistake or an outage an operator must fix; `exit_code` is the process's."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# `DEALREG_*` variables that are not `Settings` fields but are read elsewhere: `dealreg
# admin` (URL), `dealreg gateway`, deploy/kafka.sh, deploy/postgres.sh (PG_STAT_STATEMENTS),
# setup.py and the bench (COMPILED: the mypyc build) and the test suite's own.
_OTHER_VARIABLES = frozenset({"URL", "GATEWAY_COMMANDS_URL", "GATEWAY_QUERIES_URL",
                              "GATEWAY_TIMEOUT_SECONDS", "CACHE_DIR", "SCREENSHOTS",
                              "PG_STAT_STATEMENTS", "COMPILED"})
_OTHER_PREFIXES = ("TEST_", "PROPERTY_")


def unknown_variables(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """One warning per `DEALREG_*` variable no part of dealreg reads (a typo is otherwise
    silently ignored and its default used), with the nearest real name."""
    import difflib

    known = {name.upper() for name in Settings.model_fields} | _OTHER_VARIABLES
    warnings = []
    for variable in sorted(environ):
        name = variable.removeprefix("DEALREG_")
        if (name == variable or name in known or name.startswith(_OTHER_PREFIXES)):
            continue
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean DEALREG_{near[0]}?" if near else ""
        warnings.append(f"{variable} is not a dealreg setting and is ignored{hint}")
    return warnings


def masked_url(url: str) -> str:
    """The URL with its password replaced by `***` (safe to print and log)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"
    return parsed.render_as_string(hide_password=True)


def _host_port(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def describe_store(settings: Settings, *, kafka: bool = True) -> str:
    """One line naming the store a command will use (password masked)."""
    if settings.backend == "embedded":
        return f"embedded backend, data directory {settings.data_dir.resolve()}"
    return (f"distributed backend, database {masked_url(settings.database_url)}"
            + (f", Kafka {settings.kafka_bootstrap_servers}" if kafka else ""))


_DISTRIBUTED_ONLY = ("database_url", "kafka_bootstrap_servers")


def check_backend(settings: Settings, *, data_dir_must_exist: bool) -> None:
    """Refuse an ambiguous choice of store.

    - A distributed-only setting (`DEALREG_DATABASE_URL`, `DEALREG_KAFKA_BOOTSTRAP_SERVERS`)
      given while the backend is embedded only by default: the operator meant one of the two.
    - An embedded command on a data directory that does not exist: it would create an empty
      one where the operator expected data (`dealreg dev` creates it, and says so).
    """
    chosen = "backend" in settings.model_fields_set
    if settings.backend == "embedded" and not chosen:
        given = [f"DEALREG_{name.upper()}" for name in _DISTRIBUTED_ONLY
                 if name in settings.model_fields_set]
        if given:
            raise OperatorError(
                f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} set but "
                "DEALREG_BACKEND is not, so this command would use the embedded backend "
                f"({settings.data_dir}). Set DEALREG_BACKEND=distributed to use Kafka + "
                f"PostgreSQL, or DEALREG_BACKEND=embedded (or unset {given[0]}) to use the "
                "embedded data directory.")
    if settings.backend == "embedded" and data_dir_must_exist \
            and not settings.embedded_log_path.exists():
        raise OperatorError(
            f"no embedded data directory at {settings.data_dir.resolve()} (no eventlog.sqlite3 "
            "there). Pass --data-dir or set DEALREG_DATA_DIR to an existing one (`dealreg dev` "
            "creates one), or set DEALREG_BACKEND=distributed.")
    if settings.backend == "embedded" and data_dir_must_exist:
        check_data_files(settings.data_dir)


def bind_port(host: str, port: int) -> socket.socket:
    """Bind the HTTP socket now, before migrations or any connection: a busy port fails the
    start at once. The bound socket is handed to uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = ("another process listens there; stop it or choose another port "
                "(--port / DEALREG_PORT)") if exc.errno in (98, 48) else exc.strerror
        raise OperatorError(f"cannot listen on {host}:{port}: {hint}", exit_code=1) from None
    sock.set_inheritable(True)
    return sock


SQLITE_FILES = ("eventlog.sqlite3", "readmodel.sqlite3")
_SQLITE_HEADER = b"SQLite format 3\x00"


def check_data_files(data_dir: Path) -> None:
    """The embedded files that exist are SQLite databases (not damaged, not another
    program's): a clear refusal before SQLite's "file is not a database" deep in a start."""
    for name in SQLITE_FILES:
        path = data_dir / name
        try:
            with path.open("rb") as f:
                header = f.read(len(_SQLITE_HEADER))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OperatorError(f"cannot read {path.resolve()}: {exc.strerror}") from None
        if header and header != _SQLITE_HEADER:
            raise OperatorError(
                f"{path.resolve()} is not a SQLite database (damaged, or not dealreg's); "
                "restore the data directory from an export (`dealreg import`) or choose "
                "another --data-dir / DEALREG_DATA_DIR", exit_code=1)


def check_data_dir_writable(data_dir: Path) -> None:
    """SQLite writes its journal (-wal, -shm) beside the files: the directory must take a
    new file, whatever its mode says (root ignores modes; a read-only mount does not)."""
    try:
        fd, probe = tempfile.mkstemp(dir=data_dir, prefix=".dealreg-write-check-")
    except OSError as exc:
        raise OperatorError(
            f"the data directory {data_dir.resolve()} is not writable ({exc.strerror}); "
            "SQLite writes its journal beside the files: make it writable or choose another "
            "--data-dir / DEALREG_DATA_DIR") from None
    os.close(fd)
    os.unlink(probe)


def check_data_dir_free(settings: Settings) -> None:
    """The embedded data directory is usable (SQLite files, writable) and its log's lock
    is free (another `dealreg dev` on the same directory)."""
    check_data_files(settings.data_dir)
    check_data_dir_writable(settings.data_dir)
    lock = Path(f"{settings.embedded_log_path}.lock")
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OperatorError(
            f"the embedded data directory {settings.data_dir.resolve()} is in use by another "
            "dealreg process; stop it or use another --data-dir / DEALREG_DATA_DIR",
            exit_code=1) from None
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


async def check_database(settings: Settings) -> None:
    """The read-model database answers `SELECT 1` within the connect timeout."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    url = settings.database_url
    timeout = settings.connect_timeout_seconds
    engine = create_async_engine(url, connect_args={"timeout": timeout}
                                 if url.startswith("postgresql+asyncpg") else {})
    try:
        async with asyncio.timeout(timeout + 1):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {timeout:g} s"
        raise OperatorError(
            f"cannot reach the database {masked_url(url)} ({_host_port(url)}): {reason}. "
            "Check DEALREG_DATABASE_URL and that PostgreSQL is up.", exit_code=1) from None
    finally:
        await engine.dispose()


async def check_kafka(settings: Settings) -> None:
    """A Kafka broker of `DEALREG_KAFKA_BOOTSTRAP_SERVERS` answers metadata requests."""
    from aiokafka.admin import AIOKafkaAdminClient

    servers = settings.kafka_bootstrap_servers
    timeout = settings.connect_timeout_seconds
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id="dealreg-preflight",
                                request_timeout_ms=int(timeout * 1000))
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its own connection warnings would repeat ours
    try:
        async with asyncio.timeout(timeout + 1):
            await admin.start()
            await admin.describe_cluster()
    except Exception as exc:
        reason = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) \
            else (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise OperatorError(
            f"cannot reach Kafka at {servers}: {reason}. Check "
            "DEALREG_KAFKA_BOOTSTRAP_SERVERS and that the brokers are up.", exit_code=1
        ) from None
    finally:
        quiet.setLevel(level)
        with contextlib.suppress(Exception):
            await admin.close()


async def check_servers(settings: Settings, *, database: bool, kafka: bool) -> None:
    if kafka:
        await check_kafka(settings)
    if database:
        await check_database(settings)
