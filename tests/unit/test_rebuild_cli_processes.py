"""`dealreg projections rebuild --processes`: a count outside 1-64 is a usage error naming
the option, before any store or log is touched."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dealreg.cli import app


def _said(output: str) -> str:
    """The error text without the panel's borders and line wrapping."""
    return " ".join(output.replace("│", " ").split())


@pytest.mark.parametrize("count", ["0", "-1", "-100", "65", "100000"])
def test_a_process_count_outside_one_to_sixty_four_is_a_usage_error(
    count: str, tmp_path: object,
) -> None:
    result = CliRunner().invoke(app, ["projections", "rebuild", "--processes", count,
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    said = _said(result.output)
    bound = ("greater than or equal to 1" if int(count) < 1 else "less than or equal to 64")
    assert "Invalid value for '--processes'" in said and bound in said, said


def test_a_process_count_that_is_not_a_number_is_a_usage_error(tmp_path: object) -> None:
    result = CliRunner().invoke(app, ["projections", "rebuild", "--processes", "many",
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--processes'" in _said(result.output), result.output
