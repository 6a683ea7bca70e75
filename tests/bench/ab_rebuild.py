"""CPU of the read-model rebuild, two code trees alternating on one log (A/B), and a check
that both trees rebuild byte-identical tables.

    python tests/bench/ab_rebuild.py --data DIR [--events 50000] [--rounds 3] \
        [--tree A=/work/main --tree B=.] [--store sqlite|postgresql] [--processes 2]

The first run writes the bench's log (`bench_projections.bench_rebuild`'s workload:
`generate(events, seed=3, ...)`, the adjudication core deciding) into DIR and keeps it, so
every run rebuilds the same records. Each round rebuilds it from each tree in turn (a child
process with `PYTHONPATH=<tree>`) into a fresh store and prints the CPU of the rebuild's
processes (`getrusage` self + waited-for children; PostgreSQL's server not counted), the
wall time, and the SHA-256 of every read-model table dumped in primary-key order (SQLite:
the stored values as `sqlite3` returns them; PostgreSQL: each row's text form), so a
change of even one byte in one row shows. On a shared machine read the CPU medians.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


async def make_log(directory: Path, events: int) -> None:
    from shared.eventlog.embedded import EmbeddedEventLog
    from shared.eventlog.topics import Topics
    from tests.integration.projections.projection_support import append_workload
    from tests.unit.projections.projection_workload import generate

    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a bench set-up)
    log = EmbeddedEventLog(directory / "eventlog.sqlite3", synchronous="NORMAL")
    await log.start()
    topics = Topics.named("bench")
    await log.create_topics(topics.specs(12))
    workload = generate(events, seed=3, accounts=max(200, events // 3), partners=300,
                        contention=1.0)
    await append_workload(log, topics, workload, chunk=5000)
    await log.close()
    (directory / "log-records.txt").write_text(str(len(workload.records)))


async def child(log_dir: Path, url: str, processes: int, dump: Path) -> dict[str, Any]:
    """Runs in the tree under test (its PYTHONPATH)."""
    import resource
    import time

    from services.projections.adapters.rebuild import rebuild
    from shared.eventlog.embedded import EmbeddedEventLog
    from shared.eventlog.topics import Topics
    from shared.readmodel.store import create_engine, migrate

    log = EmbeddedEventLog(log_dir / "eventlog.sqlite3", synchronous="NORMAL")
    await log.start()
    engine = create_engine(url)
    await migrate(engine)

    def cpu() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    started = time.perf_counter()
    cpu0 = cpu()
    result = await rebuild(log, engine, Topics.named("bench"), processes=processes)
    spent = cpu() - cpu0
    wall = time.perf_counter() - started
    await engine.dispose()
    await log.close()
    digests = await dump_tables(url, dump)
    return {"cpu": spent, "wall": wall, "records": result.records, "tables": digests}


async def dump_tables(url: str, out: Path) -> dict[str, str]:
    """SHA-256 per read-model table of its rows in primary-key order; the rows are also
    written to `out` (one line per row) for a diff."""
    from services.projections.adapters.repository import TABLES

    tables = [t for ts in TABLES.values() for t in ts]
    digests: dict[str, str] = {}
    with out.open("w") as sink:
        if url.startswith("sqlite"):
            import sqlite3

            db = sqlite3.connect(url.split("///", 1)[1])
            for table in tables:
                order = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
                h = hashlib.sha256()
                for row in db.execute(f'SELECT * FROM "{table.name}" ORDER BY {order}'):
                    line = f"{table.name} {row!r}\n"
                    h.update(line.encode())
                    sink.write(line)
                digests[table.name] = h.hexdigest()[:16]
            db.close()
        else:
            import asyncpg

            conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            for table in tables:
                order = ", ".join(f'"{c.name}" COLLATE "C"' if c.type.python_type is str
                                  else f'"{c.name}"' for c in table.primary_key.columns)
                h = hashlib.sha256()
                for row in await conn.fetch(
                        f'SELECT t::text AS r FROM "{table.name}" t ORDER BY {order}'):
                    line = f"{table.name} {row['r']}\n"
                    h.update(line.encode())
                    sink.write(line)
                digests[table.name] = h.hexdigest()[:16]
            await conn.close()
    return digests


def run_tree(tree: str, log_dir: Path, store: str, processes: int, dump: Path,
             pg_server: str | None, name: str) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ab-rebuild-"))
    try:
        if store == "sqlite":
            url = f"sqlite+aiosqlite:///{work / 'readmodel.sqlite3'}"
        else:
            assert pg_server is not None
            from tests.support.servers import create_database

            url = asyncio.run(create_database(pg_server, f"ab_rebuild_{name.lower()}"))
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(log_dir), url,
             str(processes), str(dump)],
            env={**os.environ, "PYTHONPATH": tree}, cwd=tree, capture_output=True, text=True,
            check=False)
        if out.returncode:
            raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        log_dir, url, processes, dump = sys.argv[2:6]
        sys.path.insert(0, os.environ["PYTHONPATH"])
        print(json.dumps(asyncio.run(child(Path(log_dir), url, int(processes),
                                           Path(dump)))))
        return
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[])
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree) or {"A": "/work/main", "B": str(ROOT)}
    if not (args.data / "eventlog.sqlite3").exists():
        asyncio.run(make_log(args.data, args.events))
    pg = None
    if args.store == "postgresql":
        from tests.support.servers import start_postgres

        pg = start_postgres().url
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name, tree in (trees.items() if r % 2 == 0 else reversed(trees.items())):
            dump = args.data / f"dump-{args.store}-{name}.txt"
            got = run_tree(tree, args.data, args.store, args.processes, dump, pg, name)
            seen[name].append(got)
            us = 1e6 * got["cpu"] / got["records"]
            print(f"round {r} {name}: {got['records']:,} records, CPU {got['cpu']:.2f} s "
                  f"({us:.1f} us per record), wall {got['wall']:.1f} s, load "
                  f"{os.getloadavg()[0]:.1f}, tables "
                  f"{hashlib.sha256(json.dumps(got['tables']).encode()).hexdigest()[:12]}",
                  flush=True)
    for name, runs in seen.items():
        print(f"{name}: median CPU {statistics.median(r['cpu'] for r in runs):.2f} s "
              f"({', '.join(format(r['cpu'], '.2f') for r in runs)})")
    tables = {name: runs[-1]["tables"] for name, runs in seen.items()}
    first = next(iter(tables.values()))
    same = all(t == first for t in tables.values())
    print("tables byte-identical across trees" if same else f"TABLES DIFFER: {tables}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
