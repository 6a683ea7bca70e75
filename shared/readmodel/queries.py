"""Read queries more than one service needs (the registration service reads the directory
and waits for decisions; the query API serves them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.readmodel.schema import account_crm_ids, account_domains, registrations


async def get_registration(conn: AsyncConnection, registration_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(registrations).where(registrations.c.id == registration_id))
    ).first()
    return dict(row._mapping) if row is not None else None


async def account_key_for_domain(conn: AsyncConnection, domain: str) -> str | None:
    return (
        await conn.execute(
            select(account_domains.c.account_key).where(account_domains.c.domain == domain)
        )
    ).scalar_one_or_none()


async def account_key_for_crm_id(conn: AsyncConnection, crm_account_id: str) -> str | None:
    return (
        await conn.execute(
            select(account_crm_ids.c.account_key).where(
                account_crm_ids.c.crm_account_id == crm_account_id
            )
        )
    ).scalar_one_or_none()
