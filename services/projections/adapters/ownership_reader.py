"""The ownership look-up: the hot read path (a CRM asks it on every new opportunity).

One look-up is a handful of indexed queries: the current policy when the question needs it
(CRM id spellings, a partner's name threshold), resolve the identifier to an account key,
find the keys linked to it, the intervals in force at the moment asked, and the open
disputes.
They run as one synchronous unit of work so that a look-up costs one hop to the database
driver, not one per query: on PostgreSQL inside the async connection (`run_sync`, asyncpg
round trips), on SQLite on a plain `sqlite3` connection in a worker thread (aiosqlite costs
a thread hop per cursor operation, which measured 3-4x slower than the SQL itself). The SQL
is the same SQLAlchemy Core on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from rapidfuzz import fuzz, process
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    event,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projections.domain.directory import name_keys
from shared.accounts import (
    Identifiers,
    different_customers,
    name_forms,
    normalize_country,
    normalize_name,
    sort_name_tokens,
)
from shared.accounts.salesforce import CrmIds, any_spelling, crm_id_spellings
from shared.api import partner_view
from shared.policy import Policy
from shared.readmodel.queries import (
    CURRENT_POLICY_DOCUMENT,
    OPENING_STEPS,
    entered_at,
    own_acts_query,
    policy_document,
    still_in_dispute,
)
from shared.readmodel.schema import (
    account_crm_ids,
    account_domains,
    account_links,
    account_name_keys,
    account_names,
    dispute_members,
    disputes,
    name_filed,
    ownership_intervals,
    registrations,
    timeline_entries,
)

Row = dict[str, Any]

NAME_POSTINGS_PER_KEY = 2000
NAME_CANDIDATE_BUDGET = 4000
_MAX_LINK_HOPS = 8


@dataclass(frozen=True, slots=True)
class Question:
    account_key: str | None = None
    crm_account_id: str | None = None
    domain: str | None = None
    """Already reduced to its registrable domain."""
    name: str | None = None
    country: str | None = None
    min_score: float = 0.9
    crm_ids: CrmIds = "exact"
    """Policy `match.crm_ids`: under `salesforce` any spelling of a Salesforce id finds the
    account filed under another (`crm_id_spellings`) and is one CRM id with it."""
    partner_id: str | None = None
    """Set for a partner caller: which open disputes it is party to, which of the account's
    keys it registered under."""
    rivals_at: datetime | None = None
    """With `partner_id`: the moment everyone else's intervals are read at (a partner's
    `as_of`, floored to the hour: `partner_view.rivals_moment`); its own are read at the
    moment asked. None: everyone's at that moment."""
    by_policy: bool = False
    """Read the current policy first, in the same unit of work (`current_policy`): its
    `match.crm_ids` replaces `crm_ids` and, with `floor_min_score`, its
    `match.name_threshold` is the least `min_score`."""
    floor_min_score: bool = False
    """A partner's name look-up answers only the matches the program itself acts on: a
    lower `min_score` would let it probe other partners' customers."""


@dataclass
class Answer:
    account_key: str | None = None
    matched_by: str | None = None
    score: float = 1.0
    keys: list[str] = field(default_factory=list)
    holdings: list[Row] = field(default_factory=list)
    open_disputes: list[str] = field(default_factory=list)
    partner_disputes: set[str] = field(default_factory=set)
    partner_keys: set[str] = field(default_factory=set)
    partner_filed_elsewhere: dict[str, frozenset[str]] = field(default_factory=dict)
    """The partner's registrations on these keys filed under a key its own identifiers do
    not derive (one a competitor's identifiers derive), and the keys they do derive."""


# --- the unit of work ------------------------------------------------------------------


