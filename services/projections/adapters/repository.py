"""SQL for the projections: batched loads and upserts that work on PostgreSQL and SQLite.

Everything a batch writes goes out as one bulk write per table (`INSERT ... ON CONFLICT`:
on PostgreSQL one multi-row statement or a staged COPY, see `prepare`; elsewhere
executemany), rows sorted by key so that two projection processes touching the same
aggregate rows always lock them in the same order (a staged write of a one-writer table
is not: its rows are applied without an order, `prepare`).

The bulk writes skip SQLAlchemy's per-row parameter processing (which cost more than the
database itself for wide rows) and hand pre-converted tuples to the driver's `executemany`
(sqlite3 through aiosqlite; asyncpg, which pipelines the rows), inside the same
transaction. The conversions are exactly what SQLAlchemy would bind (on SQLite: UTC
datetimes as `YYYY-MM-DD HH:MM:SS.ffffff` text, JSON as text, numerics as floats; on
PostgreSQL: aware datetimes, JSON text for the jsonb codec SQLAlchemy installs, decimals),
so rows read back identically through the table definitions; tests compare both paths.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

import orjson
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    Numeric,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projections.domain.batch import (
    DIRECTORY,
    DISPUTES,
    OWNERSHIP,
    REGISTRATIONS,
    TIMELINES,
    Batch,
    Loaded,
    Needs,
)
from shared.eventlog import TopicPartition
from shared.readmodel.queries import one_of
from shared.readmodel.schema import (
    UTCDateTime,
    account_crm_ids,
    account_domains,
    account_link_facts,
    account_links,
    account_name_keys,
    account_names,
    account_names_unfiled,
    claims,
    dispute_breaches,
    dispute_members,
    disputes,
    notification_outbox,
    ownership_intervals,
    pipeline_product_totals,
    pipeline_totals,
    projection_positions,
    registrations,
    timeline_entries,
)

TABLES: dict[str, tuple[Table, ...]] = {
    REGISTRATIONS: (registrations, claims, pipeline_totals, pipeline_product_totals),
    OWNERSHIP: (ownership_intervals,),
    DIRECTORY: (account_domains, account_crm_ids, account_names, account_names_unfiled,
                account_name_keys, account_link_facts, account_links),
    DISPUTES: (disputes, dispute_members, dispute_breaches),
    TIMELINES: (timeline_entries,),
}
"""The tables of each model: what `rebuild --model NAME` empties."""

_CHUNK = 500
Positions = dict[str, dict[TopicPartition, int]]
"""model -> topic-partition -> next offset to apply."""


def _insert(conn: AsyncConnection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


# --- SQLite fast path ------------------------------------------------------------------


_SQLITE_TIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("naive datetime given to a UTC column")
    if offset:
        value = value - offset  # its UTC wall time (the fields are all that is written)
    # `YYYY-MM-DD HH:MM:SS.ffffff` (always with microseconds) without the "+00:00", as
    # SQLAlchemy stores it; formatted from the fields (pydantic's UTC is its own tzinfo
    # class, which made `astimezone` + `isoformat` run for every value: twice the cost).
    return _SQLITE_TIME % (value.year, value.month, value.day, value.hour, value.minute,
                           value.second, value.microsecond)


_TIMES_KEPT = 50_000


def _cached_time(convert: Callable[[datetime], Any]) -> Callable[[Any], Any]:
    """`convert` remembering its last results by the datetime object (a batch writes the
    same time objects many times over: a registration's dates on every write of its row,
    an event's time on several rows). Keyed by identity, each entry holding its object
    (so the id cannot be reused while cached): looking up by equality compared aware
    datetimes, which cost as much as converting. Used by the preparing thread only."""
    times: dict[int, tuple[datetime, Any]] = {}

    def cached(value: Any) -> Any:
        if value is None:
            return None
        found = times.get(id(value))
        if found is not None and found[0] is value:
            return found[1]
        if len(times) >= _TIMES_KEPT:
            times.clear()
        converted = convert(value)
        times[id(value)] = (value, converted)
        return converted

    return cached


def _sqlite_json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _sqlite_number(value: Any) -> float | None:
    return None if value is None else float(value)


_NONE_SAFE: frozenset[Callable[[Any], Any]] = frozenset()  # filled below


def _postgres_time(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _postgres_number(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


_SQLITE_TIME_CACHED = _cached_time(_sqlite_time)
_POSTGRES_TIME_CACHED = _cached_time(_postgres_time)


_NONE_SAFE = frozenset({_SQLITE_TIME_CACHED, _POSTGRES_TIME_CACHED, _sqlite_json,
                        _sqlite_number})


def _converter(column: Column[Any], dialect: str) -> Callable[[Any], Any] | None:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _SQLITE_TIME_CACHED if dialect == "sqlite" else _POSTGRES_TIME_CACHED
    if isinstance(kind, JSON):
        return _sqlite_json  # JSON text; asyncpg's jsonb codec (SQLAlchemy's) takes text
    if isinstance(kind, Numeric) and not isinstance(kind, Integer):
        return _sqlite_number if dialect == "sqlite" else _postgres_number
    return None


_LATEST: Final = {"account_names": ("filed_at", "filed_by")}
"""Per table merged in mode "latest": the columns that order its facts."""


@lru_cache(maxsize=512)
def _conflict_action(table: Table, columns: tuple[str, ...], keys: Sequence[str],
                     mode: str) -> str:
    """The `ON CONFLICT` action of an upsert: keep the stored row ("nothing"), add the new
    counters to it ("add"), overwrite it ("update"), or overwrite it when the new row is
    the later one by the table's `_LATEST` columns ("latest", `directory.later`'s rule: a
    NULL second column never wins a tie); one text for the row-by-row and the staged
    statements."""
    if mode == "nothing":
        return "DO NOTHING"
    if mode == "latest":
        first, second = _LATEST[table.name]
        if first not in columns or second not in columns:
            return "DO NOTHING"  # rows without their order (kept: the column's default)
        mine, new = f'"{table.name}"', "excluded"
        return ("DO UPDATE SET " + ", ".join(
            f'"{c}" = excluded."{c}"' for c in columns if c not in keys)
            + f' WHERE {new}."{first}" > {mine}."{first}" OR ({new}."{first}" = '
              f'{mine}."{first}" AND {new}."{second}" > {mine}."{second}")')
    if mode == "add":
        return "DO UPDATE SET " + ", ".join(
            f'"{c}" = "{table.name}"."{c}" + excluded."{c}"' for c in columns if c not in keys)
    return "DO UPDATE SET " + ", ".join(
        f'"{c}" = excluded."{c}"' for c in columns if c not in keys)


def _bulk_statement(dialect: str, table: Table, columns: tuple[str, ...],
                    keys: tuple[str, ...], mode: str
                    ) -> tuple[str, tuple[Callable[[Any], Any] | None, ...]]:
    names = ", ".join(f'"{c}"' for c in columns)
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in columns)
    else:
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    conflict = ", ".join(f'"{k}"' for k in keys)
    if mode == "delete":
        where = " AND ".join(
            f'"{c}" = {m}' for c, m in zip(columns, marks.split(", "), strict=True))
        return (f'DELETE FROM "{table.name}" WHERE {where}',
                tuple(_converter(table.c[c], dialect) for c in columns))
    action = _conflict_action(table, columns, keys, mode)
    sql = (f'INSERT INTO "{table.name}" ({names}) VALUES ({marks}) '
           f"ON CONFLICT ({conflict}) {action}")
    return sql, tuple(_converter(table.c[c], dialect) for c in columns)


def _bulk_params(rows: Sequence[Mapping[str, Any]], columns: tuple[str, ...],
                 converters: tuple[Callable[[Any], Any] | None, ...]) -> list[Any]:
    return _row_params(columns, converters)(rows)


@lru_cache(maxsize=512)
def _row_params(columns: tuple[str, ...], converters: tuple[Callable[[Any], Any] | None, ...]
                ) -> Callable[[Sequence[Mapping[str, Any]]], list[Any]]:
    """A function from rows to parameter tuples, written out for these columns (one
    comprehension, no per-value loop: this runs for every value a rebuild writes). Every
    converter takes None to None (`_cached_time`, `_sqlite_*`) or is given no None."""
    values = []
    scope: dict[str, Any] = {}
    for i, (column, convert) in enumerate(zip(columns, converters, strict=True)):
        get = f"r[{column!r}]"
        if convert is None:
            values.append(get)
        else:
            scope[f"c{i}"] = convert
            values.append(f"c{i}({get})" if convert in _NONE_SAFE
                          else f"(None if {get} is None else c{i}({get}))")
    source = f"lambda rows: [({', '.join(values)},) for r in rows]"
    made: Callable[[Sequence[Mapping[str, Any]]], list[Any]] = eval(source, scope)
    return made


async def _bulk_many(conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]],
                     keys: Sequence[str], mode: str) -> None:
    """One `executemany` on the driver connection, inside the current transaction."""
    dialect = conn.dialect.name
    columns = tuple(rows[0])
    sql, converters = _bulk_statement(dialect, table, columns, tuple(keys), mode)
    params = _bulk_params(rows, columns, converters)
    driver = await _driver_in_transaction(conn)
    await driver.executemany(sql, params)


async def _driver_in_transaction(conn: AsyncConnection) -> Any:
    """The driver connection, inside the transaction SQLAlchemy holds for `conn`.

    SQLAlchemy opens the database transaction lazily, at its first statement (asyncpg:
    `BEGIN`); a statement sent straight to asyncpg before that would run outside the
    transaction and commit on its own. On SQLite the driver begins nothing itself:
    `engine.begin()` has already sent `BEGIN IMMEDIATE` (`shared.readmodel.store`), and a
    bulk write from a read block (`engine.connect()`), which would commit row by row, is
    refused here instead."""
    raw = await conn.get_raw_connection()
    if conn.dialect.name == "postgresql" and getattr(
            raw.dbapi_connection, "_transaction", None) is None:
        await conn.exec_driver_sql("SELECT 1")
    elif conn.dialect.name == "sqlite" and not getattr(raw.driver_connection,
                                                       "in_transaction", True):
        raise RuntimeError("bulk writes to SQLite need a write transaction (engine.begin())")
    return raw.driver_connection


_BULK_DIALECTS = frozenset({"sqlite", "postgresql"})


async def upsert(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    overwrite: bool = True,
) -> None:
    if not rows:
        return
    if conn.dialect.name in _BULK_DIALECTS:
        await _bulk_many(conn, table, rows, keys, "update" if overwrite else "nothing")
        return
    stmt = _insert(conn, table)
    if overwrite:
        updated = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=updated)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    await conn.execute(stmt, list(rows))


async def add_to(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str], counters: Sequence[str],
) -> None:
    """Add `counters` of `rows` to the stored ones (inserting missing rows), then drop rows
    that fell to zero so that totals depend on the data only, never on the batching."""
    if not rows:
        return
    if conn.dialect.name in _BULK_DIALECTS:
        await _bulk_many(conn, table, rows, keys, "add")
    else:
        stmt = _insert(conn, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={c: table.c[c] + stmt.excluded[c] for c in counters},
        )
        await conn.execute(stmt, list(rows))
    await conn.execute(delete(table).where(and_(*(table.c[c] == 0 for c in counters))))


# --- positions -------------------------------------------------------------------------


async def load_positions(
    conn: AsyncConnection, models: Iterable[str], partitions: Iterable[TopicPartition],
    *, lock: bool = False,
) -> Positions:
    """Stored positions of `models` (0 where none). `lock` (a batch's transaction): on
    PostgreSQL the positions of exactly these models and partitions are locked until
    commit first (`lock_positions`), so the values read are final for this transaction;
    SQLite needs nothing, its write transaction (`BEGIN IMMEDIATE`) holds the one write
    lock from its start."""
    wanted = set(partitions)
    models = list(models)
    if lock and conn.dialect.name == "postgresql":
        return await lock_positions(conn, models, wanted)
    c = projection_positions.c
    dialect = conn.dialect.name
    topics = {tp.topic for tp in wanted}
    if dialect != "postgresql" and topics:  # built once (`_POSITIONS`), bound per call
        result = await conn.execute(_POSITIONS, {
            "models": models, "topics": sorted(topics),
            "partitions": sorted({tp.partition for tp in wanted})})
    else:
        query = select(projection_positions).where(one_of(dialect, c.projection, models))
        if topics:
            query = query.where(one_of(dialect, c.topic, topics),
                                one_of(dialect, c.partition, {tp.partition for tp in wanted}))
        result = await conn.execute(query)
    found: Positions = {m: {} for m in models}
    for row in result.mappings():
        tp = TopicPartition(row["topic"], row["partition"])
        if tp in wanted:
            found[row["projection"]][tp] = row["position"]
    return {m: {tp: found[m].get(tp, 0) for tp in wanted} for m in models}


_POSITIONS = select(projection_positions).where(
    projection_positions.c.projection.in_(bindparam("models", expanding=True)),
    projection_positions.c.topic.in_(bindparam("topics", expanding=True)),
    projection_positions.c.partition.in_(bindparam("partitions", expanding=True)))
"""`load_positions` on SQLite: the statement `one_of` composes, built once."""


async def lock_positions(conn: AsyncConnection, models: Iterable[str],
                         partitions: Iterable[TopicPartition]) -> Positions:
    """PostgreSQL: lock the position row of every model and partition until commit,
    inserting the missing ones (position 0, the same as no row; the batch stores its
    positions before it commits, so they are never seen), and return the positions
    as committed (0 where none).

    A plain `SELECT ... FOR UPDATE` locks only rows that exist: two workers folding a
    partition with no stored position yet (a rebalance: the old owner finishing a batch,
    the new owner starting) both read 0, both folded the same records and both
    committed, adding pipeline totals and link holders twice. Here one statement takes
    every row, existing or not, and reads it: `ON CONFLICT DO UPDATE SET position =
    projection_positions.position` (the stored value written back) locks a row that
    exists, waits for a transaction that inserted or changed it and has not committed,
    and then updates the latest committed version (READ COMMITTED), which `RETURNING`
    gives back; an inserted row returns its 0. (Until session 28 the update was `WHERE
    false`, which writes nothing but returns nothing either, and a second statement read
    the positions: a round trip more per batch.) Rows go in one sorted order, so two
    batches over overlapping partitions take them in the same order (no deadlock), and
    only the batch's own partitions are locked: the owners of other partitions fold
    meanwhile."""
    wanted = set(partitions)
    models = sorted(set(models))
    keys = [(m, tp.topic, tp.partition) for m in models for tp in sorted(wanted)]
    found: Positions = {m: {} for m in models}
    if keys:
        # Arrays through one cached text statement: building the multi-row insert in
        # SQLAlchemy cost about 2 ms of CPU per batch.
        result = await conn.execute(_LOCK_POSITIONS, {"models": [k[0] for k in keys],
                                                      "topics": [k[1] for k in keys],
                                                      "partitions": [k[2] for k in keys]})
        for model, topic, partition, position in result:
            found[model][TopicPartition(topic, partition)] = position
    return {m: {tp: found[m].get(tp, 0) for tp in wanted} for m in models}


_LOCK_POSITIONS = text(
    "INSERT INTO projection_positions (projection, topic, partition, position) "
    "SELECT m, t, p, 0 FROM unnest(CAST(:models AS varchar[]), CAST(:topics AS varchar[]), "
    "CAST(:partitions AS integer[])) AS u(m, t, p) "
    "ON CONFLICT (projection, topic, partition) DO UPDATE "
    "SET position = projection_positions.position "
    "RETURNING projection, topic, partition, position")
"""`lock_positions`' statement: `unnest` yields the rows in the arrays' (sorted) order,
which is the order they are taken in."""


async def save_positions(conn: AsyncConnection, positions: Positions, *,
                         stage_from: int | None = None) -> None:
    """Store `positions`; on PostgreSQL through a staging table from `stage_from` rows on
    (a live batch's: a row per model and partition)."""
    rows = sorted(({"projection": model, "topic": tp.topic, "partition": tp.partition,
                    "position": pos}
                   for model, by_tp in positions.items() for tp, pos in by_tp.items()),
                  key=lambda r: (r["projection"], r["topic"], r["partition"]))
    keys = ("projection", "topic", "partition")
    if (len(rows) > 1 and conn.dialect.name == "postgresql" and stage_from is not None):
        # One multi-row upsert (`_multirow_statement`: a column per array, one round trip
        # and one executor run) however many rows: a live batch has a row per model and
        # partition (6 models: 12 for a registration and its decision), and through the
        # staging table from `stage_from` rows on that was three round trips (session 28).
        columns = tuple(rows[0])
        sql, converters = _bulk_statement("postgresql", projection_positions, columns, keys,
                                          "update")
        await execute(conn, [Step(projection_positions, sql,
                                  _bulk_params(rows, columns, converters), (), columns, keys,
                                  "update", multirow=True)])
        return
    await upsert(conn, projection_positions, rows, keys)


async def forget_positions(conn: AsyncConnection, models: Iterable[str]) -> None:
    await conn.execute(delete(projection_positions)
                       .where(projection_positions.c.projection.in_(list(models))))


MODEL_VERSIONS: Final[Mapping[str, int]] = {DIRECTORY: 5}
"""What each read model's rows mean, bumped when a release files rows an existing store
lacks until the log is replayed into it (a model not named: 1). directory 2: a name filed
without a country is filed under the unknown country ("") and "X dba Y" under both names
(session 28); a directory folded by an older release lacks those rows, so a registration
service warmed from it forgot such names and approved a rival's filing unseen. directory 3:
names re-read (session 29: a mark in any spelling is no part of a name; a name without a
country drops a qualifier naming any country or region), so a warmed service finds an
older filing of "Acme Corp (TM)" as "acme". directory 4: each name row records the filing
that first filed it (`filed_by`, migration 0016) and a filing rejected at its decision
takes back the names it brought (`unfiled_names`, session 29); a directory of 3 still
holds a rejected "B dba A"'s A under B. directory 5: names folded order-free (session 30,
migration 0017): each row keeps its latest filer in intake order (`filed_at`) and a
rejection's unfiled names are rows of `account_names_unfiled`; a directory of 4 lost a
name a second filing brought before the first one's rejection was folded, and kept one
whose rejection was folded in a batch before its submission."""
_VERSION_SUFFIX: Final = "#version"
"""A model's version is a `projection_positions` row of its own (projection
`<model>#version`, topic "", partition 0, position = the version): every reader of
positions asks for its models by name, so none sees it."""


async def record_versions(conn: AsyncConnection, models: Iterable[str]) -> None:
    """Store the current version of these models (they hold what this release files)."""
    rows = [{"projection": m + _VERSION_SUFFIX, "topic": "", "partition": 0,
             "position": MODEL_VERSIONS[m]} for m in sorted(set(models))
            if m in MODEL_VERSIONS]
    if rows:
        await upsert(conn, projection_positions, rows, ("projection", "topic", "partition"))


async def outdated_models(conn: AsyncConnection, models: Iterable[str]) -> list[str]:
    """Models folded by an older release (they hold positions, and a stored version below
    `MODEL_VERSIONS`, or none): they lack rows until the log is replayed into them. A
    model that holds no position yet (a new store) is recorded as current: it will be
    folded from the beginning by this release."""
    wanted = [m for m in models if m in MODEL_VERSIONS]
    if not wanted:
        return []
    c = projection_positions.c
    stored = {p.removesuffix(_VERSION_SUFFIX): v for p, v in await conn.execute(
        select(c.projection, c.position).where(
            c.projection.in_([m + _VERSION_SUFFIX for m in wanted])))}
    folded = {m for (m,) in await conn.execute(
        select(c.projection).where(c.projection.in_(wanted)).distinct())}
    outdated = [m for m in wanted if m in folded and stored.get(m, 1) < MODEL_VERSIONS[m]]
    fresh = [m for m in wanted if m not in folded and stored.get(m) != MODEL_VERSIONS[m]]
    await record_versions(conn, fresh)
    return outdated


# --- loading ---------------------------------------------------------------------------


_BY_IDS: dict[tuple[str, bool], Any] = {}
"""SQLite: each table's load statement (`_by_ids`), built once with an expanding `IN`
parameter: the same SQL as `one_of`'s `IN` list, without composing the statement per
call (which cost more CPU than running it on SQLite, session 27)."""


def _open_protections() -> tuple[Any, ...]:
    c = ownership_intervals.c
    return (c.valid_to.is_(None), c.kind == "protection")


async def _by_ids(conn: AsyncConnection, table: Table, ids: Iterable[str], *,
                  open_protections: bool = False) -> list[dict[str, Any]]:
    """The rows of `table` whose primary key is one of `ids` (`open_protections`: only
    the open protection intervals)."""
    ids = sorted(ids)
    rows: list[dict[str, Any]] = []
    key = table.c[next(iter(table.primary_key.columns)).name]
    extra = _open_protections() if open_protections else ()
    dialect = conn.dialect.name
    built = None
    if dialect != "postgresql":
        built = _BY_IDS.get((table.name, open_protections))
        if built is None:
            built = _BY_IDS[(table.name, open_protections)] = select(table).where(
                key.in_(bindparam("ids", expanding=True)), *extra)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        result = await (conn.execute(built, {"ids": chunk}) if built is not None else
                        conn.execute(select(table).where(one_of(dialect, key, chunk), *extra)))
        rows.extend(dict(r) for r in result.mappings())
    return rows


async def load_registrations(
    conn: AsyncConnection, ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in await _by_ids(conn, registrations, ids)}


async def load(conn: AsyncConnection, needs: Needs) -> Loaded:
    loaded = Loaded()
    if needs.registrations:
        loaded.registrations = await load_registrations(conn, needs.registrations)
    if needs.claims:
        loaded.claims = {r["id"]: r for r in await _by_ids(conn, claims, needs.claims)}
    if needs.disputes:
        loaded.disputes = {r["id"]: r for r in await _by_ids(conn, disputes, needs.disputes)}
    if needs.holders:
        rows = await _by_ids(conn, ownership_intervals, needs.holders, open_protections=True)
        found: dict[str, dict[str, Any] | None] = dict.fromkeys(needs.holders)
        found.update({r["holder_id"]: r for r in rows})
        loaded.open_intervals = found
    return loaded


# --- writing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One bulk statement of a batch, its parameters already converted (so the batch's rows
    may change afterwards without changing what is written). `staged`: on PostgreSQL, the
    rows go through a staging table (`_staged_statements`) instead of `executemany`."""

    table: Table
    sql: str
    params: list[Any]
    drop_zero: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    mode: str = "update"
    staged: bool = False
    multirow: bool = False
    fresh: bool = False
    """Staged rows of a table none of which the store holds yet (a rebuild knows which:
    `fresh_tables`): copied straight into the table (`_copy_fresh`)."""


STAGE_FROM_ROWS = 8
"""PostgreSQL, live batches: a table's rows go through a staging table (`COPY` + one
`INSERT .. SELECT`, three statements) from this many rows on; fewer go row by row
(`executemany`: one executor run per row). Measured with pg_stat_statements in
tests/bench/profile_distributed.py (README, "Distributed decision path").

