"""Adversarial checks of a live batch's set-based writes on real PostgreSQL: the staged
(COPY + one upsert) and multi-row paths store what row-by-row writes store, and lock rows
in the order row-by-row writers do (two projection processes must not deadlock)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event, select
from sqlalchemy.engine import make_url

from services.projections import worker as worker_module
from services.projections.adapters import repository
from services.projections.domain.batch import MODELS
from services.projections.worker import ProjectionWorker
from shared.eventlog import TopicPartition
from shared.eventlog.topics import Topics
from shared.readmodel.schema import (
    NAME_KEPT,
    account_name_keys,
    pipeline_totals,
    projection_positions,
    registrations,
)
from shared.readmodel.store import create_engine, migrate
from tests.conftest import make_eventlog
from tests.integration.projections.projection_support import (
    append_workload,
    positions,
    snapshot,
)
from tests.integration.projections.test_projection_store import read_all
from tests.support.servers import ServerHandle, create_database
from tests.unit.projections.projection_workload import generate

# Text as COPY's text format and SQL literals would mangle it (tabs, newlines,
# backslashes, `\N`), unicode beyond the BMP; no NUL (PostgreSQL text cannot hold it).
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_NASTY = st.text(_CHARS, max_size=12) | st.sampled_from(
    ["\\N", "\t", "\n", "\\", "a\\.b", "^b", "a"])


def _short(size: int) -> st.SearchStrategy[str]:
    return _NASTY.map(lambda s: s[:size])


_TIME = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)),
                                                timezone(timedelta(hours=5, minutes=30))]))
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | _NASTY,
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_NASTY, inner, max_size=3), max_leaves=6)


@st.composite
def _batch(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """Rows of one batch, 0-9 per table (across STAGE_FROM_ROWS = 8), keyed as the fold
    keys them (one row per conflict key), keys from small alphabets so that later batches
    hit the rows earlier ones stored."""
    key = st.sampled_from(["a", "^b", "B", "\\N", "\t", "é", "a b"])
    # Sizes around the staging threshold (7/8/9 rows), and single and multi-row ones.
    size = st.sampled_from([0, 1, 2, repository.STAGE_FROM_ROWS - 1,
                            repository.STAGE_FROM_ROWS, repository.STAGE_FROM_ROWS + 1])
    n = [draw(size) for _ in range(5)]
    intervals = draw(st.dictionaries(
        st.tuples(key, key), st.fixed_dictionaries({
            "account_key": _short(300), "kind": st.just("protection"),
            "party_type": _short(10), "party_id": _short(100),
            "products": st.none() | _JSON, "status": _short(20),
            "credit_percent": st.none() | st.decimals(-999, 999, places=2),
            "valid_from": _TIME, "valid_to": st.none() | _TIME,
            "protected_until": st.none() | _TIME}), min_size=n[0], max_size=n[0]))
    names = draw(st.lists(st.tuples(key.map(lambda s: s[:2]), key, _short(300)),
                          unique=True, min_size=n[1], max_size=n[1]))
    # Each name's latest filer (merged by "latest": a later one replaces the stored one,
    # session 30), None (kept) or a filing at a small offset, so batches meet ties too.
    filers = [draw(st.none() | st.tuples(key, st.integers(-1, 2))) for _ in names]
    totals = draw(st.dictionaries(
        st.tuples(key, key, key, key.map(lambda s: s[:3])),
        st.tuples(st.integers(-3, 3), st.integers(-10**12, 10**12)).filter(
            lambda v: v != (0, 0)), min_size=n[2], max_size=n[2]))
    timeline = draw(st.dictionaries(
        st.tuples(key, key), st.tuples(st.integers(0, 2**62), _short(100),
                                       st.text(_CHARS, max_size=2000)),
        min_size=n[3], max_size=n[3]))
    # Disputes: booleans, JSON that must not be NULL, a long text column.
    disputes = draw(st.dictionaries(st.tuples(key, key).map(''.join), st.fixed_dictionaries({
        "status": _short(10), "level": st.integers(-2**31, 2**31 - 1),
        "owners": _JSON.filter(lambda v: v is not None),
        "registration_ids": st.lists(_NASTY, max_size=3), "breached": st.booleans(),
        "resolution": st.none() | _JSON, "opened_at": st.none() | _TIME,
        "explanation": st.none() | st.text(_CHARS, max_size=300)}),
        min_size=n[4], max_size=n[4]))
    return {
        "intervals": [{"holder_id": h, "opened_by": o, **row}
                      for (h, o), row in sorted(intervals.items())],
        "names": [{"country": c, "name": n, "account_key": k,
                   "filed_by": f[0] if f else None, "filed_at": f[1] if f else NAME_KEPT}
                  for (c, n, k), f in zip(names, filers, strict=True)],
        "unfiled": [{"account_key": k, "name": n, "filed_by": f[0]}
                    for (_, n, k), f in zip(names, filers, strict=True) if f],
        "totals": [{"partner_id": p, "status": s, "motion": m, "currency": c,
                    "count": n, "amount_e4": a}
                   for (p, s, m, c), (n, a) in sorted(totals.items())],
        "timeline": [{"subject_id": s, "event_id": e, "at_us": at, "type": t, "data": d}
                     for (s, e), (at, t, d) in sorted(timeline.items())],
        "disputes": [{"id": i, **row} for i, row in sorted(disputes.items())],
    }


def _as_batch(rows: dict[str, list[dict[str, Any]]]) -> Any:
    """What `repository.prepare` reads of a folded batch, holding exactly these rows."""
    def keyed(found: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], Any]:
        return {tuple(r[k] for k in keys): dict(r) for r in found}

    def none() -> list[dict[str, Any]]:
        return []

    def disputes() -> list[dict[str, Any]]:
        return [dict(r) for r in rows.get("disputes", [])]

    return SimpleNamespace(
        changed_registrations=none, changed_claims=none, changed_disputes=disputes,
        pipeline=lambda: SimpleNamespace(total_rows=lambda: [dict(r) for r in rows["totals"]],
                                         product_rows=none),
        intervals=keyed(rows["intervals"], "holder_id", "opened_by"), domains={},
        crm_ids={}, names=keyed(rows["names"], "country", "name", "account_key"),
        name_keys={}, unfiled_names=keyed(rows.get("unfiled", []), "account_key", "name",
                                          "filed_by"), unfiled_back={}, link_facts={},
        members={}, breaches={},
        timeline=keyed(rows["timeline"], "subject_id", "event_id"), outbox={})


_WAYS = (None, 1, repository.STAGE_FROM_ROWS, 10**6)
"""Row by row (the reference), all staged, the live threshold, all multi-row."""


@pytest.fixture(scope="module")
def ways_databases(postgres_server: ServerHandle) -> Iterator[dict[int | None, str]]:
    async def made() -> dict[int | None, str]:
        urls = {}
        for way in _WAYS:
            url = urls[way] = await create_database(postgres_server.url, f"ways_{way}")
            engine = create_engine(url)
            await migrate(engine)
            await engine.dispose()
        return urls

    yield asyncio.run(made())


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(batches=st.lists(_batch(), min_size=1, max_size=3),
       partitions=st.integers(0, 12))
def test_adversarial_live_batches_store_alike_staged_multirow_and_row_by_row(
    ways_databases: dict[int | None, str], batches: list[dict[str, list[dict[str, Any]]]],
    partitions: int,
) -> None:
    """Nasty text (COPY escapes, unicode), JSON, decimals, NULLs, aware times of several
    offsets, counters added to stored totals (and dropped at zero), first-writer-wins
    rows met again, positions of 0-60 rows: every way of writing stores the same."""
    async def one_way(way: int | None) -> Any:
        engine = create_engine(ways_databases[way])
        try:
            async with engine.begin() as conn:
                for model in repository.TABLES:
                    for table in repository.TABLES[model]:
                        await conn.execute(delete(table))
                await conn.execute(delete(projection_positions))
            for i, rows in enumerate(batches):
                async with engine.begin() as conn:
                    await repository.write(conn, _as_batch(rows), stage_from=way)
                    await repository.save_positions(conn, {
                        m: {TopicPartition(f"t\t{i}\\N", p): i * 10 + p
                            for p in range(partitions)} for m in MODELS},
                        stage_from=way)
            return (await snapshot(engine), await positions(engine))
        finally:
            await engine.dispose()

    async def run() -> list[Any]:
        # Each way writes its own database: the four run at once (their round trips
        # overlap), each exactly as it would alone.
        return list(await asyncio.gather(*(one_way(way) for way in _WAYS)))

    reference, *others = asyncio.run(run())
    for way, other in zip(_WAYS[1:], others, strict=True):
        assert other == reference, way


async def _icu_database(server: ServerHandle, name: str) -> str:
    """A database whose default collation is ICU English (what a PostgreSQL image's
    `en_US.UTF-8` default orders like): `B` sorts after `a`, unlike code point order."""
    url = make_url(server.url)
    admin = await asyncpg.connect(url.set(drivername="postgresql", database="postgres")
                                  .render_as_string(hide_password=False))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 "
                            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'")
    finally:
        await admin.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def test_a_staged_batch_locks_rows_in_the_order_row_by_row_writers_do(
    postgres_server: ServerHandle, unique: str,
) -> None:
    """Two projection processes write overlapping directory rows: one a batch of 9 name
    keys (staged), the other 2 (in key order, as multi-row or row-by-row writes lock
    them). Under a collation other than code point order the staged upsert must still
    take the rows in the fold's (code point) key order, or the two wait on each other
    (deadlock: PostgreSQL aborts one batch and the worker crashes)."""
    engine = create_engine(await _icu_database(postgres_server, f"icu_{unique}"))
    try:
        await migrate(engine)
        async with engine.connect() as check:
            assert (await check.exec_driver_sql(
                "SELECT 'B' > 'a'")).scalar_one() is True
        assert sorted(["B", "a"]) == ["B", "a"]  # the fold's order: B first
        big = SimpleNamespace(**vars(_as_batch({"intervals": [], "names": [], "totals": [],
                                                "timeline": []})))
        big.name_keys = {("zz", k, "n"): {"country": "zz", "key": k, "name": "n"}
                         for k in ["B", "a", *(f"k{i}" for i in range(7))]}
        assert len(big.name_keys) >= repository.STAGE_FROM_ROWS

        async with engine.connect() as other:
            await other.begin()
            # The other writer's statement takes B first (its rows in key order) ...
            await other.execute(account_name_keys.insert().values(country="zz", key="B",
                                                                  name="n"))

            async def staged() -> None:
                async with engine.begin() as conn:
                    await conn.exec_driver_sql("SET deadlock_timeout = '100ms'")
                    await repository.write(conn, big)

            writing = asyncio.create_task(staged())
            await asyncio.sleep(0.5)  # the staged writer waits on B (having taken 'a'?)
            # ... then 'a': it waits for the staged writer if that took 'a' before B.
            await other.exec_driver_sql("SET lock_timeout = '3s'")
            await other.execute(account_name_keys.insert().values(country="zz", key="a",
                                                                  name="n"))
            await other.commit()
            await asyncio.wait_for(writing, 10)
    finally:
        await engine.dispose()


async def test_decided_registrations_are_handed_to_waiters_before_the_directory_is_analyzed(
    request: pytest.FixtureRequest, tmp_path: Path, unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The `ANALYZE` of the directory's name tables (after a batch that doubled them) runs
    after the batch's committed rows went to the co-located waiters (`on_applied`): a
    `Prefer: wait` answer does not wait for statistics (tens to hundreds of ms)."""
    server: ServerHandle = request.getfixturevalue("postgres_server")
    log = make_eventlog("kafka", request, tmp_path)
    await log.start()
    topics = Topics.named(f"analyze-order-{unique}")
    await log.create_topics(topics.specs(3))
    engine = create_engine(await create_database(server.url, f"aorder_{unique}"))
    seen: list[str] = []

    async def analyze_count() -> int:
        async with engine.connect() as conn:
            return int((await conn.exec_driver_sql(
                "SELECT analyze_count FROM pg_stat_user_tables "
                "WHERE relname = 'account_names'")).scalar_one())

    try:
        await migrate(engine)
        await append_workload(log, topics, generate(200, seed=5, accounts=60, partners=6))
        intake = (await read_all(log, topics))[topics.intake]
        monkeypatch.setattr(worker_module, "ANALYZE_FROM_ROWS", 1)
        worker = ProjectionWorker(log, engine, topics, group_id="unused",
                                  on_applied=lambda ids, rows: seen.append("applied"))
        original = ProjectionWorker._analyze_when_grown

        async def analyze(self: ProjectionWorker, batch: Any) -> None:
            before = await analyze_count()
            await original(self, batch)
            if await analyze_count() > before:
                seen.append("analyzed")

        monkeypatch.setattr(ProjectionWorker, "_analyze_when_grown", analyze)
        await worker.apply(intake[:50])
        assert seen == ["applied", "analyzed"]
    finally:
        await engine.dispose()
        await log.close()


