"""A derandomized Hypothesis test draws the same examples whatever ran before it in its
process (tests/conftest.py, `import_the_application`).

Hypothesis (since 6.131) now and then draws a constant found in the source of the local
modules imported so far. Before, which those were depended on the other test files
collected and the tests run before in the same process: the full suite generated an
`ElsewhereInvariants` example (tests/property/test_cross_partition_relay.py) that the file
alone never did (session 25), the hash seed ruled out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import APPLICATION

REPO = Path(__file__).resolve().parents[2]
PROBE = "tests/support/order_probe.py"


def _probe_examples(tmp_path: Path, *before: str) -> list[str]:
    """The examples the probe draws when run after collecting `before` (their tests
    deselected), in a pytest process of its own."""
    out = tmp_path / f"examples-{len(before)}.txt"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "DEALREG_", "HYPOTHESIS_"))}
    env["DEALREG_TEST_ORDER_PROBE_OUT"] = str(out)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n0", "-p", "no:cacheprovider",
         "-k", "test_probe", *before, PROBE],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out.read_text(encoding="utf-8").splitlines()


def test_a_derandomized_test_draws_the_same_examples_whatever_was_collected_before(
        tmp_path: Path) -> None:
    alone = _probe_examples(tmp_path)
    # Test files that import application modules the probe's process did not load.
    after = _probe_examples(tmp_path, "tests/unit/test_gateway_routes.py",
                            "tests/unit/test_preflight.py", "tests/unit/test_policy_diff.py")
    assert len(alone) == 300
    assert after == alone


def test_every_module_of_the_application_is_imported_before_any_test() -> None:
    """A module the import missed (a new package, a directory without `__init__.py`) would
    bring its constants in only when some test imports it."""
    loaded = {Path(f).resolve() for m in list(sys.modules.values())
              if (f := getattr(m, "__file__", None))}
    tops = {p.name for p in REPO.iterdir() if (p / "__init__.py").exists()}
    assert tops - {"tests"} == set(APPLICATION)
    missing = [str(p.relative_to(REPO)) for top in APPLICATION
               for p in sorted((REPO / top).rglob("*.py"))
               if p.resolve() not in loaded and p.name != "__main__.py"
               and "migrations" not in p.relative_to(REPO).parts]
    assert missing == []