Fewer rows (a live batch's usual case at a few hundred registrations/s) go out as one
multi-row `INSERT .. SELECT .. FROM unnest($1, $2, ..) ON CONFLICT` (`_multirow_statement`,
a column's values in one array): one executor run per table instead of one per row, and
one statement text per table whatever the row count."""

_MAX_PARAMS = 32_767
"""PostgreSQL's limit of bind parameters in one statement (more rows: `executemany`)."""


def prepare(dialect: str, batch: Batch, *, staged: bool = False,
            stage_from: int | None = None, fresh: frozenset[str] = frozenset()) -> list[Step]:
    """The statements that write what `batch` changed, in a fixed order. `staged` (large
    batches such as a rebuild's; PostgreSQL only): each table's rows are copied into a
    temporary table and applied by one statement; `stage_from`: only the tables with at
    least that many rows are (a live batch's). `fresh` (with `staged`): tables whose rows
    the store does not hold yet, copied straight in (`fresh_tables`)."""
    steps: list[Step] = []
    postgres = dialect == "postgresql"
    # Staged on PostgreSQL, a one-writer table's rows are applied without an order
    # (`_staged_statements`) or copied straight in: their order changes nothing, and
    # sorting them (a rebuild's timeline: a key per event) is not done.
    unordered = postgres and staged

    def ordered(table: Table, rows: Mapping[Any, dict[str, Any]]) -> list[dict[str, Any]]:
        if unordered and table.name in _ONE_WRITER:
            return list(rows.values())
        return _sorted(rows)

    def add(table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
            mode: str, counters: tuple[str, ...] = ()) -> None:
        if rows:
            columns = tuple(rows[0])
            sql, converters = _bulk_statement(dialect, table, columns, tuple(keys), mode)
            staging = postgres and (staged or (stage_from is not None
                                               and len(rows) >= stage_from))
            # A batch holds each key once (keyed rows), so one multi-row upsert is what the
            # row-by-row one leaves; `stage_from=None` keeps row by row (the reference).
            multirow = (postgres and not staging and stage_from is not None
                        and mode != "delete" and len(rows) > 1
                        and len(rows) * len(columns) <= _MAX_PARAMS)
            steps.append(Step(table, sql, _bulk_params(rows, columns, converters), counters,
                              columns, tuple(keys), mode, staging, multirow,
                              staging and table.name in fresh and mode in ("update", "nothing")))

    add(registrations, [batch.registrations[r] for r in batch.dirty_registrations] if unordered
        else batch.changed_registrations(), ("id",), "update")
    add(claims, batch.changed_claims(), ("id",), "update")
    deltas = batch.pipeline()
    add(pipeline_totals, deltas.total_rows(), ("partner_id", "status", "motion", "currency"),
        "add", ("count", "amount_e4"))
    add(pipeline_product_totals, deltas.product_rows(),
        ("product", "partner_id", "status", "motion", "currency"), "add",
        ("count", "amount_e4"))
    add(ownership_intervals, ordered(ownership_intervals, batch.intervals),
        ("holder_id", "opened_by"), "update")
    # First writer wins in the directory: a domain keeps the key it was first filed under.
    add(account_domains, _sorted(batch.domains), ("domain",), "nothing")
    add(account_crm_ids, _sorted(batch.crm_ids), ("crm_account_id",), "nothing")
    # Names are merged order-free (session 30, `directory.later`): each row keeps its
    # latest filer; a rejection's unfiled names are rows of their own, asked at look-up.
    add(account_names_unfiled, _sorted(batch.unfiled_back),
        ("account_key", "name", "filed_by"), "delete")
    add(account_names_unfiled, _sorted(batch.unfiled_names),
        ("account_key", "name", "filed_by"), "nothing")
    add(account_names, _sorted(batch.names), ("country", "name", "account_key"), "latest")
    add(account_name_keys, _sorted(batch.name_keys), ("country", "key", "name"), "nothing")
    if batch.link_facts:
        # Few rows (a link per alias and partition): merged by `_write_links`, not bulk.
        steps.append(Step(account_link_facts, "", [dict(r) for r in _sorted(batch.link_facts)],
                          mode=_LINKS))
    add(disputes, batch.changed_disputes(), ("id",), "update")
    add(dispute_members, ordered(dispute_members, batch.members), ("dispute_id", "member_id"),
        "nothing")
    add(dispute_breaches, ordered(dispute_breaches, batch.breaches), ("dispute_id", "level"),
        "update")
    add(timeline_entries, ordered(timeline_entries, batch.timeline), ("subject_id", "event_id"),
        "nothing")
    # A replay never resets a delivery's state: the first row written stays.
    add(notification_outbox, _sorted(batch.outbox), ("id",), "nothing")
    return steps


@lru_cache(maxsize=32)
def _drop_zero(table: Table, counters: tuple[str, ...]) -> Any:
    """`DELETE` of the rows whose `counters` are all zero, built once per table."""
    return delete(table).where(and_(*(table.c[c] == 0 for c in counters)))


def _may_fall_to_zero(step: Step) -> bool:
    """Whether one of `step`'s totals rows can end at zero, so the zero rows' `DELETE`
    must follow it: only a row whose `count` the batch does not raise. A count is a number
    of registrations (never below zero), so a raised one ends above zero whatever the
    amounts. A registration submitted and decided in one batch (the projections' hold,
    session 28) only raises its decided status's count: no `DELETE`, a round trip less
    per totals table; a batch that moves one out of a status still deletes."""
    if "count" not in step.drop_zero:
        return True
    i = step.columns.index("count")
    return any(row[i] <= 0 for row in step.params)


_LINKS = "links"
_LINKS_LOCK = 0x6C696E6B  # "link": PostgreSQL advisory lock of `account_links` writers


async def execute(conn: AsyncConnection, steps: Sequence[Step]) -> None:
    if not steps:
        return
    driver = await _driver_in_transaction(conn)
    if conn.dialect.name == "postgresql" and any(s.mode == _LINKS for s in steps):
        # Link rows are derived from facts several partitions' writers merge into: one
        # writer at a time (the rebuild's workers, the live worker), taken before any row
        # lock so it cannot close a cycle. SQLite has one writer anyway.
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LINKS_LOCK})
    for step in steps:
        if step.mode == _LINKS:
            await _write_links(conn, step.params)
        elif step.fresh and await _copy_fresh(driver, step):
            pass
        elif step.staged:
            create, apply = _staged_statements(step.table, step.columns, step.keys, step.mode)
            stage = _stage_name(step.table, step.columns, step.mode)
            await driver.execute(create)
            await driver.copy_records_to_table(stage, records=step.params,
                                               columns=list(step.columns))
            await driver.execute(apply)
        elif step.multirow:
            sql = _multirow_statement(step.table, step.columns, step.keys, step.mode)
            await driver.execute(sql, *_columns_of(step.params, len(step.columns)))
        else:
            await driver.executemany(step.sql, step.params)
        if step.drop_zero and _may_fall_to_zero(step):
            # Totals that fell to zero go, so totals depend on the data, not the batching.
            await conn.execute(_drop_zero(step.table, step.drop_zero))


