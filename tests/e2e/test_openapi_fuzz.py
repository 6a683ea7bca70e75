"""The OpenAPI document is the contract: schemathesis generates requests from it for every
operation and checks that nothing answers 5xx and every answer matches its documented
schema and status codes. Bounded: a few examples per operation, against the embedded
backend served by uvicorn in a thread."""

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
