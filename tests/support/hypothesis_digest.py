"""A pytest plugin that writes, per Hypothesis test, a digest of every test case it
generated (the choices drawn), to compare the examples of two runs:

    DEALREG_TEST_HYPOTHESIS_DIGEST=alone.json python3 -m pytest -n0 \\
        -p tests.support.hypothesis_digest tests/property/test_cross_partition_relay.py
    DEALREG_TEST_HYPOTHESIS_DIGEST=after.json python3 -m pytest -n0 \\
        -p tests.support.hypothesis_digest tests/unit tests/property/test_cross_partition_relay.py

Equal digests: the same examples. A diagnostic (it wraps Hypothesis' internal
`ConjectureData.freeze`), not part of any run by default."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from typing import Any

import pytest
from hypothesis.internal.conjecture.data import ConjectureData

_DIGESTS: dict[str, Any] = {}
_CASES: Counter[str] = Counter()
_freeze = ConjectureData.freeze


def _recording_freeze(self: ConjectureData) -> None:
    first = not self.frozen
    _freeze(self)
    if first:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        _DIGESTS.setdefault(test, hashlib.sha256()).update(repr(self.choices).encode())
        _CASES[test] += 1


ConjectureData.freeze = _recording_freeze  # type: ignore[method-assign]


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("DEALREG_TEST_HYPOTHESIS_DIGEST")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump({test: {"digest": digest.hexdigest()[:16], "test_cases": _CASES[test]}
                       for test, digest in sorted(_DIGESTS.items())}, out, indent=1)