async def _write_links(conn: AsyncConnection, facts: Sequence[Mapping[str, Any]]) -> None:
    """Merge a batch's link facts into `account_link_facts` (holders added, the earliest
    decision kept: `directory.merge_link`'s rule) and derive the `account_links` row of
    every alias they touch: among its links some partition still holds, the earliest
    (ties: canonical key). Order-free across partitions, so a rebuild equals the live
    model however partitions were folded."""
    facts_table = account_link_facts
    c = facts_table.c
    for fact in facts:
        key = and_(c.account_key == fact["account_key"], c.canonical_key == fact["canonical_key"])
        if fact["linked_at"] is None:  # only ended links: their decision is stored already
            await conn.execute(update(facts_table).where(key)
                               .values(holders=c.holders + fact["holders"]))
            continue
        stmt = _insert(conn, facts_table).values(**fact)
        new = stmt.excluded
        earlier = tuple_(new.linked_at, new.matched_by, new.score) < tuple_(
            c.linked_at, c.matched_by, c.score)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=[c.account_key, c.canonical_key],
            set_={"holders": c.holders + new.holders,
                  "matched_by": case((earlier, new.matched_by), else_=c.matched_by),
                  "score": case((earlier, new.score), else_=c.score),
                  "linked_at": case((earlier, new.linked_at), else_=c.linked_at)}))
    aliases = sorted({f["account_key"] for f in facts})
    dialect = conn.dialect.name
    await conn.execute(delete(account_links).where(
        one_of(dialect, account_links.c.account_key, aliases)))
    other = facts_table.alias("other")
    held = (select(c.account_key, c.canonical_key, c.matched_by, c.score, c.linked_at)
            .where(one_of(dialect, c.account_key, aliases), c.holders > 0, ~exists().where(
                other.c.account_key == c.account_key, other.c.holders > 0,
                tuple_(other.c.linked_at, other.c.canonical_key)
                < tuple_(c.linked_at, c.canonical_key))))
    await conn.execute(insert(account_links).from_select(
        ["account_key", "canonical_key", "matched_by", "score", "linked_at"], held))