async def test_loading_rows_by_id_prepares_one_statement_whatever_the_number_of_ids(
    postgres_server: ServerHandle, unique: str,
) -> None:
    """A batch loads the rows it changes by id; batches come in every size. An
    `IN ($1, .., $n)` list was a new statement text (a new prepared statement: a round
    trip, a parse, a plan) per count, which evicted the others from the connection's
    cache of 100. The ids go as one array: one prepared statement per table, the same
    rows found."""
    engine = create_engine(await create_database(postgres_server.url, f"ids_{unique}"))
    try:
        await migrate(engine)
        ids = [f"r{i:03d}" for i in range(120)]
        async with engine.begin() as conn:
            await conn.execute(registrations.insert(), [
                {"id": i, "partner_id": "p", "account_key": "k", "account": {},
                 "opportunity": {}, "motion": "new", "status": "approved",
                 "submitted_at": datetime(2026, 1, 1, tzinfo=UTC)} for i in ids])
        async with engine.connect() as conn:
            for count in range(1, 121):
                wanted = [*ids[-count:], "missing"]
                found = await repository.load_registrations(conn, wanted)
                assert sorted(found) == sorted(ids[-count:])
            prepared = (await conn.exec_driver_sql(
                "SELECT statement FROM pg_prepared_statements")).scalars().all()
        loads = [s for s in prepared if s.startswith("SELECT registrations.id")]
        assert len(loads) == 1, loads
    finally:
        await engine.dispose()