def look_up(conn: Connection, question: Question, moment: datetime) -> Answer:
    if question.by_policy:
        match = current_policy(conn).match
        question = replace(question, crm_ids=match.crm_ids, min_score=max(
            question.min_score, match.name_threshold) if question.floor_min_score
            else question.min_score)
    answer = Answer()
    linked: dict[str, tuple[str, list[str]]] = {}
    key = _resolve(conn, question, answer, linked)
    if key is None:
        return answer
    # The key's links were usually read already, by the same-customer check.
    answer.account_key, answer.keys = linked.get(key) or _account_keys(conn, key)
    if question.partner_id is not None and question.rivals_at is not None \
            and question.rivals_at != moment:
        answer.holdings = _partner_holdings(conn, answer.keys, moment, question.rivals_at,
                                            question.partner_id)
    else:
        answer.holdings = _holdings(conn, answer.keys, moment)
    answer.open_disputes = _open_disputes(conn, answer.keys, moment)
    if question.partner_id is not None:
        if answer.open_disputes:
            answer.partner_disputes = _disputes_of_partner(
                conn, answer.open_disputes, question.partner_id, moment,
                as_of=question.rivals_at is not None)
        # Only keys the partner's own identifiers derive: a registration resolved to a
        # key through a competitor's CRM id or domain does not make that key the partner's.
        for holder, key, account in conn.execute(
                _PARTNER_ACCOUNTS, {"partner": question.partner_id, "keys": answer.keys}):
            if partner_view.own_key(key, account) is not None:
                answer.partner_keys.add(key)
            else:
                answer.partner_filed_elsewhere[holder] = partner_view.submitted_keys(account)
    return answer


def _resolve(conn: Connection, q: Question, answer: Answer,
             linked: dict[str, tuple[str, list[str]]]) -> str | None:
    """The key the question names; `linked` collects the links read on the way."""
    if q.account_key:
        answer.matched_by = "account_key"
        return q.account_key
    if q.crm_account_id:
        key = conn.execute(_KEY_OF_CRM_ID, {"crm": list(crm_id_spellings(
            q.crm_account_id, q.crm_ids))}).scalars().first()
        if key is None and q.crm_ids == "any_spelling":
            # Spellings are unbounded ("Acc_2024.00777"): the directory files each id's
            # spelling-free form too (migration 0014; session 28 rival review: the holder's
            # id in another spelling answered that nobody owned it).
            key = conn.execute(_KEY_OF_CRM_SPELLING, {
                "spelling": any_spelling(q.crm_account_id)}).scalars().first()
        if key is not None:
            answer.matched_by = "crm_account_id"
            return str(key)
    query = Identifiers(frozenset((q.crm_account_id,)) if q.crm_account_id else frozenset(),
                        frozenset((q.domain,)) if q.domain else frozenset()
                        ).canonical(q.crm_ids)

    def admits(key: str) -> bool:
        """The same customer rule (shared.accounts.sameness): the account's customer must
        not carry identifiers other than the question's."""
        return not query or not different_customers(
            query, _customer(conn, key, linked).canonical(q.crm_ids))

    if q.domain:
        key = conn.execute(_KEY_OF_DOMAIN, {"domain": q.domain}).scalar_one_or_none()
        if key is not None and admits(str(key)):
            answer.matched_by = "domain"
            return str(key)
    if q.name and q.country:
        found = account_for_name(conn, q.name, q.country, q.min_score, admits)
        if found is not None:
            answer.matched_by = "name"
            answer.score = found[1]
            return found[0]
    return None


def account_for_name(conn: Connection, name: str, country: str, min_score: float,
                     admits: Callable[[str], bool] | None = None
                     ) -> tuple[str, float] | None:
    """The account a company name designates within a country: the exact normalized name
    first, else the best fuzzy match scoring at least `min_score` (token-sort similarity,
    as the adjudicator matches); ties go to the smallest key. `admits(key)` filters out
    accounts that are another customer by their identifiers (a name never bridges them).
    A name of several forms ("X dba Y", `name_forms`) asks each: an exact one first, else
    the best fuzzy one."""
    code = normalize_country(country)
    normalized = normalize_name(name, code) if code is not None else ""
    if not normalized or code is None:
        return None
    forms = name_forms(normalized)
    for form in forms:
        for key in _keys_named(conn, code, form):
            if admits is None or admits(key):
                return key, 1.0
    best: tuple[str, float] | None = None
    for form in forms:
        found = _fuzzy_name(conn, code, form, min_score, admits)
        if found is not None and (best is None or (-found[1], found[0]) < (-best[1], best[0])):
            best = found
    return best


def _fuzzy_name(conn: Connection, code: str, normalized: str, min_score: float,
                admits: Callable[[str], bool] | None) -> tuple[str, float] | None:
    candidates = _name_candidates(conn, code, normalized)
    if not candidates:
        return None
    by_sorted = {sort_name_tokens(c): c for c in candidates}
    scored = process.extract(sort_name_tokens(normalized), list(by_sorted), scorer=fuzz.ratio,
                             score_cutoff=min_score * 100.0 - 1e-7, limit=None)
    scored.sort(key=lambda s: (-s[1], s[0]))
    for text, score, _ in scored:
        for key in _keys_named(conn, code, by_sorted[text]):
            if admits is None or admits(key):
                return key, round(score / 100.0, 4)
    return None


