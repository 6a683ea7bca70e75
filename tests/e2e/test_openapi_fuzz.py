"""The OpenAPI document is the contract: schemathesis generates requests from it for every
operation and checks that nothing answers 5xx and every answer matches its documented
schema and status codes. Bounded: a few examples per operation, against the embedded
backend served by uvicorn in a thread. A stateful phase then chains operations along the
links schemathesis infers from the document (79 today: a registration's id into its
withdraw, extend, close, disputes, read and timeline; a dispute's into acknowledge and
resolve; a key's into its revocation ...), with the same checks (about 8 s)."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Iterator
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(backend="embedded", data_dir=Path(data_dir),
                                  admin_token=ADMIN, log_level="WARNING"))
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=15)


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
    resolve, read) are the authorization matrix's business (test_authorization_matrix)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema.config.update(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN}"})
    machine = schema.as_state_machine()
    transitions = schema.statistic.transitions.total
    assert transitions >= 20, f"only {transitions} links inferred: the phase would be shallow"
    followed: list[str] = []
    checks = [not_a_server_error, response_schema_conformance, status_code_conformance]

    class Workflow(machine):  # type: ignore[valid-type, misc]
        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                followed.append(input.transition.id)
            return super().step(input)

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            case.validate_response(response, checks=checks)

    Workflow.run(settings=settings(
        max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS, deadline=None,
        derandomize=True, database=None, suppress_health_check=list(HealthCheck)))
    # Scenarios did chain calls: a value from one answer was used by the next request.
    assert followed, "no link was ever followed"
