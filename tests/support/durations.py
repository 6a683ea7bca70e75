"""Writes tests/durations.json, the seconds each xdist group of the suite took, from the
JUnit XML of serial runs (`tests/conftest.py` hands the longest groups out first):

    python3 -m pytest -q -n0 --junitxml=/tmp/e2e.xml tests/e2e   # ... any parts
    python3 tests/support/durations.py /tmp/e2e.xml ...

A group is a test file, or "browser" for every browser test (they share one server and
one Chromium). Groups of the given XML files replace their entries; others are kept.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DURATIONS = ROOT / "tests" / "durations.json"


def group_of(classname: str) -> str:
    """`tests.e2e.test_x` or `tests.e2e.test_x.TestClass` -> tests/e2e/test_x.py."""
    parts = classname.split(".")
    while parts and not parts[-1].startswith("test_"):
        parts.pop()
    path = "/".join(parts) + ".py"
    return "browser" if path.startswith("tests/browser/") else path


def measured(files: list[str]) -> Counter[str]:
    seconds: Counter[str] = Counter()
    for file in files:
        for case in ET.parse(file).iter("testcase"):
            seconds[group_of(case.get("classname", ""))] += float(case.get("time") or 0)
    return seconds


def main(files: list[str]) -> int:
    if not files:
        print(__doc__, file=sys.stderr)
        return 2
    known: dict[str, float] = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    known.update({group: round(s, 1) for group, s in measured(files).items()})
    known = {g: s for g, s in known.items() if g == "browser" or (ROOT / g).exists()}
    ordered = dict(sorted(known.items(), key=lambda item: (-item[1], item[0])))
    DURATIONS.write_text(json.dumps(ordered, indent=0) + "\n")
    print(f"{DURATIONS}: {len(ordered)} groups, {sum(ordered.values()):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