async def test_multi_row_writes_prepare_one_statement_per_table_whatever_the_row_count(
    postgres_server: ServerHandle, unique: str,
) -> None:
    """Live batches write 2 to 7 rows of a table as one multi-row upsert. A `VALUES` list
    per row count was a statement per count and table: more than asyncpg's cache of 100
    per connection, so they were prepared again and again. One text per table (the
    values as arrays), and the rows stored as before."""
    engine = create_engine(await create_database(postgres_server.url, f"rows_{unique}"),
                           pool_size=1, max_overflow=0)
    try:
        await migrate(engine)
        stored: dict[tuple[str, str], dict[str, Any]] = {}
        for count in range(2, repository.STAGE_FROM_ROWS):
            rows = [{"holder_id": f"h{count}-{i}", "opened_by": "e", "account_key": "k",
                     "kind": "protection", "party_type": "partner", "party_id": "p",
                     "products": None if i % 2 else ["x", "é"], "status": "approved",
                     "credit_percent": None, "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
                     "valid_to": None, "protected_until": None} for i in range(count)]
            stored.update({(r["holder_id"], r["opened_by"]): r for r in rows})
            async with engine.begin() as conn:
                await repository.write(conn, _as_batch(
                    {"intervals": rows, "names": [], "totals": [], "timeline": []}))
        async with engine.connect() as conn:
            prepared = (await conn.exec_driver_sql(
                "SELECT statement FROM pg_prepared_statements")).scalars().all()
            found = (await conn.exec_driver_sql(
                "SELECT holder_id, products FROM ownership_intervals")).all()
        writes = [s for s in prepared if s.startswith('INSERT INTO "ownership_intervals"')]
        assert len(writes) == 1, writes
        assert {(h, "e"): p for h, p in found} == {
            k: r["products"] for k, r in stored.items()}
    finally:
        await engine.dispose()


