"""Benchmark of the projections: rebuild speed and ownership look-up latency at scale.

Run ``python tests/bench/bench_projections.py [--registrations N] [--rebuild-events N]
[--lookups N] [--postgres]``. Not a pytest test (the name does not start with ``test_``).

1. **Rebuild**: a realistic log (registrations colliding on a pool of accounts, claims,
   extensions, withdrawals, wins and losses, disputes with acknowledgements, resolutions,
   contests and escalations, timer firings, all decided by the real adjudication core) is
   appended to an embedded log; `rebuild` then empties every read model and replays it
   into SQLite (and PostgreSQL with ``--postgres``: the server the tests use). Reported as
   log records per second (intake events and decisions both count).
2. **Ownership look-ups**: a directory of N registrations on N distinct accounts is loaded
   into SQLite (rows written through the same bulk upserts the worker uses), then
   ``GET /v1/ownership`` is timed in-process (FastAPI, auth, SQL; no network) for a mix
   of look-ups: 70 % by domain, 10 % by CRM id, 10 % by exact name + country, 10 % by a
   misspelt name (fuzzy), a third of them as a partner (redacted).

Numbers are printed and appended to ``bench-results/projections.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # runnable from a checkout without `pip install -e`
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from services.projections.adapters import repository  # noqa: E402
from services.projections.adapters.rebuild import default_processes, rebuild  # noqa: E402
from services.projections.domain.directory import facts  # noqa: E402
from services.projections.domain.registrations import empty_row, to_e4  # noqa: E402
from shared.accounts import normalize_name  # noqa: E402
from shared.api.auth import Authenticator  # noqa: E402
from shared.eventlog.embedded import EmbeddedEventLog  # noqa: E402
from shared.eventlog.topics import Topics  # noqa: E402
from shared.events import Account  # noqa: E402
from shared.readmodel.schema import (  # noqa: E402
    account_crm_ids,
    account_domains,
    account_name_keys,
    account_names,
    ownership_intervals,
    registrations,
)
from shared.readmodel.store import create_engine, migrate  # noqa: E402
from shared.settings import Settings  # noqa: E402
from tests.bench import loadgen  # noqa: E402
from tests.bench.common import record  # noqa: E402
from tests.integration.projections.projection_support import append_workload  # noqa: E402
from tests.support.processes import free_port, stop, wait_ready  # noqa: E402
from tests.unit.projections.projection_workload import generate  # noqa: E402

SYLLABLES = ("ac", "me", "glo", "bex", "ini", "tech", "um", "bre", "la", "hoo", "li", "stark",
             "way", "ne", "won", "ka", "ty", "rel", "cy", "ber", "dyne", "soy", "lent", "van",
             "zor", "qui", "mo", "ra", "vel", "tor", "pix", "nu", "sa", "fi", "do", "ge")
COUNTRIES = ("US", "US", "US", "DE", "GB", "FR", "JP", "CA", "NL", "IT")
LEGAL = ("Inc.", "GmbH", "Ltd", "S.A.", "LLC", "Corp.", "")
ADMIN = "bench-admin"


# --- rebuild ---------------------------------------------------------------------------


async def bench_rebuild(events: int, postgres_url: str | None) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="bench-proj-"))
    log = EmbeddedEventLog(directory / "eventlog.sqlite3", synchronous="NORMAL")
    await log.start()
    topics = Topics.named("bench")
    await log.create_topics(topics.specs(12))
    started = time.perf_counter()
    workload = generate(events, seed=3, accounts=max(200, events // 3), partners=300,
                        contention=1.0)
    generated = time.perf_counter() - started
    records = len(workload.records)
    await append_workload(log, topics, workload, chunk=5000)
    del workload
    gc.collect()
    results: dict[str, Any] = {"rebuild_log_records": records,
                               "rebuild_workload_generation_seconds": round(generated, 1)}
    targets = [("sqlite", f"sqlite+aiosqlite:///{directory / 'readmodel.sqlite3'}")]
    if postgres_url:
        targets.append(("postgresql", postgres_url))
    for name, url in targets:
        engine = create_engine(url)
        await migrate(engine)
        cpu = _cpu_seconds()
        result = await rebuild(log, engine, topics, processes=default_processes(records))
        cpu = _cpu_seconds() - cpu
        await engine.dispose()
        results[f"rebuild_{name}_seconds"] = round(result.seconds, 2)
        results[f"rebuild_{name}_events_per_second"] = round(result.events_per_second)
        results[f"rebuild_{name}_cpu_seconds"] = round(cpu, 2)
        print(f"rebuild into {name}: {records:,} records in {result.seconds:.1f} s "
              f"= {result.events_per_second:,.0f} events/s "
              f"({default_processes(records)} processes; {cpu:.2f} CPU-s in the rebuild's "
              "processes, server not counted)", flush=True)
        if result.misrouted:  # the generator broke the keying the real log keeps
            raise SystemExit(f"the workload breaks invariant 14: {result.misrouted} records "
                             f"keyed by another account ({result.misrouted_first[0]})")
        record("projections", results)  # kept if the next phase runs out of time
    await log.close()
    return results


def _cpu_seconds() -> float:
    """CPU of this process and of its waited-for children (the rebuild's fork server waits
    for its workers and is waited for when the rebuild stops it)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


