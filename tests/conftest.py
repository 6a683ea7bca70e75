"""Fixtures shared by every test: real servers and both event-log backends.

Servers are found in this order (tests/support/servers.py): connection settings from the
environment (`DEALREG_TEST_KAFKA_BOOTSTRAP_SERVERS`, `DEALREG_TEST_DATABASE_URL`), a Docker
engine through testcontainers, the project's scripts under deploy/. A missing server fails
the test loudly; nothing is skipped.

Under pytest-xdist (`make test` runs two workers) the workers of one run share one broker and
one PostgreSQL server: the first worker that needs one starts it, the others use it, and its
starter stops it once no worker of the run uses it any more. Tests keep apart by their own
topics, consumer groups and databases (`unique`), as they do in one process. `make test`
also keeps every test module on one worker (its module-scoped fixtures are built once) and
every browser test on one worker (one `dealreg dev` and one Chromium).
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import json
import os
import pkgutil
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared.eventlog import EventLog
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.kafka import KafkaEventLog
from tests.support.servers import ServerHandle, create_database, start_kafka, start_postgres

BACKENDS = ["embedded", "kafka"]
_USED: list[str] = []


_SHARED_STOP_WAIT_S = 3600.0


def _run_root(config: pytest.Config) -> Path | None:
    """The directory all xdist workers of this run share (None: not under xdist)."""
    if not os.environ.get("PYTEST_XDIST_WORKER") and not config.pluginmanager.hasplugin(
            "dsession"):
        return None
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return Path(base).parent if os.environ.get("PYTEST_XDIST_WORKER") else Path(base)


APPLICATION = ("dealreg", "services", "shared")
"""The application's packages: every module of them is imported before any test runs."""


def import_the_application() -> None:
    """Import every module of the application (not `__main__`; the Alembic scripts are not
    modules) before any test is collected.

    Hypothesis (since 6.131) now and then draws a constant found in the source of the local
    modules imported so far (`sys.modules`, outside site-packages and test files). Which
    modules a process had imported depended on the test files collected with it and the
    tests it ran before, so a derandomized test's examples depended on the test order: the
    full suite's worker generated an `ElsewhereInvariants` example the file alone never did
    (session 25). Imported here, the constants are the whole application's, whatever runs
    and in whatever order; `tests/unit/test_hypothesis_test_order.py` holds it."""
    for top in APPLICATION:
        package = importlib.import_module(top)
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{top}."):
            if not module.name.endswith(".__main__"):
                importlib.import_module(module.name)


def pytest_configure(config: pytest.Config) -> None:
    import_the_application()
    _configure_xdist(config)


DURATIONS = Path(__file__).with_name("durations.json")
"""Seconds each xdist group (a test file, or "browser") took in a serial run: the order in
which `make test` hands the groups to its workers. Refresh: tests/support/durations.py."""


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the marks it adds
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist's `--dist loadgroup`: a module's tests on one worker, the browser's too,
    and the groups handed out longest first (their `DURATIONS`), so that neither worker is
    left with a long file while the other has nothing to do at the end of the run. The
    order is the same on every worker (xdist requires it); tests keep their order within
    a group. xdist's own order (most tests first) put files of a few slow tests last."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    root = Path(str(config.rootpath))
    seconds: dict[str, float] = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    groups: dict[pytest.Item, str] = {}
    for item in items:
        path = Path(str(item.path))
        group = "browser" if "browser" in path.parts else str(path)
        item.add_marker(pytest.mark.xdist_group(group))
        groups[item] = "browser" if group == "browser" else path.relative_to(root).as_posix()
    sizes = Counter(groups.values())
    # Groups not measured yet after the measured ones, most tests first (xdist's own order).
    items.sort(key=lambda item: (-seconds.get(groups[item], 0.0), -sizes[groups[item]]))


def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    """The controller fails a `--dist loadgroup` run whose tests lost their group: every
    test is in one (`pytest_collection_modifyitems`), and xdist suffixes its node id with
    `@group` on the worker, a way pytest 9.2 ignores. Spread test by test, each worker
    builds every module's app and a Chromium of its own, minutes longer with nothing said."""
    lost = [i for i in ids if "@" not in i]
    if lost and getattr(getattr(node, "config", None), "option", None) is not None \
            and node.config.option.dist == "loadgroup":  # type: ignore[attr-defined]
        raise pytest.UsageError(
            f"--dist loadgroup: {len(lost)} of {len(ids)} tests lost their xdist group "
            f"(e.g. {lost[0]}); pytest {pytest.__version__} with this pytest-xdist does not "
            "group them (pyproject.toml pins a pytest that does)")