async def test_loading_an_id_longer_than_the_column_finds_no_row_by_its_prefix(
    postgres_server: ServerHandle, unique: str,
) -> None:
    """Ids are passed as one array (`repository.one_of`); cast to the column's own
    `VARCHAR(64)[]` PostgreSQL cuts each element to 64 characters (an explicit cast
    truncates), so an over-long id found the row of its 64-character prefix. An `IN`
    list compares the whole value: nothing is found, as here."""
    engine = create_engine(await create_database(postgres_server.url, f"long_{unique}"))
    try:
        await migrate(engine)
        stored = "r" * 64
        async with engine.begin() as conn:
            await conn.execute(registrations.insert(), [
                {"id": stored, "status": "approved",
                 "submitted_at": datetime(2026, 1, 1, tzinfo=UTC)}])
        async with engine.connect() as conn:
            assert await repository.load_registrations(conn, [stored + "-other"]) == {}
            assert list(await repository.load_registrations(
                conn, [stored + "-other", stored])) == [stored]
    finally:
        await engine.dispose()


async def test_zero_totals_are_deleted_only_after_a_batch_that_did_not_raise_every_count(
    postgres_server: ServerHandle, unique: str,
) -> None:
    """Totals rows that fell to zero are deleted (totals depend on the data, not the
    batching), but only a row whose count the batch did not raise can be at zero: a batch
    that only raises counts (a registration submitted and decided in one batch) sends no
    `DELETE` (session 28: it was two round trips per batch, one per totals table)."""
    engine = create_engine(await create_database(postgres_server.url, f"zero_{unique}"))
    deletes: list[str] = []

    def seen(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("DELETE"):
            deletes.append(args[2])
    event.listen(engine.sync_engine, "before_cursor_execute", seen)

    def totals(*rows: tuple[str, int, int]) -> Any:
        return _as_batch({"intervals": [], "names": [], "timeline": [], "totals": [
            {"partner_id": "p", "status": status, "motion": "resell", "currency": "USD",
             "count": count, "amount_e4": amount} for status, count, amount in rows]})

    async def stored() -> list[tuple[str, int, int]]:
        async with engine.connect() as conn:
            return sorted((r.status, r.count, r.amount_e4) for r in await conn.execute(
                select(pipeline_totals)))
    try:
        await migrate(engine)
        deletes.clear()  # (the migrations' own)
        async with engine.begin() as conn:
            await repository.write(conn, totals(("submitted", 1, 10), ("approved", 2, -20)))
        assert deletes == []  # every count rose: no row can be at zero
        async with engine.begin() as conn:
            await repository.write(conn, totals(("submitted", -1, -10), ("approved", 1, 20)))
        assert len(deletes) == 1
        assert await stored() == [("approved", 3, 0)]  # the zero row went, not the zero sum
        async with engine.begin() as conn:
            await repository.write(conn, totals(("approved", 0, 5)))  # a count not raised
        assert len(deletes) == 2
        assert await stored() == [("approved", 3, 5)]
    finally:
        await engine.dispose()