def fresh_tables(batch: Batch, written: Needs) -> frozenset[str]:
    """The tables none of whose rows `batch` writes are in the store yet, in a replay into
    emptied models where `written` holds the ids of every row written so far (before
    `batch`): its registrations, claims, disputes and holders' intervals that no earlier
    batch wrote, and its timeline entries (each is an event's, and a replay folds every
    event once; a log holding one event twice is caught by `_copy_fresh`)."""
    fresh = {timeline_entries.name}
    if written.registrations.isdisjoint(batch.dirty_registrations):
        fresh.add(registrations.name)
    if written.claims.isdisjoint(batch.dirty_claims):
        fresh.add(claims.name)
    if written.disputes.isdisjoint(batch.dirty_disputes):
        fresh.add(disputes.name)
    if written.holders.isdisjoint(holder for holder, _ in batch.intervals):
        fresh.add(ownership_intervals.name)
    return frozenset(fresh)


_FRESH = "dealreg_fresh_rows"


async def _copy_fresh(driver: Any, step: Step) -> bool:
    """PostgreSQL: `COPY` a step's rows straight into its table, when none of their keys is
    there yet; False (nothing written) when one is, and the step goes through staging as
    usual. Identical rows either way: an upsert of keys the table does not hold inserts
    them as they are. It saves the server the staging table's copy of every row and the
    upsert's conflict checks: half its write work in a rebuild (registrations, timeline
    entries). A savepoint keeps the batch's transaction usable when a key was there."""
    from asyncpg.exceptions import UniqueViolationError

    await driver.execute(f"SAVEPOINT {_FRESH}")
    try:
        await driver.copy_records_to_table(step.table.name, records=step.params,
                                           columns=list(step.columns))
    except UniqueViolationError:
        await driver.execute(f"ROLLBACK TO SAVEPOINT {_FRESH}")
        await driver.execute(f"RELEASE SAVEPOINT {_FRESH}")
        return False
    await driver.execute(f"RELEASE SAVEPOINT {_FRESH}")
    return True