def _configure_xdist(config: pytest.Config) -> None:
    """The controller keeps the workers' collection order (`--no-loadscope-reorder`): the
    longest groups first, as `pytest_collection_modifyitems` sorted them."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Collect the run's garbage now, after the session's fixtures are torn down, and freeze
    what is left alive, so the end of the run is quick.

    Under xdist a worker tells the controller it finished right after this hook; the
    controller then stops the worker's gateway, and execnet sends a worker whose pytest
    has not ended within 5 s a SIGINT (execnet `gateway_base._terminate_execution`): the
    KeyboardInterrupt seen at the end of `make test`. What a worker still ran then was
    pytest's full garbage collections at unconfigure (unraisable exceptions), over a heap
    of every app the worker built (FastAPI's caches keep thousands of their callables):
    13.7 s for one module's run on a loaded machine. Collected here instead, they see
    only what was made since (finalizers' unraisable exceptions are still reported)."""
    gc.collect()
    gc.freeze()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    """Say which real servers the session ran against, so a CI log proves it."""
    used = list(_USED)
    root = _run_root(config)
    if root is not None and (root / "servers-used.txt").exists():
        used += (root / "servers-used.txt").read_text().splitlines()
    if used:
        terminalreporter.write_sep("=", "real servers used")
        for line in dict.fromkeys(used):
            terminalreporter.write_line(line)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def _server(kind: str, start: Callable[[], ServerHandle], describe: Callable[[str], str],
            config: pytest.Config) -> Iterator[ServerHandle]:
    """One server per pytest run: per process, or shared by the run's xdist workers."""
    root = _run_root(config)
    if root is None:
        handle = start()
        _USED.append(f"{kind} {describe(handle.url)} ({handle.source})")
        try:
            yield handle
        finally:
            handle.stop()
        return
    lock, state = root / f"{kind}.lock", root / f"{kind}.json"
    owned: ServerHandle | None = None
    with _locked(lock):
        shared = json.loads(state.read_text()) if state.exists() else None
        if shared is None or shared["stopped"]:
            owned = start()
            shared = {"url": owned.url, "source": owned.source, "users": [], "stopped": False}
            with (root / "servers-used.txt").open("a") as used:
                used.write(f"{kind} {describe(owned.url)} ({owned.source}, shared by the "
                           "xdist workers)\n")
        shared["users"].append(os.getpid())
        state.write_text(json.dumps(shared))
    try:
        yield owned or ServerHandle(shared["url"], shared["source"])
    finally:
        with _locked(lock):
            shared = json.loads(state.read_text())
            shared["users"] = [pid for pid in shared["users"] if pid != os.getpid()]
            state.write_text(json.dumps(shared))
        if owned is not None:
            # The starter stops it once the other workers are done with it.
            deadline = time.monotonic() + _SHARED_STOP_WAIT_S
            while True:
                with _locked(lock):
                    shared = json.loads(state.read_text())
                    # Workers that ended without releasing it (interrupted) count as done.
                    if not [pid for pid in shared["users"] if _alive(pid)] \
                            or time.monotonic() > deadline:
                        shared["stopped"] = True
                        state.write_text(json.dumps(shared))
                        break
                time.sleep(0.2)
            owned.stop()


def _run_owner() -> int:
    """The process whose end stops the servers this one starts (their watchdog's owner):
    under xdist the controller (a worker's parent), so a crashed worker's replacement keeps
    the run's servers; otherwise this process."""
    return os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()


@pytest.fixture(scope="session")
def kafka_server(pytestconfig: pytest.Config) -> Iterator[ServerHandle]:
    """A real Kafka broker; ``kafka_server.url`` is its bootstrap ``host:port``."""
    yield from _server("kafka", lambda: start_kafka(_run_owner()), lambda url: url,
                       pytestconfig)


@pytest.fixture(scope="session")
def postgres_server(pytestconfig: pytest.Config) -> Iterator[ServerHandle]:
    """A real PostgreSQL server; ``postgres_server.url`` is a ``postgresql+asyncpg://`` URL."""
    yield from _server("postgresql", lambda: start_postgres(_run_owner()),
                       lambda url: url.rsplit("@", 1)[-1], pytestconfig)


@pytest.fixture
def unique() -> str:
    """A short token that keeps topics, groups and databases of one test apart."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def fresh_database(postgres_server: ServerHandle, unique: str) -> str:
    """A new, empty PostgreSQL database for this test; its asyncpg SQLAlchemy URL."""
    return await create_database(postgres_server.url, f"t_{unique}")


def make_eventlog(backend: str, request: pytest.FixtureRequest, directory: Path) -> EventLog:
    if backend == "embedded":
        return EmbeddedEventLog(directory / "eventlog.sqlite3")
    server: ServerHandle = request.getfixturevalue("kafka_server")
    return KafkaEventLog(server.url)


@pytest.fixture(params=BACKENDS)
async def eventlog(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventLog]:
    """A started event log of each backend (real Kafka for `kafka`)."""
    log = make_eventlog(request.param, request, tmp_path)
    await log.start()
    try:
        yield log
    finally:
        await log.close()
