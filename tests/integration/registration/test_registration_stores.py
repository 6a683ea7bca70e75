"""The command side's stores against real PostgreSQL (and Kafka for the reference topic):
account resolution from the directory tables, and policy versions under concurrency."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registration.adapters import directory as directory_module
from services.registration.adapters.directory import AccountDirectory
from services.registration.adapters.reference import ReferenceData
from services.registration.domain.intake import identity_of
from shared.accounts import AccountIdentity, blocking_keys
from shared.accounts.salesforce import any_spelling
from shared.eventlog.kafka import KafkaEventLog
from shared.eventlog.topics import Topics
from shared.policy import MatchPolicy, Policy
from shared.readmodel.schema import (
    account_crm_ids,
    account_domains,
    account_links,
    account_names,
    metadata,
)
from shared.readmodel.store import create_engine, migrate, reader
from tests.support.servers import ServerHandle

MATCH = MatchPolicy(name_threshold=0.9, review_band=0.1)
# A name deciding between a name-only and an identified account (`match.name_only: decide`,
# policies before that option): what the name look-ups below exercise.
NAMES_DECIDE = MatchPolicy(name_threshold=0.9, review_band=0.1, name_only="decide")


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_database)
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_resolution_finds_what_other_processes_filed(engine: AsyncEngine) -> None:
    directory = AccountDirectory(engine, complete=False, rewarm_seconds=3600)
    await directory.warm()  # empty: everything below arrives after the warm-up
    async with engine.begin() as conn:
        await conn.execute(account_domains.insert(), [
            {"domain": "acme.co.uk", "account_key": "dom:acme.co.uk"}])
        await conn.execute(account_crm_ids.insert(), [
            {"crm_account_id": "001XYZ", "account_key": "crm:001XYZ"}])
        await conn.execute(account_names.insert(), [
            {"country": "DE", "name": "muller maschinenbau", "account_key": "name:DE:mm"}])
        blocks = metadata.tables.get("account_name_keys")
        if blocks is not None:  # the projections' blocking keys, as they file them
            await conn.execute(blocks.insert(), [
                {"country": "DE", "key": key, "name": "muller maschinenbau"}
                for key in blocking_keys("maschinenbau muller")])
    by_url = await directory.resolve(
        identity_of(None, "https://shop.acme.co.uk/en", None, None), MATCH)
    assert (by_url.account_key, by_url.matched and by_url.matched.matched_by) == \
        ("dom:acme.co.uk", "domain")
    by_crm = await directory.resolve(identity_of("Whatever", None, "US", "001XYZ"), MATCH)
    assert by_crm.account_key == "crm:001XYZ"
    by_name = await directory.resolve(
        identity_of("Müller Maschinenbau GmbH", None, "Germany", None), MATCH)
    assert by_name.account_key == "name:DE:mm"
    elsewhere = await directory.resolve(
        identity_of("Müller Maschinenbau GmbH", None, "AT", None), MATCH)
    assert elsewhere.is_new and elsewhere.account_key == "name:AT:muller-maschinenbau"
    # Both a known domain and a known CRM id: the CRM id wins, the domain's key is an alias.
    both = await directory.resolve(identity_of(None, "acme.co.uk", None, "001XYZ"), MATCH)
    assert both.account_key == "crm:001XYZ"
    assert [a.account_key for a in both.aliases] == ["dom:acme.co.uk"]


@pytest.mark.parametrize("sqlite", [False, True])
async def test_a_process_behind_the_directory_finds_a_salesforce_id_filed_in_another_spelling(
    engine: AsyncEngine, sqlite: bool, tmp_path: Any
) -> None:
    # Rival review, session 24: the fall-back query of a process whose memory lags the
    # directory (distributed; here warmed empty) asked for the submitted spelling only, so
    # the 18-character spelling of an id another process filed in 15 characters (or the
    # reverse, suffix in any case) got a new key. Under `match.crm_ids: salesforce` every
    # spelling is asked; under `exact` (older policies) still only the one submitted.
    if sqlite:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/directory.sqlite3")
        await migrate(engine)
    id15 = "001hFGAi3f5dig9"
    filed = {"001hFGAi3f5dig9": "crm:001hFGAi3f5dig9",
             "0015000000VALDtaap": "crm:0015000000VALDtaap"}
    directory = AccountDirectory(engine, complete=False, rewarm_seconds=3600)
    await directory.warm()  # empty: what follows was filed by other processes since
    async with engine.begin() as conn:
        await conn.execute(account_crm_ids.insert(), [
            {"crm_account_id": crm, "account_key": key} for crm, key in filed.items()])
    salesforce = MatchPolicy(name_threshold=0.9, review_band=0.1, crm_ids="salesforce")
    for spelling in (id15 + "QDA", id15 + "qdA"):
        found = await directory.resolve(identity_of("Turner Ltd", None, "GB", spelling),
                                        salesforce)
        assert found.account_key == "crm:001hFGAi3f5dig9", spelling
    other = await directory.resolve(identity_of(None, None, None, "0015000000VALDt"),
                                    salesforce)
    assert other.account_key == "crm:0015000000VALDtaap"
    exact = AccountDirectory(engine, complete=False, rewarm_seconds=3600)
    kept = await exact.resolve(identity_of(None, None, None, id15 + "QDA"), MATCH.model_copy(
        update={"crm_ids": "exact"}))
    assert kept.is_new
    if sqlite:
        await engine.dispose()


@pytest.mark.parametrize("sqlite", [False, True])
async def test_a_process_behind_the_directory_finds_a_crm_id_in_an_unusual_spelling(
    engine: AsyncEngine, sqlite: bool, tmp_path: Any
) -> None:
    """Under `match.crm_ids: any_spelling` the fall-back query asked the id as given, its
    spelling-free form and that upper-cased (`crm_id_spellings`), while the adjudicator
    and `GET /v1/ownership` find every spelling: a process behind the directory gave
    "Acc_2024.00777" a new key although another process had filed the holder's
    "ACC-2024-00777". It now also asks the directory's `crm_spelling` (migration 0014),
    the one rule both use; other policies do not (two spellings are two ids there)."""
    if sqlite:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/directory.sqlite3")
        await migrate(engine)
    spellings = ("Acc_2024.00777", "acc 2024/00777", "\uff21CC\u20132024\u201300777")
    # One process per question, each warmed (empty) before another process filed the id.
    behind = [AccountDirectory(engine, complete=False, rewarm_seconds=3600)
              for _ in range(len(spellings) + 1)]
    for directory in behind:
        await directory.warm()
    async with engine.begin() as conn:
        await conn.execute(account_crm_ids.insert(), [
            {"crm_account_id": "ACC-2024-00777", "account_key": "crm:ACC-2024-00777",
             "crm_spelling": any_spelling("ACC-2024-00777")}])
    any_spelled = MatchPolicy(name_threshold=0.9, review_band=0.1, crm_ids="any_spelling")
    for directory, spelling in zip(behind, spellings, strict=False):
        found = await directory.resolve(identity_of("Rival Ltd", None, "GB", spelling),
                                        any_spelled)
        assert (found.account_key, found.is_new) == ("crm:ACC-2024-00777", False), spelling
    kept = await behind[-1].resolve(identity_of(None, None, None, "Acc_2024.00777"),
                                    any_spelled.model_copy(update={"crm_ids": "any_case"}))
    assert kept.is_new
    if sqlite:
        await engine.dispose()


@pytest.mark.parametrize("complete", [True, False])
async def test_a_name_linked_to_one_domain_never_resolves_another_domain(
    engine: AsyncEngine, complete: bool
) -> None:
    # Issue 12: a name-only key linked to acme.com carries acme.com, so "Acme Corp" at
    # acme.io is another customer -- whether the links are folded into memory at warm-up
    # (complete) or found by the fallback queries (distributed).
    directory = AccountDirectory(engine, complete=complete, rewarm_seconds=3600)
    if not complete:
        await directory.warm()  # empty: everything below arrives after the warm-up
    async with engine.begin() as conn:
        await conn.execute(account_domains.insert(), [
            {"domain": "acme.com", "account_key": "dom:acme.com"}])
        await conn.execute(account_names.insert(), [
            {"country": "US", "name": "acme", "account_key": "name:US:acme"}])
        await conn.execute(account_links.insert(), [
            {"account_key": "name:US:acme", "canonical_key": "dom:acme.com",
             "matched_by": "name", "score": 1.0, "linked_at": datetime.now(UTC)}])
        blocks = metadata.tables.get("account_name_keys")
        if blocks is not None:
            await conn.execute(blocks.insert(), [
                {"country": "US", "key": key, "name": "acme"}
                for key in blocking_keys("acme")])
    if complete:
        await directory.warm()
    other = await directory.resolve(identity_of("Acme Corp", "acme.io", "US", None), MATCH)
    assert other.is_new and other.account_key == "dom:acme.io"
    same = await directory.resolve(identity_of("Acme Corp", None, "US", None), NAMES_DECIDE)
    assert same.account_key == "dom:acme.com"


async def test_a_shared_crm_id_follows_its_link_to_a_key_with_another_domain(
    engine: AsyncEngine,
) -> None:
    directory = AccountDirectory(engine, complete=True, rewarm_seconds=3600)
    await directory.warm()
    directory.remember("crm:X1", identity_of(None, None, None, "X1"))
    directory.remember("dom:acme.com", identity_of(None, "acme.com", None, None))
    async with engine.begin() as conn:  # the adjudicator linked them since the warm-up
        await conn.execute(account_links.insert(), [
            {"account_key": "crm:X1", "canonical_key": "dom:acme.com",
             "matched_by": "crm_account_id", "score": 1.0, "linked_at": datetime.now(UTC)}])
    # crm X1 joins acme.io to the customer of acme.com: the link is followed.
    joined = await directory.resolve(identity_of(None, "acme.io", None, "X1"), MATCH)
    assert joined.account_key == "dom:acme.com"


async def test_links_read_by_the_driver_answer_as_the_shared_queries_do(
    engine: AsyncEngine,
) -> None:
    """The registration service reads links with fixed statements sent by asyncpg itself
    (every registration of a known account does): a chain is followed to its end, a cycle
    is not gone round, an unlinked key is itself, and a key's aliases come breadth first
    in key order -- what `queries.canonical_key` and the SQLAlchemy statement answer."""
    from sqlalchemy import select

    from services.registration.adapters.readmodel import ReadModel
    from shared.readmodel import queries

    now = datetime.now(UTC)
    links = [("a", "b"), ("b", "c"), ("x", "y"), ("y", "x"), ("d", "c"), ("e", "a")]
    async with engine.begin() as conn:
        await conn.execute(account_links.insert(), [
            {"account_key": alias, "canonical_key": canonical, "matched_by": "domain",
             "score": 0.5 + i / 10, "linked_at": now}
            for i, (alias, canonical) in enumerate(links)])
    read = reader(engine)
    model = ReadModel(read)
    async with read.connect() as conn:
        for key in ("a", "b", "c", "e", "x", "y", "unlinked"):
            assert (await directory_module.canonical_key(conn, key)
                    == await queries.canonical_key(conn, key))
        assert await directory_module.canonical_key(conn, "e") == "c"
        assert await directory_module.canonical_key(conn, "x") == "y"
    assert await model.aliases_of("c") == [("b", "domain", 0.6), ("d", "domain", 0.9),
                                           ("a", "domain", 0.5), ("e", "domain", 1.0)]
    async with read.connect() as conn:
        statement = select(account_links.c.account_key).where(
            account_links.c.canonical_key == "x")
        assert [r[0] for r in await conn.execute(statement)] == [
            a for a, _, _ in await model.aliases_of("x")]


async def test_a_warm_index_answers_from_memory(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(account_names.insert(), [
            {"country": "US", "name": "initech", "account_key": "dom:initech.com"}])
    directory = AccountDirectory(engine, complete=True, rewarm_seconds=3600)
    await directory.warm()
    typo = await directory.resolve(identity_of("Initech, Inc.", None, "US", None),
                                   NAMES_DECIDE)
    assert typo.account_key == "dom:initech.com"
    directory.remember("dom:globex.com", identity_of("Globex Corporation", "globex.com",
                                                     "US", None))
    assert (await directory.resolve(identity_of("GLOBEX corp", None, "us", None),
                                    NAMES_DECIDE)).account_key == "dom:globex.com"


async def test_loading_a_large_directory_leaves_the_event_loop_to_requests(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A (re)load of the whole directory runs beside live requests (the periodic rewarm):
    it files rows in slices and yields between them, so other tasks run while one query's
    rows are filed; and what it loaded is the whole directory (nothing skipped by slicing)."""
    rows = 12_000
    async with engine.begin() as conn:
        await conn.execute(account_domains.insert(), [
            {"domain": f"d{i}-corp.com", "account_key": f"dom:d{i}-corp.com"}
            for i in range(rows)])
    ticks = 0
    seen_while_filing: set[int] = set()

    class Watched(directory_module.AccountIndex):
        def add(self, key: str, identity: AccountIdentity) -> None:
            seen_while_filing.add(ticks)
            super().add(key, identity)

    monkeypatch.setattr(directory_module, "AccountIndex", Watched)
    directory = AccountDirectory(engine, complete=True, rewarm_seconds=3600)
    loading = True

    async def request_like() -> None:
        nonlocal ticks
        while loading:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(request_like())
    await directory.warm()
    loading = False
    await other
    # Filing 12,000 rows of one query took turns with the other task at least twice.
    assert len(seen_while_filing) >= rows // 5_000 + 1, seen_while_filing
    last = await directory.resolve(identity_of(None, f"d{rows - 1}-corp.com", None, None),
                                   MATCH)
    assert last.account_key == f"dom:d{rows - 1}-corp.com"