def _stage_name(table: Table, columns: tuple[str, ...], mode: str) -> str:
    """One temporary table per (table, columns, mode): a batch's delete and insert steps
    on one table (`account_names_unfiled`: a rejection undone, another rejection) each
    stage their own rows, which share one transaction (before, the insert applied the
    rows the delete had staged too)."""
    suffix = "_del" if mode == "delete" else ""
    return f"_stage_{table.name}_{zlib.crc32(' '.join(columns).encode()):08x}{suffix}"


@lru_cache(maxsize=256)
def _staged_statements(table: Table, columns: tuple[str, ...], keys: tuple[str, ...],
                       mode: str) -> tuple[str, str]:
    """PostgreSQL: a temporary table of `columns` (emptied at every commit, so a batch
    never sees another's rows; created once per connection) and the one statement that
    applies its rows to `table` like `_bulk_statement`'s row-by-row upsert would.

    `COPY` plus one `INSERT .. SELECT .. ON CONFLICT` cost the server a fraction of one
    executor run per row (`executemany`); a batch holds each key at most once (its rows
    are keyed dicts), which a single `ON CONFLICT DO UPDATE` statement requires."""
    stage = _stage_name(table, columns, mode)
    names = ", ".join(f'"{c}"' for c in columns)
    create = (f'CREATE TEMPORARY TABLE IF NOT EXISTS "{stage}" ON COMMIT DELETE ROWS AS '
              f'SELECT {names} FROM "{table.name}" WITH NO DATA')
    if mode == "delete":
        where = " AND ".join(f'"{table.name}"."{c}" = s."{c}"' for c in columns)
        return create, f'DELETE FROM "{table.name}" USING "{stage}" s WHERE {where}'
    conflict = ", ".join(f'"{k}"' for k in keys)
    action = _conflict_action(table, columns, keys, mode)
    if table.name in _ONE_WRITER:
        # Only the owner of the row's partition writes it, and batches over a partition
        # take its positions' locks first (`lock_positions`): no other transaction holds
        # these rows, so their order does not matter, and sorting them cost the server
        # more than inserting (the rebuild's timeline rows: 103,149 wide rows sorted on
        # disk per 103,149-record log).
        return create, (f'INSERT INTO "{table.name}" ({names}) SELECT {names} '
                        f'FROM "{stage}" ON CONFLICT ({conflict}) {action}')
    # In key order: two writers adding to the same totals lock them in one order. The
    # fold's order (Python's, by code point), whatever the database's collation: a live
    # batch's small tables go out row by row or multi-row in that order (an `en_US`
    # ORDER BY put `a` before `B` and deadlocked them).
    order = ", ".join(f'"{k}" COLLATE "C"' if isinstance(table.c[k].type, String)
                      else f'"{k}"' for k in keys)
    return create, (f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{stage}" '
                    f"ORDER BY {order} ON CONFLICT ({conflict}) {action}")


