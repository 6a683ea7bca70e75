"""A derandomized Hypothesis test that writes every example it draws to the file named by
`DEALREG_TEST_ORDER_PROBE_OUT`: tests/unit/test_hypothesis_test_order.py runs it alone and after
other test files and compares. Not collected by default (not a `test_*.py` file)."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.integers(0, 50), st.text(max_size=8), st.floats(allow_nan=False))
def test_probe(number: int, text: str, real: float) -> None:
    with open(os.environ["DEALREG_TEST_ORDER_PROBE_OUT"], "a", encoding="utf-8") as out:
        out.write(f"{number!r} {text!r} {real!r}\n")