async def test_concurrent_publishers_get_consecutive_versions(
    engine: AsyncEngine, kafka_server: ServerHandle, unique: str,
) -> None:
    topics = Topics.named(f"ref-{unique}")
    logs = [KafkaEventLog(kafka_server.url) for _ in range(2)]
    for log in logs:
        await log.start()
    try:
        await logs[0].create_topics(topics.specs(1))
        stores = [ReferenceData(log, engine, topics.reference, source="urn:test",
                                cache_seconds=0) for log in logs]
        documents = [Policy.model_validate({"tie_window": f"PT{i + 1}H"}) for i in range(6)]
        published = await asyncio.gather(*[
            stores[i % 2].publish(doc, published_by="test") for i, doc in enumerate(documents)])
        assert sorted(p.policy.version for p in published) == [1, 2, 3, 4, 5, 6]
        latest = await stores[1].current_policy()
        assert latest.version == 6
        for p in published:
            found = await stores[0].policy(p.policy.version)
            assert found is not None and found[0].tie_window == p.policy.tie_window
    finally:
        for log in logs:
            await log.close()


async def test_a_directory_miss_asks_postgresql_once(engine: AsyncEngine) -> None:
    """A new account in a distributed registration service (CRM id, domain and name all
    unknown to memory) costs one statement, not one per identifier; what it finds is
    still found (test_resolution_finds_what_other_processes_filed)."""
    from sqlalchemy import event

    directory = AccountDirectory(reader(engine), complete=False, rewarm_seconds=3600)
    await directory.warm()
    statements: list[str] = []

    def log(record: Any) -> None:  # asyncpg: what went to the driver (BEGIN/ROLLBACK, raw)
        statements.append(record.query)

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        dbapi_conn.driver_connection.add_query_logger(log)

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.driver_connection.remove_query_logger(log)

    def sent(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)  # what SQLAlchemy sent (prepared statements included)

    event.listen(engine.sync_engine.pool, "checkout", checkout)
    event.listen(engine.sync_engine.pool, "checkin", checkin)
    event.listen(engine.sync_engine, "before_cursor_execute", sent)
    try:
        resolution = await directory.resolve(
            identity_of("Brand New Widgets Ltd", "brand-new-widgets.example", "US", "001NEW"),
            MATCH)
    finally:
        event.remove(engine.sync_engine.pool, "checkout", checkout)
        event.remove(engine.sync_engine.pool, "checkin", checkin)
        event.remove(engine.sync_engine, "before_cursor_execute", sent)
    assert resolution.is_new
    assert len(statements) == 1, "\n---\n".join(statements)