_ONE_WRITER = frozenset({t.name for t in (registrations, claims, ownership_intervals,
                                          disputes, dispute_members, dispute_breaches,
                                          timeline_entries)})
"""Tables whose every row is written from one partition only (a registration's, claim's
or dispute's rows are on its account's partition: `services/projections/NOTES.md`,
"Rebuild"); the other tables (pipeline totals, directory facts, links, the outbox) are
shared by the writers of several partitions."""


@lru_cache(maxsize=256)
def _multirow_statement(table: Table, columns: tuple[str, ...], keys: tuple[str, ...],
                        mode: str) -> str:
    """PostgreSQL: the upsert of any number of rows in one statement, each column's values
    one array parameter (`unnest`), with the row-by-row statement's `ON CONFLICT` action
    (`_conflict_action`). One text per table and column set: a `VALUES (..), (..)` list
    was a text per row count, and with every count from 2 to 7 across the tables, more
    statements than asyncpg's cache of 100 per connection holds (63 seen in one run), so
    they were prepared again and again. The rows arrive in key order and are inserted in
    array order (`WITH ORDINALITY`), so concurrent writers lock shared rows in one order.
    The arrays are of the columns' base types (no length or precision: the values are
    checked against the column as a `VALUES` row's are, never cut to fit)."""
    names = ", ".join(f'"{c}"' for c in columns)
    arrays = ", ".join(f"${i}::{_base_type(table.c[c])}[]"
                       for i, c in enumerate(columns, start=1))
    conflict = ", ".join(f'"{k}"' for k in keys)
    action = _conflict_action(table, columns, keys, mode)
    return (f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM unnest({arrays}) '
            f'WITH ORDINALITY AS s({names}, "_row") ORDER BY "_row" '
            f"ON CONFLICT ({conflict}) {action}")