# --- a large directory -----------------------------------------------------------------


def company(rng: random.Random, i: int) -> tuple[str, str, str, str | None]:
    word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3, 3, 4))))
    name = f"{word.title()}{i % 9973} {rng.choice(('Systems', 'Labs', 'Group', ''))} " \
           f"{rng.choice(LEGAL)}"
    country = rng.choice(COUNTRIES)
    domain = f"{word}{i}.com"
    crm = f"CRM-{i}" if i % 3 == 0 else None
    return " ".join(name.split()), country, domain, crm


async def fill_directory(engine: Any, count: int, rng: random.Random) -> list[tuple[Any, ...]]:
    """`count` approved registrations on `count` accounts; returns what to look up."""
    start = datetime(2026, 1, 5, tzinfo=UTC)
    samples: list[tuple[Any, ...]] = []
    chunk = 20_000
    for base in range(0, count, chunk):
        regs, intervals, domains, crms, names, keys = [], [], [], [], [], []
        for i in range(base, min(count, base + chunk)):
            name, country, domain, crm = company(rng, i)
            key = f"dom:{domain}"
            rid = f"reg_{i:012d}"
            partner = f"p-{i % 500}"
            at = start + timedelta(seconds=i)
            row = empty_row(rid)
            row.update(partner_id=partner, account_key=key, motion="resell",
                       account={"name": name, "domain": domain, "country": country,
                                "crm_account_id": crm},
                       opportunity={"title": "deal", "products": ["analytics"],
                                    "amount": {"value": "1000.00", "currency": "USD"},
                                    "expected_close": None},
                       status="approved", submitted_at=at, decided_at=at,
                       first_decided_at=at, first_rule="no_conflict", collided=False,
                       decision_latency_ms=12, protected_until=at + timedelta(days=900),
                       amount_e4=to_e4(Decimal("1000")), currency="USD",
                       scope_products=["analytics"], policy_version=1,
                       decision={"rule": "no_conflict", "policy_version": 1,
                                 "explanation": "Approved", "conflicts": [], "flags": []})
            regs.append(row)
            intervals.append({
                "holder_id": rid, "opened_by": f"evt_{i}.d0", "account_key": key,
                "kind": "protection", "party_type": "partner", "party_id": partner,
                "products": ["analytics"], "status": "approved", "credit_percent": None,
                "valid_from": at, "valid_to": None, "protected_until": at + timedelta(days=900)})
            d, c, n, k = facts(key, Account(name=name, domain=domain, country=country,
                                            crm_account_id=crm))
            domains += d
            crms += c
            names += n
            keys += k
            if rng.random() < 0.01:
                samples.append((name, country, domain, crm, rid, partner))
        dedup_keys = list({(r["country"], r["key"], r["name"]): r for r in keys}.values())
        dedup_names = list({(r["country"], r["name"], r["account_key"]): r
                            for r in names}.values())
        async with engine.begin() as conn:
            await repository.upsert(conn, registrations, regs, ("id",))
            await repository.upsert(conn, ownership_intervals, intervals,
                                    ("holder_id", "opened_by"))
            await repository.upsert(conn, account_domains, domains, ("domain",),
                                    overwrite=False)
            await repository.upsert(conn, account_crm_ids, crms, ("crm_account_id",),
                                    overwrite=False)
            await repository.upsert(conn, account_names, dedup_names,
                                    ("country", "name", "account_key"), overwrite=False)
            await repository.upsert(conn, account_name_keys, dedup_keys,
                                    ("country", "key", "name"), overwrite=False)
        if base and base % 200_000 == 0:
            print(f"  directory: {base:,} registrations", flush=True)
    return samples


BASE = 20_000
"""Registrations built by the product's own code (`facts`, `empty_row`, bulk upserts); a
bigger directory is copies of this base made in SQL (`replicate`)."""


