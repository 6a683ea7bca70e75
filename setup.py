"""Packaging: pyproject.toml says everything, except the opt-in compiled build.

With `DEALREG_COMPILED=1` the modules in `COMPILED` (the adjudicator's pure `decide` and the
account matching it calls) are compiled to C extensions with mypyc, which ships with mypy:

    make compiled          # in place, next to the .py (git-ignored); make clean-compiled
    DEALREG_COMPILED=1 pip install --no-build-isolation .   # a wheel with them (Dockerfile)

Without it (`make dev`, `make test`, the editable install) nothing is compiled: mutation
testing, coverage and Hypothesis's shrinking need the .py to be what runs. The compiled
modules decide exactly as the pure ones (`tests/bench/bench_compiled.py` checks it: pure
and compiled in alternating processes, every hash equal).
"""

from __future__ import annotations

import os

from setuptools import setup

COMPILED = (
    "services/adjudication/domain/adjudicate.py",
    "services/adjudication/domain/cooloff.py",
    "services/adjudication/domain/decide.py",
    "services/adjudication/domain/disputes.py",
    "services/adjudication/domain/escalation.py",
    "services/adjudication/domain/explain.py",
    "services/adjudication/domain/instants.py",
    "services/adjudication/domain/lifecycle.py",
    "services/adjudication/domain/links.py",
    "services/adjudication/domain/matching.py",
    "services/adjudication/domain/outcomes.py",
    "services/adjudication/domain/precedence.py",
    "services/adjudication/domain/protection.py",
    "services/adjudication/domain/relay.py",
    "services/adjudication/domain/release.py",
    "services/adjudication/domain/state.py",
    "services/adjudication/domain/timers.py",
    "shared/accounts/identity.py",
    "shared/accounts/index.py",
    "shared/accounts/salesforce.py",
    "shared/accounts/sameness.py",
    "shared/business_time.py",
)


def _ext_modules() -> list[object]:
    if os.environ.get("DEALREG_COMPILED", "") in ("", "0"):
        return []
    from mypyc.build import mypycify

    return list(mypycify(["--config-file", "pyproject.toml", *COMPILED], opt_level="3"))


setup(ext_modules=_ext_modules())
