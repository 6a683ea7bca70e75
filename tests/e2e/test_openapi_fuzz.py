"""The OpenAPI document is the contract: schemathesis generates requests from it for every
operation and checks that nothing answers 5xx and every answer matches its documented
schema and status codes. Bounded: a few examples per operation, against the embedded
backend served by uvicorn in a thread. A stateful phase then chains operations along the
links schemathesis infers from the document (79 today: a registration's id into its
withdraw, extend, close, disputes, read and timeline; a dispute's into acknowledge and
resolve; a key's into its revocation ...), with the same checks (about 8 s), each scenario
on an app in a fresh app's state so that its answers depend on its own requests only."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from dealreg.app import create_app
from shared.settings import Settings

ADMIN = "fuzz-admin-token"
MAX_EXAMPLES = 12


SETTINGS = Settings(backend="embedded", admin_token=ADMIN, log_level="WARNING")


@contextmanager
def _served() -> Iterator[str]:
    """The embedded backend on a fresh data directory, served by uvicorn in a thread on a
    socket bound here (no free-port race); its base URL."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(SETTINGS.model_copy(update={"data_dir": Path(data_dir)}))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while not server.started:
                assert thread.is_alive(), "the app failed to start"
                assert time.monotonic() < deadline, "the app did not start within 60 s"
                time.sleep(0.02)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _Apps:
    """The stateful phase's apps (`_served`), each on a fresh data directory. Every scenario
    starts on an app in a fresh app's state: a new one, or one that since it started only
    answered reads and refusals (bad input never yields an appended event: README,
    "Errors"). After a scenario that had a request carried out (a method other
    than GET, HEAD or OPTIONS answered below 400) its app is stopped in the background and
    the next scenario takes a new one, started in the background meanwhile."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fuzz-apps")
        self._stopped: list[Future[None]] = []
        self._next = self._pool.submit(self._start)
        self._current: tuple[ExitStack, str] | None = None

    @staticmethod
    def _start() -> tuple[ExitStack, str]:
        stack = ExitStack()
        return stack, stack.enter_context(_served())

    def url(self) -> str:
        if self._current is None:
            self._current = self._next.result()
            self._next = self._pool.submit(self._start)
        return self._current[1]

    def replace(self) -> None:
        """The next scenario gets a new app."""
        if self._current is not None:
            self._stopped.append(self._pool.submit(self._current[0].close))
            self._current = None

    def close(self) -> None:
        self.replace()
        with suppress(Exception):
            self._next.result()[0].close()
        for stopped in self._stopped:
            stopped.result()
        self._pool.shutdown()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with _served() as url:
        yield url


def _operations() -> list[Any]:
    # The document does not depend on the runtime: build it once, without serving.
    with tempfile.TemporaryDirectory() as data_dir:
        document = create_app(Settings(backend="embedded", data_dir=Path(data_dir))).openapi()
    loaded = schemathesis.openapi.from_dict(document)
    return [result.ok() for result in loaded.get_all_operations()]  # type: ignore[union-attr]


OPERATIONS = _operations()


@pytest.mark.parametrize("operation", OPERATIONS, ids=[o.label for o in OPERATIONS])
def test_no_operation_fails_or_breaks_its_schema(base_url: str,
                                                 operation: Any) -> None:
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url, headers={"Authorization": f"Bearer {ADMIN}"},
            checks=[not_a_server_error, response_schema_conformance, status_code_conformance],
        )

    check()


STATEFUL_SCENARIOS = 60
STATEFUL_STEPS = 8


def test_chained_operations_along_the_inferred_links_do_not_fail(base_url: str) -> None:
    """The stateful (links) phase: schemathesis infers links between operations from the
    document (an answer's id into the next request's path) and runs scenarios along them
    with the same checks. Its roots are the operations it deems likely to succeed with
    generated data; the deep chains with valid data (register, contest, acknowledge,
    resolve, read) are the authorization matrix's business (test_authorization_matrix).

    Every scenario starts on an app in a fresh app's state (`_Apps`). What a scenario
    draws next depends on the answers it got (which links apply, the values they carry),
    and Hypothesis replays the start of earlier scenarios: on the server the per-operation
    tests had used, an owner put by an earlier scenario was listed on the replay (a link
    applied that had not), and the registrations those tests left still being decided
    under load changed the lists between the two runs, so the replay drew differently and
    Hypothesis failed the test (`FlakyStrategyDefinition`)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema.config.update(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN}"})
    machine = schema.as_state_machine()
    transitions = schema.statistic.transitions.total
    assert transitions >= 20, f"only {transitions} links inferred: the phase would be shallow"
    followed: list[str] = []
    checks = [not_a_server_error, response_schema_conformance, status_code_conformance]

    apps = _Apps()

    class Workflow(machine):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            self.url = apps.url()
            self.carried_out = False

        def teardown(self) -> None:
            if self.carried_out:
                apps.replace()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": self.url}

        def after_call(self, response: Any, case: Any) -> None:
            if case.method.upper() not in SAFE_METHODS and response.status_code < 400:
                self.carried_out = True

        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                followed.append(input.transition.id)
            return super().step(input)

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            case.validate_response(response, checks=checks)

    try:
        Workflow.run(settings=settings(
            max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS, deadline=None,
            derandomize=True, database=None, suppress_health_check=list(HealthCheck)))
    finally:
        apps.close()
    # Scenarios did chain calls: a value from one answer was used by the next request.
    assert followed, "no link was ever followed"
