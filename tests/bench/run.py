"""`make bench`: run every benchmark script in tests/bench and collect their numbers.

Each `bench_*.py` prints its results and appends them to bench-results/<name>.json. Servers
are found like the tests find them (environment, Docker, deploy/ scripts).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failures = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n### {script.name}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script), *sys.argv[1:]],
                               cwd=HERE.parents[1])
        print(f"### {script.name}: exit {code} in {time.perf_counter() - started:.1f} s")
        if code:
            failures.append(script.name)
    if failures:
        print(f"\nfailed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
