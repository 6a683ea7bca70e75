"""Read queries more than one service needs (the registration service reads the directory
and waits for decisions; the query API serves them).

Directory look-ups answer with the *canonical* key: when the adjudicator found two keys to
be one customer (`AccountsLinked`), the alias resolves to the canonical key, so later
commands converge on one key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from copy import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    any_,
    bindparam,
    column,
    func,
    or_,
    select,
    table,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import NullType

from shared.api import partner_view
from shared.business_time import from_us
from shared.readmodel.schema import (
    Json,
    account_crm_ids,
    account_domains,
    account_links,
    claims,
    dispute_members,
    disputes,
    registrations,
    timeline_entries,
)

_MAX_LINK_HOPS = 8

STAFF_COMMANDS: tuple[str, ...] = ("dealreg.dispute.acknowledged.v1",
                                   "dealreg.dispute.resolution_submitted.v1")
"""The timeline types of an owner's (or admin's) command on a dispute."""
DISPUTE_REFUSAL = "dealreg.dispute.action_rejected.v1"


async def command_refusal(conn: AsyncConnection, dispute_id: str, command_id: str
                          ) -> dict[str, Any] | None:
    """Adjudication's refusal of THE command whose event id is `command_id`, if it refused
    it: a decision's event id is its cause's id and its place among the cause's outputs
    (`<cause>.d<n>`, README "Decision ids in timelines"), so the refusal under the dispute
    whose id starts `<command_id>.d` answers that command and no other (refusals are many
    per dispute). Its data as the timeline keeps it (reason, explanation, action, ...)."""
    t = timeline_entries
    row = (await conn.execute(
        select(t.c.data).where(t.c.subject_id == dispute_id, t.c.type == DISPUTE_REFUSAL,
                               t.c.event_id.startswith(f"{command_id}.d", autoescape=True))
        .limit(1))).first()
    if row is None:
        return None
    data: dict[str, Any] = orjson.loads(row.data)
    return data


async def last_refusal(conn: AsyncConnection, dispute_id: str) -> dict[str, Any] | None:
    """The refusal of the latest staff command (acknowledge, resolve) on `dispute_id`, if
    adjudication refused it: what the dispute's GET shows as `last_refusal`. None when
    that command was applied or is not decided yet (an earlier refusal is history: the
    timeline keeps it)."""
    return (await last_refusals(conn, [dispute_id])).get(dispute_id)


async def last_refusals(conn: AsyncConnection, dispute_ids: Iterable[str]
                        ) -> dict[str, dict[str, Any]]:
    """`last_refusal` of each of `dispute_ids` that has one, in one query (a page of the
    staff's dispute list): the latest staff command of each dispute (by time, then event
    id) and, if adjudication refused it, that refusal (`command_refusal`'s rule: the
    refusal whose id is `<command id>.d<n>`)."""
    wanted = list(dict.fromkeys(dispute_ids))
    if not wanted:
        return {}
    t = timeline_entries
    latest: dict[str, tuple[int, str]] = {}
    refusals: dict[str, list[tuple[str, Any]]] = {}
    for subject, event_id, at_us, kind, raw in (await conn.execute(
            select(t.c.subject_id, t.c.event_id, t.c.at_us, t.c.type, t.c.data)
            .where(one_of(conn.dialect.name, t.c.subject_id, wanted),
                   one_of(conn.dialect.name, t.c.type, (*STAFF_COMMANDS, DISPUTE_REFUSAL))))
    ).all():
        if kind == DISPUTE_REFUSAL:
            refusals.setdefault(subject, []).append((str(event_id), raw))
        elif subject not in latest or (at_us, str(event_id)) > latest[subject]:
            latest[subject] = (at_us, str(event_id))
    found: dict[str, dict[str, Any]] = {}
    for subject, (_, command_id) in latest.items():
        raw = next((r for i, r in refusals.get(subject, ()) if i.startswith(f"{command_id}.d")),
                   None)
        if raw is None:
            continue
        refused = orjson.loads(raw)
        found[subject] = {
            "action": refused.get("action"), "reason": refused.get("reason"),
            "explanation": refused.get("explanation"), "actor_id": refused.get("actor_id"),
            "refused_at": refused.get("decided_at"), "command_id": command_id}
    return found


def one_of(dialect: str, column: Any, values: Iterable[Any]) -> Any:
    """`column IN values`, on PostgreSQL as `column = ANY($1)` with the values as one
    array parameter: one statement text whatever their number. An `IN ($1, .., $n)` list
    is a new text per count, and each new text a new prepared statement on the connection
    (a round trip, a parse and plan, a type introspection) that pushes another out of
    SQLAlchemy's LRU of 100 per connection: with batches of every size the loads missed
    the cache most of the time (10 % of the projection worker's CPU, py-spy)."""
    values = list(values)
    if dialect != "postgresql" or isinstance(column.type, NullType):
        return column.in_(values)  # (an untyped column: no array type to bind as)
    kind = column.type
    if isinstance(kind, String) and kind.length is not None:
        # `VARCHAR(64)[]` would cut every value to 64 characters (an explicit cast
        # truncates): an over-long id found its prefix's row. `IN` compares all of it.
        kind = copy(kind)
        kind.length = None
    return column == any_(bindparam(None, values, type_=postgresql.ARRAY(kind)))


# Built once: composing the statement per call cost more CPU than running it (profile of
# `GET /v1/registrations/{id}`, tests/bench/profile_api_edge.py); same SQL, bound per call.
_REGISTRATION_BY_ID = select(registrations).where(
    registrations.c.id == bindparam("registration_id"))


async def get_registration(conn: AsyncConnection, registration_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(_REGISTRATION_BY_ID, {"registration_id": registration_id})
    ).first()
    return dict(row._mapping) if row is not None else None


async def follow_links(account_key: str,
                       target_of: Callable[[str], Awaitable[str | None]]) -> str:
    """The key `account_key` is linked to, following links (`target_of`: a key's link
    target, None when it has none) at most `_MAX_LINK_HOPS` and never round a cycle."""
    seen = {account_key}
    key = account_key
    for _ in range(_MAX_LINK_HOPS):
        target = await target_of(key)
        if target is None or target in seen:
            break
        seen.add(target)
        key = target
    return key


_LINK_TARGET = select(account_links.c.canonical_key).where(
    account_links.c.account_key == bindparam("key"))


async def canonical_key(conn: AsyncConnection, account_key: str) -> str:
    """The key `account_key` is linked to (following links), else itself."""
    async def target_of(key: str) -> str | None:
        return (await conn.execute(_LINK_TARGET, {"key": key})).scalar_one_or_none()

    return await follow_links(account_key, target_of)


async def linked_keys(conn: AsyncConnection, canonical: str) -> list[str]:
    """Every key that resolves to `canonical` (itself first, then its aliases)."""
    keys = [canonical]
    frontier = [canonical]
    for _ in range(_MAX_LINK_HOPS):
        if not frontier:
            break
        aliases = (
            await conn.execute(select(account_links.c.account_key)
                               .where(account_links.c.canonical_key.in_(frontier)))
        ).scalars().all()
        frontier = sorted(a for a in aliases if a not in keys)
        keys.extend(frontier)
    return keys


async def account_key_for_domain(conn: AsyncConnection, domain: str) -> str | None:
    key = (
        await conn.execute(
            select(account_domains.c.account_key).where(account_domains.c.domain == domain)
        )
    ).scalar_one_or_none()
    return await canonical_key(conn, key) if key is not None else None


async def account_key_for_crm_id(conn: AsyncConnection, crm_account_id: str) -> str | None:
    key = (
        await conn.execute(
            select(account_crm_ids.c.account_key).where(
                account_crm_ids.c.crm_account_id == crm_account_id
            )
        )
    ).scalar_one_or_none()
    return await canonical_key(conn, key) if key is not None else None


async def holders_of(conn: AsyncConnection, ids: Iterable[str]
                     ) -> dict[str, tuple[str, str, str | None]]:
    """`id -> (party_type, party_id, account_key)` for the registrations and claims among
    `ids`: which of the ids a view mentions are the viewer's (`shared.api.partner_view`).
    A registration's key is given only when its own submitted account derives it."""
    wanted = list(set(ids))
    found: dict[str, tuple[str, str, str | None]] = {}
    if not wanted:
        return found
    for rid, partner, key, account in (await conn.execute(
        select(registrations.c.id, registrations.c.partner_id, registrations.c.account_key,
               registrations.c.account)
        .where(registrations.c.id.in_(wanted))
    )).all():
        if partner is not None:
            found[rid] = partner_view.holder("partner", partner, key, account)
    for cid, rep, key in (await conn.execute(
        select(claims.c.id, claims.c.rep_id, claims.c.account_key)
        .where(claims.c.id.in_(wanted))
    )).all():
        if rep is not None:
            found[cid] = ("direct", rep, key)
    return found


async def first_decided(conn: AsyncConnection, ids: Iterable[str]) -> Any:
    """When the earliest of these registrations was first decided (None: none was): when
    a partner's registration entered a dispute it may be shown (`partner_view.dispute`)."""
    wanted = list(set(ids))
    if not wanted:
        return None
    moments = [m for (m,) in (await conn.execute(
        select(func.coalesce(registrations.c.first_decided_at, registrations.c.decided_at,
                             registrations.c.submitted_at))
        .where(registrations.c.id.in_(wanted)))).all() if m is not None]
    return min(moments) if moments else None


@dataclass(frozen=True, slots=True)
class Entered:
    """A partner's entry into a dispute (`entered_dispute`)."""

    at: Any
    """When the first of its registrations entered the dispute (None: none decided)."""
    opening: dict[str, Any] | None
    """The dispute's `dealreg.dispute.opened.v1` data (None: not in the timelines model
    yet): whether it carries on an older dispute (`partner_view.carries_on`)."""
    reason: str | None = None
    """The dispute's reason when the first of its registrations entered it
    (`partner_view.reason_when_entered`; None: not known)."""


OPENING_STEPS: Final = ("dealreg.dispute.opened.v1", "dealreg.dispute.joined.v1")
"""The steps of a dispute that draw registrations into it (`entered_at`)."""


def entered_at(first: Any, steps: Iterable[tuple[int, str, Any]], wanted: set[str],
               own_acts: Collection[int] = ()) -> Any:
    """When the first of `wanted` entered a dispute: the later of its first decision
    (`first`, `first_decided`) and the dispute's first step (`OPENING_STEPS`, as
    `(at_us, type, data)` in time order) naming one of them. A registration decided earlier
    may enter a dispute long after (a contest merged into an older dispute, a promotion
    next in line): its first decision is not when it joined. One rule for the dispute's
    view (`entered_dispute`) and `GET /v1/ownership?as_of=` (its open disputes).
    `own_acts`: when `wanted`'s own acts happened (`own_acts_of`, µs): a dispute opening
    over them, or a joining drawing them in, at another moment was a rival's act, and is
    entered at the hour after (`partner_view.entered_by`)."""
    for at_us, kind, data in steps:
        named = data.get("registration_ids" if kind.endswith("opened.v1") else "added_ids")
        if wanted & set(named or ()):
            # An opening or a joining alike: a rival's act may draw `wanted` in either way
            # (a rival joining a dispute draws a holder's approval in beside it).
            moment = partner_view.entered_by(from_us(at_us), {from_us(a) for a in own_acts})
            return moment if first is None or _moment_of(first) < moment else first
    return first


def own_acts_query(ids: Iterable[str]) -> Select[Any]:
    """SQL: when these registrations' own acts that may open a dispute over them happened
    (`partner_view.OWN_ACTS`: their submissions and contests), µs."""
    return (select(timeline_entries.c.at_us)
            .where(timeline_entries.c.subject_id.in_(sorted(set(ids))),
                   timeline_entries.c.type.in_(partner_view.OWN_ACTS)))


async def own_acts_of(conn: AsyncConnection, ids: Iterable[str]) -> set[int]:
    """`own_acts_query`'s moments."""
    return {int(at_us) for at_us in (await conn.execute(own_acts_query(ids))).scalars()}


async def entered_dispute(conn: AsyncConnection, dispute_id: str, ids: Iterable[str]
                          ) -> Entered:
    """When the first of these registrations entered the dispute (`entered_at`), and the
    dispute's opening: a dispute opened over rivals before it entered, or carrying on the
    ladder of one, reads as a late joiner's (`partner_view.dispute`)."""
    wanted = set(ids)
    first = await first_decided(conn, wanted)
    rows = (await conn.execute(
        select(timeline_entries.c.at_us, timeline_entries.c.type, timeline_entries.c.data)
        .where(timeline_entries.c.subject_id == dispute_id,
               timeline_entries.c.type.in_(OPENING_STEPS))
        .order_by(timeline_entries.c.at_us))).all()
    steps = [(at_us, kind, orjson.loads(raw)) for at_us, kind, raw in rows]
    opening = next((data for _, kind, data in steps if kind == OPENING_STEPS[0]), None)
    own_acts = await own_acts_of(conn, wanted)
    return Entered(entered_at(first, steps, wanted, own_acts) if wanted else first, opening,
                   partner_view.reason_when_entered(
                       [(kind, data) for _, kind, data in steps], wanted))


def _moment_of(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# The registration service owns the policy table (a fold of the reference topic); readers
# elsewhere need only the current document.
_policies = table("ref_policies", column("version"), column("document", Json))


CURRENT_POLICY_DOCUMENT = (select(_policies.c.document)
                           .order_by(_policies.c.version.desc()).limit(1))
"""The newest published policy's stored document (no row before the first publication);
built once (`policy_document` reads the value it returns)."""


async def current_policy_document(conn: AsyncConnection) -> dict[str, Any] | None:
    """The newest published policy document (None before the first publication)."""
    row = (await conn.execute(CURRENT_POLICY_DOCUMENT)).first()
    return None if row is None else policy_document(row[0])


def policy_document(stored: Any) -> dict[str, Any] | None:
    """A stored policy document as a dict (JSON text on SQLite, decoded on PostgreSQL)."""
    if isinstance(stored, str | bytes):
        stored = orjson.loads(stored)
    return dict(stored) if isinstance(stored, dict) else None


def still_in_dispute(ended_at: Any, resolved_at: Any) -> ColumnElement[bool]:
    """SQL: a member registration (its `ended_at`) is still in its dispute (the dispute's
    `resolved_at`): its protection did not end (withdrawn, closed won or lost, exited,
    released) while the dispute was open. The adjudicator takes a registration that ended
    out of the dispute (`moot` when one party is left); the read model keeps it as a
    member. A partner is party to a dispute only through a registration still in it
    (`party_disputes`): else, having withdrawn, it read whether the dispute went on
    (two or more rivals left) or ended `moot` (one), and every later step among the
    rivals (`partner_view.timeline` cuts a timeline likewise, `left_disputes_at`)."""
    return or_(ended_at.is_(None), and_(resolved_at.is_not(None), ended_at > resolved_at))


def party_disputes(partner_id: str) -> Any:
    """SQL: the ids of the disputes a partner is party to (`still_in_dispute`)."""
    m, r = dispute_members.c, registrations.c
    d = disputes.alias("party_dispute")
    return (select(m.dispute_id)
            .join(registrations, r.id == m.member_id)
            .join(d, d.c.id == m.dispute_id)
            .where(r.partner_id == partner_id,
                   still_in_dispute(r.ended_at, d.c.resolved_at)))