def token(copy: int) -> str:
    """A name word of copy `copy` that normalization keeps as it is (checked in the unit
    tests): `qz` and two letters."""
    return "qz" + chr(97 + copy // 26 % 26) + chr(97 + copy % 26)


def replicate(path: Path, copies: int) -> None:
    """Make copies 1..copies-1 of every directory row in the SQLite read model at `path`,
    in SQL (seconds for a million rows, where the product's code path takes many minutes
    on a loaded machine). The schema is the real one; copy c of a registration has its own
    id, domain (`cC-<domain>`), CRM id (`<id>-cC`), account key (`dom:cC-<domain>`) and
    name (the normalized name plus the word `token(c)`), with the name keys the product
    would file for that name: the base name's keys plus the word's own
    (`blocking_keys` is per word; checked in the unit tests)."""
    import sqlite3

    from shared.accounts import blocking_keys

    tables = ("registrations", "ownership_intervals", "account_domains", "account_crm_ids",
              "account_names", "account_name_keys")
    db = sqlite3.connect(path)
    # A bulk load: no journal, no fsync, a big cache, and the secondary indexes dropped
    # while the rows go in and built once afterwards (sorting beats a million updates).
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-200000")
    columns = {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in tables}
    marks = ", ".join("?" * len(tables))
    indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                         f"sql IS NOT NULL AND tbl_name IN ({marks})", tables).fetchall()
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")
    for t in tables:
        db.execute(f"CREATE TEMP TABLE base_{t} AS SELECT * FROM {t}")
    key = "'dom:' || :p || substr(account_key, 5)"
    changed = {
        "registrations": {
            "id": "id || :s", "account_key": key,
            "account": "json_set(account, '$.domain', :p || json_extract(account, "
                       "'$.domain'), '$.crm_account_id', CASE WHEN json_extract(account, "
                       "'$.crm_account_id') IS NULL THEN NULL ELSE json_extract(account, "
                       "'$.crm_account_id') || :s END, '$.name', json_extract(account, "
                       "'$.name') || ' ' || :t)"},
        "ownership_intervals": {"holder_id": "holder_id || :s", "opened_by": "opened_by || :s",
                                "account_key": key},
        "account_domains": {"domain": ":p || domain", "account_key": key},
        "account_crm_ids": {"crm_account_id": "crm_account_id || :s", "account_key": key},
        "account_names": {"name": "name || ' ' || :t", "account_key": key},
        "account_name_keys": {"name": "name || ' ' || :t"},
    }
    with db:
        for c in range(1, copies):
            params = {"s": f"-c{c}", "p": f"c{c}-", "t": token(c)}
            for t in tables:
                exprs = ", ".join(changed[t].get(col, col) for col in columns[t])
                db.execute(f"INSERT INTO {t} ({', '.join(columns[t])}) "
                           f"SELECT {exprs} FROM base_{t}", params)
            for k in sorted(blocking_keys(token(c))):
                db.execute("INSERT OR IGNORE INTO account_name_keys (country, key, name) "
                           "SELECT country, :k, name || ' ' || :t FROM base_account_names",
                           {**params, "k": k})
        for _, sql in indexes:
            db.execute(sql)
    db.execute("ANALYZE")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


def copy_sample(sample: tuple[Any, ...], copy: int) -> tuple[Any, ...]:
    """What to look up for copy `copy` of a base registration's sample."""
    if copy == 0:
        return sample
    name, country, domain, crm, rid, partner = sample
    return (f"{normalize_name(name)} {token(copy)}", country, f"c{copy}-{domain}",
            None if crm is None else f"{crm}-c{copy}", f"{rid}-c{copy}", partner)


def misspell(name: str, rng: random.Random) -> str:
    words = name.split()
    longest = max(range(len(words)), key=lambda j: len(words[j]))
    word = words[longest]
    if len(word) > 6:
        j = rng.randrange(2, len(word) - 2)
        word = word[:j] + word[j + 1] + word[j] + word[j + 2:]
    words[longest] = word
    return " ".join(words)


def lookup_requests(samples: list[tuple[Any, ...]], rng: random.Random, count: int,
                    admin: str, partner: str) -> list[loadgen.Request]:
    """The look-up mix: 70 % by domain, 10 % by CRM id, 10 % by exact name + country,
    10 % by a misspelt name (fuzzy); a third as a partner (redacted answers)."""
    out = []
    for n in range(count):
        name, country, domain, crm, _rid, _partner = rng.choice(samples)
        roll = rng.random()
        if roll < 0.7 or (roll < 0.8 and crm is None):
            params = {"domain": domain}
        elif roll < 0.8:
            params = {"crm_account_id": crm}
        elif roll < 0.9:
            params = {"name": name, "country": country}
        else:
            params = {"name": misspell(name, rng), "country": country}
        token = partner if n % 3 == 0 else admin
        out.append(loadgen.Request("GET", f"/v1/ownership?{urlencode(params)}",
                                   headers=(("Authorization", f"Bearer {token}"),)))
    return out


def first_owner(_k: int, status: int, body: bytes) -> int | None:
    if status != 200:
        return None
    return len(orjson.loads(body)["owners"])