def _customer(conn: Connection, key: str,
              known_links: dict[str, tuple[str, list[str]]] | None = None) -> Identifiers:
    """The identifiers filed under `key` and the keys linked to it (the links kept in
    `known_links`)."""
    found = _account_keys(conn, key)
    if known_links is not None:
        known_links[key] = found
    _, keys = found
    domains = conn.execute(_DOMAINS_OF_KEYS, {"keys": keys}).scalars().all()
    crm_ids = conn.execute(_CRM_IDS_OF_KEYS, {"keys": keys}).scalars().all()
    carried = Identifiers(frozenset(crm_ids), frozenset(domains))
    for linked in keys:
        carried = carried | Identifiers.of_key(linked)
    return carried


def _keys_named(conn: Connection, country: str, name: str) -> list[str]:
    return list(conn.execute(_KEYS_NAMED, {"country": country, "name": name}).scalars().all())


def _name_candidates(conn: Connection, country: str, normalized: str) -> set[str]:
    """Names sharing a blocking key, rarest keys first, within a candidate budget: a key
    shared by very many names (like "group") is skipped when rarer keys exist. Postings
    are counted (capped, in the index) before any name is fetched."""
    sized: list[tuple[int, str]] = []
    for key in sorted(name_keys(normalized)):
        size = conn.execute(_POSTINGS, {"country": country, "key": key}).scalar_one()
        if size:
            sized.append((int(size), key))
    sized.sort()
    chosen: list[str] = []
    total = 0
    for size, key in sized:
        if chosen and (total + size > NAME_CANDIDATE_BUDGET or size > NAME_POSTINGS_PER_KEY):
            break
        chosen.append(key)
        total += size
    if not chosen:
        return set()
    return set(conn.execute(_CANDIDATES, {"country": country, "keys": chosen}
                            ).scalars().all())


def _account_keys(conn: Connection, key: str) -> tuple[str, list[str]]:
    """The canonical key of `key` and every key of that customer (canonical first): one
    query unless `key` is itself an alias."""
    links = account_links.c
    rows = conn.execute(_LINKS_OF_KEY, {"key": key}).all()
    if not any(alias == key for alias, _ in rows):
        return key, [key, *sorted(alias for alias, _ in rows)]
    canonical = key
    seen = {key}
    for _ in range(_MAX_LINK_HOPS):
        target = conn.execute(select(links.canonical_key)
                              .where(links.account_key == canonical)).scalar_one_or_none()
        if target is None or target in seen:
            break
        seen.add(target)
        canonical = target
    keys = [canonical]
    frontier = [canonical]
    for _ in range(_MAX_LINK_HOPS):
        aliases = conn.execute(select(links.account_key)
                               .where(links.canonical_key.in_(frontier))).scalars().all()
        frontier = sorted(a for a in aliases if a not in keys)
        if not frontier:
            break
        keys.extend(frontier)
    return canonical, keys