def _base_type(column: Column[Any]) -> str:
    """The PostgreSQL type of `column` without its modifier (`VARCHAR(64)` -> `VARCHAR`)."""
    dialect: Any = postgresql.dialect()  # type: ignore[no-untyped-call]
    return re.sub(r"\(.*\)", "", str(column.type.compile(dialect=dialect)))


def _columns_of(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Row tuples as one list per column (the arrays of `_multirow_statement`)."""
    return [list(values) for values in zip(*rows, strict=True)] if rows else [[]] * width


async def write(conn: AsyncConnection, batch: Batch, *,
                stage_from: int | None = STAGE_FROM_ROWS) -> None:
    """Write what `batch` changed (no commit): on PostgreSQL a table's rows go through
    staging from `stage_from` rows on (None: always row by row)."""
    await execute(conn, prepare(conn.dialect.name, batch, stage_from=stage_from))


def _sorted(rows: Mapping[Any, dict[str, Any]]) -> list[dict[str, Any]]:
    return [rows[k] for k in sorted(rows)]


async def empty(conn: AsyncConnection, models: Iterable[str]) -> None:
    """Delete every row of these models and their positions (the start of a rebuild)."""
    models = list(models)
    for model in models:
        for table in TABLES[model]:
            await conn.execute(delete(table))
    await forget_positions(conn, models)
    await record_versions(conn, models)  # refilled by this release

