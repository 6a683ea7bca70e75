"""The compiled build against the pure one: the same decisions, and how much faster.

    make compiled && python tests/bench/bench_compiled.py [--events 40000] [--rounds 2]

`make bench COMPILED=1` runs it (run.py builds first). Each side runs in its own process,
alternating, `--rounds` times: "compiled" imports the extension modules `make compiled`
left next to the .py; "pure" imports the .py of exactly those modules (a finder placed
before the standard ones). Each replays the mixed workload of bench_decide (seed 3) into a
fresh state twice, timing `decide` in CPU seconds under the adjudicator's collector
settings, and hashes every decision's JSON; a third replay pickles the state halfway and
goes on with the unpickled copy, as recovery from a snapshot does. The bench fails unless
every hash is the one of the straight pure replay.

Why a bench and not a unit test: building the extensions takes ~70 s of CPU (minutes on a
loaded machine), beyond what the unit suite may spend, and the suite must run the .py
(mutation testing, Hypothesis). Writes bench-results/compiled.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.common import record  # noqa: E402

SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


def compiled_modules() -> list[str]:
    """Modules with an extension built next to their .py (`make compiled`)."""
    found = []
    for top in ("services", "shared", "dealreg"):
        for ext in sorted((ROOT / top).rglob(f"*{SUFFIX}")):
            source = ext.with_name(ext.name[: -len(SUFFIX)] + ".py")
            if source.exists():
                found.append(".".join(source.relative_to(ROOT).with_suffix("").parts))
    return found


def stale_modules() -> list[str]:
    """Compiled modules whose .py changed after `make compiled` (a pull or an edit since),
    which marks every extension it leaves: Python would still import the old code."""
    stale = []
    for name in compiled_modules():
        source = ROOT.joinpath(*name.split(".")).with_suffix(".py")
        ext = source.with_name(source.stem + SUFFIX)
        if source.stat().st_mtime > ext.stat().st_mtime:
            stale.append(name)
    return stale


_CHILD = r"""
import gc, hashlib, importlib.abc, importlib.util, json, os, pickle, sys, time
root, side, events, modules = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
sys.path[:0] = [root, os.path.join(root, "tests", "unit", "adjudication")]

class Pure(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name not in modules:
            return None
        source = os.path.join(root, *name.split(".")) + ".py"
        return importlib.util.spec_from_file_location(name, source)

if side == "pure":
    sys.meta_path.insert(0, Pure())
import orjson
from adjudication_workload import generate, workload_policies
from services.adjudication.domain import (AdjudicationState, DecisionContext, decide,
                                          policy_version_of)
from services.adjudication.worker import tune_gc
loaded = sys.modules["services.adjudication.domain.decide"].__file__
assert loaded.endswith(".py") == (side == "pure"), (side, loaded)
log, _ = generate(events, seed=3, n_accounts=max(400, events // 25))
policies = workload_policies()
contexts = []
for i, (event, at) in enumerate(log, 1):
    version = policy_version_of(event)
    contexts.append(DecisionContext(f"e{i}", at,
                                    policies[version] if version is not None else None))
tune_gc()

def replay(restore_at=None):
    decided = []
    state = AdjudicationState()
    gc.collect()
    started = time.process_time()
    for i, ((event, _), context) in enumerate(zip(log, contexts, strict=True)):
        if i == restore_at:  # (that replay is not timed)
            state = pickle.loads(pickle.dumps(state, protocol=5))
        decided.append(decide(state, event, context)[1])
    cpu = time.process_time() - started
    digest, n = hashlib.sha256(), 0
    for outs in decided:
        for out in outs:
            digest.update(orjson.dumps(out.to_data(), option=orjson.OPT_SORT_KEYS))
            n += 1
    return digest.hexdigest()[:16], n, cpu

runs = [replay() for _ in range(2)]
restored = replay(restore_at=len(log) // 2)
print(json.dumps({"side": side, "module": loaded, "events": len(log),
                  "hashes": [r[0] for r in runs], "restored_hash": restored[0],
                  "decisions": runs[0][1], "cpu": [r[2] for r in runs]}))
"""


def run_side(side: str, events: int, modules: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), side, str(events), *modules],
                         cwd=ROOT, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    modules = compiled_modules()
    if not modules:
        print("no compiled build here: run `make compiled` first", file=sys.stderr)
        return 2
    if stale_modules():
        print(f"the compiled build is older than {', '.join(stale_modules())}: run `make "
              "compiled` again", file=sys.stderr)
        return 2
    cpu: dict[str, list[float]] = {"pure": [], "compiled": []}
    hashes: dict[str, set[str]] = {"pure": set(), "compiled": set()}
    reference: dict[str, Any] = {}
    for _ in range(args.rounds):
        for side in ("pure", "compiled"):
            got = run_side(side, args.events, modules)
            reference = reference or got
            cpu[side] += got["cpu"]
            hashes[side].update([*got["hashes"], got["restored_hash"]])
    events = int(reference["events"])
    best = {side: min(values) for side, values in cpu.items()}
    median = {side: sorted(values)[len(values) // 2] for side, values in cpu.items()}
    identical = len(hashes["pure"] | hashes["compiled"]) == 1
    record("compiled", {
        "compiled_modules": len(modules),
        "events": events,
        "decisions": reference["decisions"],
        "hash": sorted(hashes["pure"] | hashes["compiled"]),
        "identical": identical,
        "pure_events_per_cpu_second": round(events / median["pure"]),
        "compiled_events_per_cpu_second": round(events / median["compiled"]),
        "pure_best_events_per_cpu_second": round(events / best["pure"]),
        "compiled_best_events_per_cpu_second": round(events / best["compiled"]),
        "speedup": round(median["pure"] / median["compiled"], 2),
    })
    if not identical:
        print(f"the compiled build decides differently: {hashes}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
