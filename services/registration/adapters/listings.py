"""Keyset pages of the directories the registration service owns: partners, escalation
owners, API keys and policy versions (the `GET` lists of `api/listings.py`).

Every page is ordered by the primary key and continues after the last key of the previous
one, so a page never repeats or skips a row that existed when the first page was read. The
caller asks for `limit + 1` rows to learn whether there is a next page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.registration.adapters.tables import api_keys, ref_owners, ref_partners, ref_policies

Row = dict[str, Any]


async def partner_page(conn: AsyncConnection, *, statuses: Sequence[str], tiers: Sequence[str],
                       types: Sequence[str], after: str | None, limit: int) -> list[Row]:
    p = ref_partners.c
    query = select(ref_partners)
    if statuses:
        query = query.where(p.status.in_(list(statuses)))
    if tiers:
        query = query.where(p.tier.in_(list(tiers)))
    if types:
        query = query.where(p.type.in_(list(types)))
    if after is not None:
        query = query.where(p.id > after)
    rows = (await conn.execute(query.order_by(p.id).limit(limit + 1))).mappings()
    return [dict(r) for r in rows]


async def owner_page(conn: AsyncConnection, *, after: str | None, limit: int) -> list[Row]:
    o = ref_owners.c
    query = select(o.id, o.name, o.email, o.webhook_url, o.updated_at)
    if after is not None:
        query = query.where(o.id > after)
    rows = (await conn.execute(query.order_by(o.id).limit(limit + 1))).mappings()
    return [dict(r) for r in rows]


async def api_key_page(conn: AsyncConnection, *, roles: Sequence[str], subject_id: str | None,
                       include_revoked: bool, after: str | None, limit: int) -> list[Row]:
    """Keys without their secret hash: the columns are named, `secret_sha256` never read."""
    k = api_keys.c
    query = select(k.id, k.role, k.subject_id, k.name, k.created_at, k.revoked_at)
    if roles:
        query = query.where(k.role.in_(list(roles)))
    if subject_id is not None:
        query = query.where(k.subject_id == subject_id)
    if not include_revoked:
        query = query.where(k.revoked_at.is_(None))
    if after is not None:
        query = query.where(k.id > after)
    rows = (await conn.execute(query.order_by(k.id).limit(limit + 1))).mappings()
    return [dict(r) for r in rows]


async def policy_version_page(conn: AsyncConnection, *, before: int | None, limit: int
                              ) -> list[Row]:
    """Newest version first."""
    v = ref_policies.c
    query = select(v.version, v.published_at, v.published_by)
    if before is not None:
        query = query.where(v.version < before)
    rows = (await conn.execute(query.order_by(v.version.desc()).limit(limit + 1))).mappings()
    return [dict(r) for r in rows]