def in_force(moment: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    t = ownership_intervals.c
    return and_(
        t.valid_from <= moment,
        or_(t.valid_to.is_(None), t.valid_to > moment),
        or_(t.protected_until.is_(None), t.protected_until > moment),
    )


# The hot path's statements, built once (SQLAlchemy caches their compiled form; building
# the expressions on every look-up cost more than running them on SQLite).
_KEYS: BindParameter[str] = bindparam("keys", expanding=True)
_MOMENT = bindparam("moment", type_=ownership_intervals.c.valid_from.type)
_KEY_OF_CRM_ID = (select(account_crm_ids.c.account_key)
                  .where(account_crm_ids.c.crm_account_id.in_(bindparam("crm", expanding=True)))
                  .order_by(account_crm_ids.c.account_key))
_KEY_OF_CRM_SPELLING = (select(account_crm_ids.c.account_key)
                        .where(account_crm_ids.c.crm_spelling == bindparam("spelling"))
                        .order_by(account_crm_ids.c.account_key))
_KEY_OF_DOMAIN = select(account_domains.c.account_key).where(
    account_domains.c.domain == bindparam("domain"))
_DOMAINS_OF_KEYS = select(account_domains.c.domain).where(account_domains.c.account_key.in_(_KEYS))
_CRM_IDS_OF_KEYS = select(account_crm_ids.c.crm_account_id).where(
    account_crm_ids.c.account_key.in_(_KEYS))
_KEYS_NAMED = (select(account_names.c.account_key)
               .where(account_names.c.country == bindparam("country"),
                      account_names.c.name == bindparam("name"), name_filed())
               .order_by(account_names.c.account_key))
"""The keys a name is filed under: the primary key's (country, name) range, each row's
latest filer probed in `account_names_unfiled`'s primary key (session 30)."""
_LINKS_OF_KEY = select(account_links.c.account_key, account_links.c.canonical_key).where(
    or_(account_links.c.account_key == bindparam("key"),
        account_links.c.canonical_key == bindparam("key")))
_HOLDINGS = (select(ownership_intervals, registrations.c.motion)
             .outerjoin(registrations, registrations.c.id == ownership_intervals.c.holder_id)
             .where(ownership_intervals.c.account_key.in_(_KEYS), in_force(_MOMENT))
             .order_by(ownership_intervals.c.kind.desc(), ownership_intervals.c.valid_from,
                       ownership_intervals.c.holder_id))
_PARTNER_ACCOUNTS = select(registrations.c.id, registrations.c.account_key,
                           registrations.c.account).where(
    registrations.c.partner_id == bindparam("partner"), registrations.c.account_key.in_(_KEYS))
_POSTINGS = select(func.count()).select_from(
    select(account_name_keys.c.name)
    .where(account_name_keys.c.country == bindparam("country"),
           account_name_keys.c.key == bindparam("key"))
    .limit(NAME_POSTINGS_PER_KEY + 1).subquery())
_CANDIDATES = (select(account_name_keys.c.name).distinct()
               .where(account_name_keys.c.country == bindparam("country"),
                      account_name_keys.c.key.in_(_KEYS))
               .limit(NAME_CANDIDATE_BUDGET + NAME_POSTINGS_PER_KEY + 1))
_OPEN_DISPUTES = (select(disputes.c.id)
                  .where(disputes.c.account_key.in_(_KEYS), disputes.c.opened_at <= _MOMENT,
                         or_(disputes.c.resolved_at.is_(None), disputes.c.resolved_at > _MOMENT))
                  .order_by(disputes.c.opened_at, disputes.c.id))


def _holdings(conn: Connection, keys: list[str], moment: datetime) -> list[Row]:
    """Intervals in force at `moment`, protections before incumbencies, earliest first,
    with the holder's motion."""
    rows = [dict(r) for r in conn.execute(
        _HOLDINGS, {"keys": keys, "moment": moment}).mappings()]
    for row in rows:
        if row["party_type"] != "partner":
            row["motion"] = "direct"
    return rows


def _partner_holdings(conn: Connection, keys: list[str], moment: datetime,
                      rivals_at: datetime, partner_id: str) -> list[Row]:
    """A partner's `as_of` look-up: its own intervals in force at `moment`, everyone else's
    at `rivals_at`, in `_holdings`' order. Read at any microsecond, a competitor's
    intervals would date its approval, withdrawal or end by bisection (invariant 7)."""
    def mine(row: Row) -> bool:
        return bool(row["party_type"] == "partner" and row["party_id"] == partner_id)

    rows = [r for r in _holdings(conn, keys, moment) if mine(r)]
    rows += [r for r in _holdings(conn, keys, rivals_at) if not mine(r)]
    rows.sort(key=lambda r: (r["valid_from"], r["holder_id"]))
    rows.sort(key=lambda r: r["kind"], reverse=True)
    return rows


def _open_disputes(conn: Connection, keys: list[str], moment: datetime) -> list[str]:
    return list(conn.execute(_OPEN_DISPUTES, {"keys": keys, "moment": moment}
                             ).scalars().all())


def _disputes_of_partner(conn: Connection, dispute_ids: list[str], partner_id: str,
                         moment: datetime, *, as_of: bool = False) -> set[str]:
    """Which of `dispute_ids` the partner was party to at `moment`: one of its
    registrations had entered it by then (the `opened_at` its dispute view shows,
    `queries.entered_at`: the later of its first decision and the dispute's step that drew
    it in). A dispute opened over rivals is not its own before that: listed from the real
    opening, or from its earlier rejection when a contest of it was merged into that
    dispute later, `as_of` look-ups either side of an instant would bisect a rival's
    submission (invariant 7). `as_of`: a look-up in the past (without one, `moment` is
    now, and every step already projected came before it)."""
    m = dispute_members.c
    r = registrations.c
    joined = func.coalesce(r.first_decided_at, r.decided_at, r.submitted_at)
    # Open at `moment`, so still in it then unless it ended by then (`still_in_dispute`,
    # the dispute's resolution taken as after `moment`): a withdrawn partner no longer
    # counts it, else it would read whether two rivals or one were left.
    rows = conn.execute(
        select(m.dispute_id, m.member_id, joined).join(registrations, r.id == m.member_id)
        .where(m.dispute_id.in_(dispute_ids), r.partner_id == partner_id, joined <= moment,
               still_in_dispute(r.ended_at, literal(moment, r.ended_at.type)))
    ).all()
    if not as_of or not rows:
        return {dispute_id for dispute_id, _, _ in rows}
    members: dict[str, tuple[set[str], Any]] = {}
    for dispute_id, member, first in rows:
        ids, earliest = members.get(dispute_id, (set(), None))
        ids.add(member)
        members[dispute_id] = (ids, first if earliest is None or first < earliest
                               else earliest)
    steps: dict[str, list[tuple[int, str, Any]]] = {}
    t = timeline_entries.c
    for subject, at_us, kind, raw in conn.execute(
            select(t.subject_id, t.at_us, t.type, t.data)
            .where(t.subject_id.in_(list(members)), t.type.in_(OPENING_STEPS))
            .order_by(t.at_us)):
        steps.setdefault(subject, []).append((at_us, kind, orjson.loads(raw)))
    own_acts = {int(at_us) for at_us in conn.execute(own_acts_query(
        [i for ids, _ in members.values() for i in ids])).scalars()}
    return {dispute_id for dispute_id, (ids, first) in members.items()
            if _aware(entered_at(first, steps.get(dispute_id, ()), ids, own_acts)) <= moment}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def current_policy(conn: Connection) -> Policy:
    """The current policy (the default policy before any): its `match.name_threshold`
    bounds a partner's name look-ups, its `match.crm_ids` says which spellings of a CRM id
    are one id. A stored document that cannot be read fails closed: exact names, exact
    CRM ids. Read with the look-up's other statements (one driver hop); the policy parsed
    from a document is kept until the stored document differs (`_parsed`)."""
    return _parsed(policy_document(conn.execute(CURRENT_POLICY_DOCUMENT).scalar()))


_last_policy: tuple[dict[str, Any] | None, Policy] | None = None


def _parsed(document: dict[str, Any] | None) -> Policy:
    """`document` as a policy, remembered for the next look-up: parsing a published
    document cost about as much as the look-up's SQL (a look-up thread sees the pair it
    read, whole, or parses again)."""
    global _last_policy
    last = _last_policy
    if last is not None and last[0] == document:
        return last[1]
    try:
        policy = Policy.from_published(document) if document else Policy.default()
    except ValueError:
        closed = Policy.default()
        policy = closed.model_copy(update={"match": closed.match.model_copy(
            update={"name_threshold": 1.0, "review_band": 0.0, "crm_ids": "exact"})})
    _last_policy = (document, policy)
    return policy


# --- running it ------------------------------------------------------------------------


class OwnershipReader:
    """Runs `look_up` with one driver hop (see the module docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sync: Engine | None = None
        if engine.dialect.name == "sqlite":
            self._sync = create_sync_engine(engine.url.set(drivername="sqlite"),
                                            pool_size=8, max_overflow=8)
            event.listen(self._sync, "connect", _read_only_pragmas)

    async def look_up(self, question: Question, moment: datetime) -> Answer:
        if self._sync is not None:
            return await asyncio.to_thread(self._look_up_sync, question, moment)
        async with self.engine.connect() as conn:
            return await conn.run_sync(look_up, question, moment)

    def _look_up_sync(self, question: Question, moment: datetime) -> Answer:
        assert self._sync is not None
        with self._sync.connect() as conn:
            return look_up(conn, question, moment)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.dispose()


def _read_only_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()