async def bench_lookups(count: int, rate: float, seconds: float,
                        keep: Path | None = None) -> dict[str, Any]:
    """`count` registrations in the real read-model schema, then `GET /v1/ownership`
    through HTTP against a real `dealreg dev` on that data directory, open loop."""
    directory = keep or Path(tempfile.mkdtemp(prefix="bench-own-"))
    directory.mkdir(parents=True, exist_ok=True)
    settings = Settings(backend="embedded", data_dir=directory, admin_token=ADMIN)
    rng = random.Random(17)
    started = time.perf_counter()
    saved = directory / "bench-samples.json"
    if saved.exists():  # --keep of an earlier run: the same directory again
        count, partner_token, raw = orjson.loads(saved.read_bytes())
        samples = [tuple(s) for s in raw]
    else:
        engine = create_engine(settings.embedded_readmodel_url)
        await migrate(engine)
        copies = max(1, count // BASE)
        samples = await fill_directory(engine, min(count, BASE), rng)
        partner_token = (await Authenticator(ADMIN, engine).mint("partner", "p-1",
                                                                  "bench")).token
        await engine.dispose()
        await asyncio.to_thread(replicate, directory / "readmodel.sqlite3", copies)
        samples = [copy_sample(s, rng.randrange(copies)) for s in samples for _ in range(3)]
        count = min(count, BASE) * copies
        if keep is not None:
            saved.write_bytes(orjson.dumps([count, partner_token, samples]))
    filled = time.perf_counter() - started
    print(f"directory of {count:,} registrations filled in {filled:.0f} s", flush=True)

    port = free_port()
    env = {**os.environ, "DEALREG_ADMIN_TOKEN": ADMIN, "DEALREG_LOG_LEVEL": "WARNING",
           "DEALREG_RATE_LIMIT_PER_SECOND": "0"}
    log = open(directory / "dev.log", "wb")  # noqa: SIM115, ASYNC230
    command = [sys.executable, "-m", "dealreg", "dev", "--port", str(port), "--data-dir",
               str(directory)]
    proc = subprocess.Popen(command, env=env, stdout=log,  # noqa: ASYNC220
                            stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, timeout=120)
        warm = lookup_requests(samples, rng, 300, ADMIN, partner_token)
        await asyncio.to_thread(loadgen.run, loadgen.Plan(url, warm, rate=100, seconds=3,
                                                          processes=1, concurrency=16))
        reqs = lookup_requests(samples, rng, int(rate * seconds), ADMIN, partner_token)
        cpu0 = loadgen.process_cpu_seconds(proc.pid)
        result = await asyncio.to_thread(loadgen.run, loadgen.Plan(
            url, reqs, rate=rate, seconds=seconds, processes=2, concurrency=32,
            extract=first_owner))
        server_cores = (loadgen.process_cpu_seconds(proc.pid) - cpu0) / result.wall_seconds
    finally:
        stop(proc)
        log.close()
    found = sum(1 for v in result.extracts.values() if v)
    print(f"ownership through HTTP at {rate:.0f}/s: p50 {result.ms(50):.2f} ms, p99 "
          f"{result.ms(99):.2f} ms, statuses {result.statuses}, client "
          f"{result.client_cores:.2f} cores, server {server_cores:.2f} cores"
          f"{'' if result.valid else '  INVALID: ' + str(result.saturated)}", flush=True)
    if keep is None:
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "directory_registrations": count,
        "directory_fill_seconds": round(filled, 1),
        "ownership_http_answers_with_owners": found,
        "ownership_http_server_cores": round(server_cores, 3),
        **result.summary("ownership_http_"),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=1_000_000)
    parser.add_argument("--rebuild-events", type=int, default=100_000,
                        help="intake events of the rebuild workload (decisions come on top)")
    parser.add_argument("--rate", type=float, default=100, help="look-ups per second")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--quick", action="store_true", help="small (make bench QUICK=1)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="data directory for the look-ups, kept afterwards")
    parser.add_argument("--postgres", action="store_true",
                        help="also rebuild into PostgreSQL (DEALREG_TEST_DATABASE_URL)")
    args, _ = parser.parse_known_args()
    if args.quick:
        args.registrations, args.rebuild_events, args.seconds = 20_000, 3_000, 4
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    postgres_url = None
    if args.postgres:
        from tests.support.servers import create_database, start_postgres

        server = start_postgres()
        postgres_url = await create_database(server.url, "bench_projections")
    results.update(await bench_rebuild(args.rebuild_events, postgres_url))
    results.update(await bench_lookups(args.registrations, args.rate, args.seconds,
                                       args.keep))
    record("projections", results)


if __name__ == "__main__":
    from tests.bench.common import exit_on_sigterm

    exit_on_sigterm()  # its servers stop when run.py stops it at its timeout
    asyncio.run(main())