@contextlib.contextmanager
def _driver_statements(engine: AsyncEngine) -> Any:
    """Every statement `engine`'s connections send meanwhile: SQLAlchemy's, and what went
    to the driver directly (BEGIN, COMMIT, ROLLBACK); a list, filled while the block
    runs."""
    from sqlalchemy import event

    statements: list[str] = []

    def log(record: Any) -> None:
        statements.append(record.query)

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        dbapi_conn.driver_connection.add_query_logger(log)

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.driver_connection.remove_query_logger(log)

    def sent(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)  # what SQLAlchemy sent (prepared statements included)

    event.listen(engine.sync_engine.pool, "checkout", checkout)
    event.listen(engine.sync_engine.pool, "checkin", checkin)
    event.listen(engine.sync_engine, "before_cursor_execute", sent)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine.pool, "checkout", checkout)
        event.remove(engine.sync_engine.pool, "checkin", checkin)
        event.remove(engine.sync_engine, "before_cursor_execute", sent)


async def test_the_cached_reads_and_the_re_reporters_bookkeeping_take_no_transaction(
        engine: AsyncEngine) -> None:
    """Session 26: a partner (and likewise the policy in force) is read, once a second
    per process, in autocommit, and the re-reporter's lease check and delete after a decision
    are one statement each: a BEGIN and a COMMIT or ROLLBACK around each were two more
    round trips to PostgreSQL, per partner a second and per notification. The statements
    still do what they did: the partner is found, the row is held, then gone."""
    from services.registration.adapters.tables import ref_partners
    from services.registration.rereports import Pending, ReReporter
    from shared.readmodel.waiter import DecisionWaiter

    async with engine.begin() as conn:
        await conn.execute(ref_partners.insert().values(
            id="p-1", name="P", type="reseller", tier="gold", region="na", status="active",
            updated_at=datetime.now(UTC)))
    reference = ReferenceData(None, engine, "ref",  # type: ignore[arg-type]
                              source="test", cache_seconds=0)
    waiter = DecisionWaiter(engine, in_process=False)

    async def rule(_pending: Pending, _row: dict[str, Any]) -> None:
        return None

    reporter = ReReporter(engine, waiter, rule, clock=lambda: datetime.now(UTC),
                          lease_seconds=60, orphan_seconds=3600)
    await reporter.record(Pending("reg_1", "dom:example.com",
                                  AccountIdentity(None, "example.com", None, None), {}, "api",
                                  datetime.now(UTC)))
    with _driver_statements(engine) as statements:
        partner = await reference.partner("p-1")
        held = await reporter._hold(["reg_1"])
        await reporter._delete(["reg_1"])
        if reporter._writer is not None:  # the delete rides the group writer's next turn
            await reporter._writer
    await reporter.stop()
    assert partner is not None and partner["tier"] == "gold"
    assert held == {"reg_1"} and not reporter.pending
    words = [s.split()[0].upper() for s in statements]
    assert not {"BEGIN", "COMMIT", "ROLLBACK"} & set(words), "\n---\n".join(statements)
    assert len(statements) == 3, "\n---\n".join(statements)


