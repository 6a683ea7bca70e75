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
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # runnable from a checkout without `pip install -e`
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from services.projections.adapters import repository  # noqa: E402
from services.projections.adapters.rebuild import rebuild  # noqa: E402
from services.projections.api import routers  # noqa: E402
from services.projections.domain.directory import facts  # noqa: E402
from services.projections.domain.registrations import empty_row, to_e4  # noqa: E402
from shared.api.auth import Authenticator  # noqa: E402
from shared.api.problems import install_problem_handlers  # noqa: E402
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
from tests.bench.common import percentile, record  # noqa: E402
from tests.integration.projections.projection_support import append_workload  # noqa: E402
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
        result = await rebuild(log, engine, topics)
        await engine.dispose()
        results[f"rebuild_{name}_seconds"] = round(result.seconds, 2)
        results[f"rebuild_{name}_events_per_second"] = round(result.events_per_second)
        print(f"rebuild into {name}: {records:,} records in {result.seconds:.1f} s "
              f"= {result.events_per_second:,.0f} events/s", flush=True)
    await log.close()
    return results


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


def misspell(name: str, rng: random.Random) -> str:
    words = name.split()
    longest = max(range(len(words)), key=lambda j: len(words[j]))
    word = words[longest]
    if len(word) > 6:
        j = rng.randrange(2, len(word) - 2)
        word = word[:j] + word[j + 1] + word[j] + word[j + 2:]
    words[longest] = word
    return " ".join(words)


class _Runtime:
    def __init__(self, engine: Any, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.topics = Topics.named("bench")
        self.projection_worker = None


async def bench_lookups(count: int, lookups: int) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="bench-own-"))
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'readmodel.sqlite3'}")
    await migrate(engine)
    rng = random.Random(17)
    started = time.perf_counter()
    samples = await fill_directory(engine, count, rng)
    filled = time.perf_counter() - started
    print(f"directory of {count:,} registrations filled in {filled:.0f} s", flush=True)

    app = FastAPI()
    settings = Settings(backend="embedded", data_dir=directory, admin_token=ADMIN)
    app.state.runtime = _Runtime(engine, settings)
    authenticator = Authenticator(ADMIN, engine) if _accepts_engine() else Authenticator(ADMIN)
    app.state.authenticator = authenticator
    install_problem_handlers(app)
    for router in routers:
        app.include_router(router)
    partner_token = ADMIN
    if hasattr(authenticator, "mint"):
        partner_token = (await authenticator.mint("partner", "p-1", "bench")).token
    kinds: dict[str, list[float]] = {"domain": [], "crm_account_id": [], "name": [],
                                     "fuzzy_name": []}
    misses = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bench") as client:
        for n in range(lookups + 200):
            name, country, domain, crm, _rid, _partner = rng.choice(samples)
            roll = rng.random()
            if roll < 0.7 or (roll < 0.8 and crm is None):
                kind, params = "domain", {"domain": domain}
            elif roll < 0.8:
                kind, params = "crm_account_id", {"crm_account_id": crm}
            elif roll < 0.9:
                kind, params = "name", {"name": name, "country": country}
            else:
                kind, params = "fuzzy_name", {"name": misspell(name, rng), "country": country}
            token = partner_token if n % 3 == 0 else ADMIN
            t0 = time.perf_counter()
            response = await client.get("/v1/ownership", params=params,
                                        headers={"Authorization": f"Bearer {token}"})
            elapsed = (time.perf_counter() - t0) * 1000
            if response.status_code != 200:
                raise RuntimeError(response.text)
            owners = response.json()["owners"]
            if kind != "fuzzy_name" and not owners:
                misses += 1
            if n >= 200:  # the first requests warm caches and code paths
                kinds[kind].append(elapsed)
    await engine.dispose()
    every = [v for values in kinds.values() for v in values]
    results: dict[str, Any] = {
        "directory_registrations": count,
        "directory_fill_seconds": round(filled, 1),
        "lookups": len(every),
        "lookup_misses_exact": misses,
        "ownership_p50_ms": round(percentile(every, 50), 3),
        "ownership_p99_ms": round(percentile(every, 99), 3),
        "ownership_mean_ms": round(statistics.fmean(every), 3),
    }
    for kind, values in kinds.items():
        if values:
            results[f"ownership_{kind}_p50_ms"] = round(percentile(values, 50), 3)
            results[f"ownership_{kind}_p99_ms"] = round(percentile(values, 99), 3)
    return results


def _accepts_engine() -> bool:
    import inspect

    return "engine" in inspect.signature(Authenticator.__init__).parameters


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=1_000_000)
    parser.add_argument("--rebuild-events", type=int, default=100_000,
                        help="intake events of the rebuild workload (decisions come on top)")
    parser.add_argument("--lookups", type=int, default=5_000)
    parser.add_argument("--postgres", action="store_true",
                        help="also rebuild into PostgreSQL (DEALREG_TEST_DATABASE_URL)")
    args, _ = parser.parse_known_args()
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    postgres_url = None
    if args.postgres:
        from tests.support.servers import create_database, start_postgres

        server = start_postgres()
        postgres_url = await create_database(server.url, "bench_projections")
    results.update(await bench_rebuild(args.rebuild_events, postgres_url))
    results.update(await bench_lookups(args.registrations, args.lookups))
    record("projections", results)


if __name__ == "__main__":
    asyncio.run(main())