async def test_reads_through_the_reader_take_no_transaction(engine: AsyncEngine) -> None:
    """`reader(engine)` reads in autocommit on PostgreSQL (no BEGIN/ROLLBACK round trips):
    two statements on one connection are two transactions, so `now()` moves between
    them; through the engine itself they share one transaction and one `now()`."""
    from sqlalchemy import text

    async def two_nows(source: AsyncEngine) -> tuple[datetime, datetime]:
        async with source.connect() as conn:
            first = (await conn.execute(text("SELECT now()"))).scalar_one()
            await asyncio.sleep(0.01)
            second = (await conn.execute(text("SELECT now()"))).scalar_one()
        return first, second

    first, second = await two_nows(reader(engine))
    assert second > first
    first, second = await two_nows(engine)
    assert second == first


async def _terminate_other_sessions(engine: AsyncEngine, keep: Any = None) -> None:
    """PostgreSQL drops every other session of this database (a restart, as its clients
    see it; `engine`'s pool still holds them), but `keep`'s (a connection) when given."""
    from sqlalchemy import text

    spared = None if keep is None else (
        await keep.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    admin = create_engine(engine.url.render_as_string(hide_password=False), pool_size=1,
                          max_overflow=0)
    try:
        async with admin.connect() as conn:
            await conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND pid IS DISTINCT FROM CAST(:keep AS integer)"), {"keep": spared})
    finally:
        await admin.dispose()


async def test_a_directory_miss_on_a_dropped_connection_is_store_unreachable_then_recovers(
        engine: AsyncEngine) -> None:
    """A directory miss whose pooled connection PostgreSQL dropped (a restart) fails as the
    API's store handler knows it (a `DBAPIError` it answers 503 + Retry-After, not a bare
    driver error it answers 500), and the dead connection leaves the pool: the next miss
    is answered. The miss's statement goes to the driver directly, outside SQLAlchemy's
    error translation and invalidation."""
    from sqlalchemy.exc import DBAPIError

    from shared.api.problems import store_unreachable

    directory = AccountDirectory(reader(engine), complete=False, rewarm_seconds=3600)
    await directory.warm()
    identity = identity_of("Dropped Widgets Ltd", "dropped-widgets.example", "US", "001DROP")
    assert (await directory.resolve(identity, MATCH)).is_new  # the pool holds a connection
    await _terminate_other_sessions(engine)
    with pytest.raises(Exception) as failed:
        await directory.resolve(identity, MATCH)
    assert isinstance(failed.value, DBAPIError), repr(failed.value)
    assert store_unreachable(failed.value)
    assert (await directory.resolve(identity, MATCH)).is_new


async def test_a_writer_after_a_failed_read_gets_a_transaction(engine: AsyncEngine) -> None:
    """The reader's autocommit connections share the pool with writers: after a read that
    failed (or was cancelled) inside `reader()`, the connection a writer checks out next
    is in a transaction again (two statements, one `now()`), never left in autocommit
    where a two-statement write would be half-applied on an error."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    small = create_engine(engine.url.render_as_string(hide_password=False), pool_size=1,
                          max_overflow=0)
    try:
        with pytest.raises(DBAPIError):
            async with reader(small).connect() as conn:
                await conn.execute(text("SELECT 1/0"))

        async def slow() -> None:
            async with reader(small).connect() as conn:
                await conn.execute(text("SELECT pg_sleep(5)"))

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with small.begin() as conn:
            first = (await conn.execute(text("SELECT now()"))).scalar_one()
            await asyncio.sleep(0.01)
            second = (await conn.execute(text("SELECT now()"))).scalar_one()
        assert first == second
    finally:
        await small.dispose()


HOSTILE = [  # (name, domain, country, crm id) as a hostile or careless client sends them
    ("100% Widgets_Ltd", None, "US", None),
    ("Gadgets_%Works", None, "CA", None),
    ("株式会社 ソニー", None, "JP", None),
    ("Ünïcödé Straße GmbH", None, "DE", None),
    ("x" * 140 + " " + "y" * 140, None, "US", None),
    ("O'Brien'; DROP TABLE account_names; --", None, "IE", None),
    (None, None, None, "00%"),
    (None, None, None, "'; DROP TABLE account_crm_ids; --"),
    (None, "under-score.com", None, None),
]


async def test_a_distributed_directory_resolves_hostile_identities_as_the_warmed_one(
        engine: AsyncEngine) -> None:
    """The directory miss in one statement (distributed) answers what the warmed, complete
    directory answers from memory, for names with LIKE wildcards (`%`, `_`), quotes, non-
    Latin scripts and very long names, and CRM ids that look like SQL: parameters, never
    pattern matching or string building (issue 12's sameness rules decide both)."""
    filed = [identity_of(*fields) for fields in HOSTILE]
    probes = [*HOSTILE, ("100 Widgets Ltd", None, "US", None), ("Widgets", None, "US", None),
              (None, None, None, "00"), (None, None, None, "001"),
              (None, "underxscore.com", None, None), ("x%", None, "US", None),
              ("x" * 300 + " " + "y" * 300, None, "US", None), ("y" * 140, None, "US", None),
              ("_", None, "US", "%")]
    colds = []  # warmed while the tables are empty: every probe below is a miss to ask
    for _ in probes:
        colds.append(AccountDirectory(reader(engine), complete=False, rewarm_seconds=3600))
        await colds[-1].warm()
    blocks = metadata.tables.get("account_name_keys")
    async with engine.begin() as conn:
        for i, identity in enumerate(filed):
            key = f"acct:{i}"
            if identity.crm_account_id:
                await conn.execute(account_crm_ids.insert(), [
                    {"crm_account_id": identity.crm_account_id, "account_key": key}])
            if identity.domain:
                await conn.execute(account_domains.insert(), [
                    {"domain": identity.domain, "account_key": key}])
            if identity.name and identity.country:
                await conn.execute(account_names.insert(), [
                    {"country": identity.country, "name": identity.name, "account_key": key}])
                if blocks is not None:
                    from shared.accounts import sort_name_tokens
                    await conn.execute(blocks.insert(), [
                        {"country": identity.country, "key": k, "name": identity.name}
                        for k in blocking_keys(sort_name_tokens(identity.name))])
    warmed = AccountDirectory(engine, complete=True, rewarm_seconds=3600)
    await warmed.warm()
    for fields, cold in zip(probes, colds, strict=True):
        identity = identity_of(*fields)
        expected = await warmed.resolve(identity, NAMES_DECIDE)
        got = await cold.resolve(identity, NAMES_DECIDE)
        assert (got.account_key, got.is_new) == (expected.account_key, expected.is_new), fields


async def _seed_links(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(account_links.insert(), [
            {"account_key": alias, "canonical_key": canonical, "matched_by": "domain",
             "score": 0.5, "linked_at": datetime.now(UTC)}
            for alias, canonical in [("a", "b"), ("b", "c")]])


@contextlib.asynccontextmanager
async def _link_reads(engine: AsyncEngine) -> AsyncIterator[
        tuple[Callable[[], Awaitable[str]], Any]]:
    """Links a -> b -> c seeded, and the reads of them on a pool of one connection: the
    canonical key of `a` (a function) and the read model whose `aliases_of` reads them."""
    from services.registration.adapters.readmodel import ReadModel

    await _seed_links(engine)
    small = create_engine(engine.url.render_as_string(hide_password=False), pool_size=1,
                          max_overflow=0)

    async def chain() -> str:
        async with reader(small).connect() as conn:
            return await directory_module.canonical_key(conn, "a")

    try:
        yield chain, ReadModel(reader(small))
    finally:
        await small.dispose()


@contextlib.asynccontextmanager
async def _waiting_on_the_links_lock(engine: AsyncEngine, read: Callable[[], Awaitable[Any]]
                                     ) -> AsyncIterator[tuple[Any, asyncio.Task[Any]]]:
    """`read` started while another session holds `account_links` exclusively: it waits
    on the lock, mid-statement, until the block ends (the lock is let go)."""
    from sqlalchemy import text

    async with engine.connect() as locker:
        await locker.begin()
        await locker.execute(text("LOCK TABLE account_links IN ACCESS EXCLUSIVE MODE"))
        task = asyncio.create_task(read())
        await asyncio.sleep(0.5)  # the read waits on the lock, mid-statement
        yield locker, task
        await locker.rollback()


async def test_link_reads_cut_off_mid_call_are_store_unreachable_then_answer_again(
        engine: AsyncEngine) -> None:
    """A link read (canonical key, aliases) sent by the driver while PostgreSQL drops its
    connection mid-statement: a `DBAPIError` the API answers 503, the dead connection out
    of the pool (of one), and the next read answered."""
    from sqlalchemy.exc import DBAPIError

    from shared.api.problems import store_unreachable

    async with _link_reads(engine) as (chain, model):
        assert await chain() == "c"
        for read in (chain, lambda: model.aliases_of("c")):
            async with _waiting_on_the_links_lock(engine, read) as (locker, task):
                await _terminate_other_sessions(engine, keep=locker)
                with pytest.raises(Exception) as failed:
                    await asyncio.wait_for(task, 10)
            assert isinstance(failed.value, DBAPIError), repr(failed.value)
            assert store_unreachable(failed.value)
            assert await chain() == "c"
            assert [a for a, _, _ in await model.aliases_of("c")] == ["b", "a"]


async def test_a_cancelled_link_read_leaves_a_connection_that_answers_the_next_one(
        engine: AsyncEngine) -> None:
    """A request cancelled (client gone, timeout) while its link read waits in the driver:
    the pooled connection the next request gets (pool of one) answers, not 'another
    operation is in progress' nor the cancelled read's rows."""
    async with _link_reads(engine) as (chain, model):
        for read in (chain, lambda: model.aliases_of("c")):
            async with _waiting_on_the_links_lock(engine, read) as (_, task):
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert await asyncio.wait_for(chain(), 10) == "c"
            assert [a for a, _, _ in await asyncio.wait_for(model.aliases_of("c"), 10)] == [
                "b", "a"]



async def test_a_directory_miss_fetches_only_names_whose_length_can_match(
        engine: AsyncEngine) -> None:
    """The fallback query leaves out names that share a blocking key but are too long or
    too short to score at the review floor (`name_length_window`): they were most of its
    rows. What can match is still fetched and decides as a warmed index would."""
    names = {
        "muller maschinenbau": "name:DE:near",  # scores against the query
        "muller": "name:DE:short",  # shares "muller", far too short
        "muller maschinenbau international logistik und anlagenbau": "name:DE:long",
    }
    async with engine.begin() as conn:
        await conn.execute(account_names.insert(), [
            {"country": "DE", "name": name, "account_key": key} for name, key in names.items()])
        await conn.execute(metadata.tables["account_name_keys"].insert(), [
            {"country": "DE", "key": key, "name": name} for name in names
            for key in blocking_keys(" ".join(sorted(name.split())))])
    identity = identity_of("Mueller Maschinenbau GmbH", None, "Germany", None)
    warmed = AccountDirectory(reader(engine), complete=True, rewarm_seconds=3600)
    await warmed.warm()  # knows every name
    cold = AccountDirectory(reader(engine), complete=False, rewarm_seconds=3600)
    cold._warmed_at = 0.0  # warmed before any of them was filed: every name is a miss
    resolved = await cold.resolve(identity, NAMES_DECIDE)
    assert resolved == await warmed.resolve(identity, NAMES_DECIDE)
    assert resolved.account_key == "name:DE:near"
    assert "name:DE:near" in cold._index  # what the miss fetched and filed in memory
    assert "name:DE:short" not in cold._index and "name:DE:long" not in cold._index


async def test_a_published_policy_version_is_read_once(
    engine: AsyncEngine, kafka_server: ServerHandle, unique: str,
) -> None:
    """Versions are immutable: `ReferenceData.policy` asks the read model once per
    version (it was asked on every copy report and extension)."""
    from sqlalchemy import event

    topics = Topics.named(f"ref-{unique}")
    log = KafkaEventLog(kafka_server.url)
    await log.start()
    statements: list[str] = []

    def sent(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    try:
        await log.create_topics(topics.specs(1))
        store = ReferenceData(log, engine, topics.reference, source="urn:test",
                              cache_seconds=0)
        published = await store.publish(Policy.model_validate({"tie_window": "PT5H"}),
                                         published_by="test")
        version = published.policy.version
        event.listen(engine.sync_engine, "before_cursor_execute", sent)
        try:
            first = await store.policy(version)
            again = await store.policy(version)
            missing = await store.policy(version + 1)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", sent)
        assert first is not None and again == first and first[0].tie_window == \
            published.policy.tie_window
        assert missing is None
        assert len(statements) == 2, statements  # the first read and the unknown version
    finally:
        await log.close()


async def test_a_directory_miss_asks_the_names_filed_without_a_country(
        engine: AsyncEngine) -> None:
    """A name filed without a country (beside an identifier) is in the directory under the
    unknown country "" (`projections.domain.directory.facts`, with its blocking keys). A
    process behind the directory (distributed) asked names only in the query's country, so
    a rival's "Wells International LLC" (US, name only) resolved as a new customer where the
    warmed index sees a possible duplicate across countries; and a query without a country
    asked no name at all. The miss now asks the query's country and the unknown one (a
    country-less query: every country it knows, and the unknown one), as the warmed index
    weighs them, and files what it finds in the country it was found in. Failed before."""
    from services.projections.domain.directory import facts
    from shared.events import Account

    filed = {
        "crm:AF2E": Account(name="Wells International LLC", domain=None, country=None,
                            crm_account_id="AF2E0000000000000000000000000001"),
        "name:DE:wells": Account(name="Wells International GmbH", domain=None, country="DE"),
    }
    async with engine.begin() as conn:
        for key, account in filed.items():
            domains, crm_ids, names, keys = facts(key, account)
            for table, rows in ((account_domains, domains), (account_crm_ids, crm_ids),
                                (account_names, names),
                                (metadata.tables["account_name_keys"], keys)):
                if rows:
                    await conn.execute(table.insert(), rows)
    warmed = AccountDirectory(reader(engine), complete=True, rewarm_seconds=3600)
    await warmed.warm()  # knows every name
    probes = [("Wells International LLC", None, "US", None),
              ("Wells International", None, "DE", None),
              ("Wells International LLC", "wellsintl-group.com", None, None)]
    # Session 29: under `match.countryless_names: ask` (the default) a query with a country
    # no longer weighs the names filed without one, and the miss does not ask them either
    # (`countries_weighed`, one rule); `hold` (documents from before) asks as above.
    hold = MatchPolicy(name_threshold=0.9, review_band=0.1, countryless_names="hold")
    for match, fields in [(m, f) for m in (hold, MATCH) for f in probes]:
        identity = identity_of(*fields)
        expected = await warmed.resolve(identity, match)
        cold = AccountDirectory(reader(engine), complete=False, rewarm_seconds=3600)
        cold._warmed_at = 0.0  # warmed before any of them was filed: every name is a miss
        if fields[2] is None:  # a country-less query asks the countries the process knows
            cold._index.add("name:DE:other", AccountIdentity(None, None, "other", "DE"))
        got = await cold.resolve(identity, match)
        found = {m.account_key for m in expected.possible_duplicates}
        if match is hold or fields[2] is None:
            assert found & set(filed), (match, fields)
        else:  # the name filed without a country asks but does not hold
            assert "crm:AF2E" not in found, (match, fields)
        assert (got.account_key, got.is_new,
                sorted((m.account_key, m.matched_by, m.confident)
                       for m in got.possible_duplicates)) == (
            expected.account_key, expected.is_new,
            sorted((m.account_key, m.matched_by, m.confident)
                   for m in expected.possible_duplicates)), fields
    # Filed in memory under the country it was found in: the unknown one.
    assert "" in cold._index.countries() and "crm:AF2E" in cold._index
    assert (cold._countries_asked("US", "ask"), cold._countries_asked("US", "hold")) == (
        ["US"], ["US", ""])


async def test_the_directory_finds_names_folded_in_any_order_warm_and_on_a_miss(
        engine: AsyncEngine) -> None:
    """Session 30: the projections fold intake and decisions independently. (a) "B dba
    Gamma" rejected (Gamma taken back) with its decision written a batch before its
    submission; (b) "B dba Delta" rejected, filed again by a second filing whose
    submission was written before that rejection (the adjudicator keeps Delta under B).
    A registration service warmed from the directory (a restart) and one asking on a miss
    (`_MISSES_SQL`) find Delta under B's key and not Gamma; before, the directory had
    Gamma filed and Delta gone."""
    from services.projections.adapters import repository
    from services.projections.domain.batch import Batch, Loaded
    from tests.unit.projections.builders import decided, item, submitted

    key = "dom:beta.com"

    async def fold(*events: tuple[int, Any]) -> None:
        batch = Batch(Loaded()).fold_all([
            item(e, f"evt_{n}", models=("directory",))._replace(offset=n) for n, e in events])
        async with engine.begin() as conn:
            await repository.write(conn, batch)

    def filing(rid: str, name: str) -> Any:
        return submitted(rid, "p-2", key=key, name=name, domain="beta.com")

    def rejected(rid: str, form: str) -> Any:
        return decided(rid, "p-2", status="rejected", rule="duplicate", key=key,
                       until_minutes=None).model_copy(update={"unfiled_names": (form,)})

    await fold((0, filing("reg_b", "Beta Systems")))
    await fold((1_000, rejected("reg_x", "gamma labs")))  # (a)
    await fold((1, filing("reg_x", "Beta Systems dba Gamma Labs")))
    await fold((2, filing("reg_y", "Beta Systems dba Delta Works")),  # (b)
               (3, filing("reg_z", "Beta Systems dba Delta Works")))
    await fold((1_001, rejected("reg_y", "delta works")))
    warmed = AccountDirectory(reader(engine), complete=True, rewarm_seconds=3600)
    await warmed.warm()
    assert warmed._index.has_name(key, "delta works", "US")
    assert not warmed._index.has_name(key, "gamma labs", "US")
    for name, held in (("Delta Works", True), ("Gamma Labs", False)):
        cold = AccountDirectory(reader(engine), complete=False, rewarm_seconds=3600)
        cold._warmed_at = 0.0  # every name is a miss
        got = await cold.resolve(identity_of(name, None, "US", None), NAMES_DECIDE)
        found = {got.account_key, *(m.account_key for m in got.possible_duplicates)}
        assert (key in found) is held, (name, got)
