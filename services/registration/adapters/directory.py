"""Account resolution against the account directory read model.

Exact look-ups on CRM id and domain reuse the key the account already has; otherwise a new
key is derived. Two first registrations of one account racing each other can still get
different keys; adjudication catches that (see the README's design notes).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.accounts import AccountIdentity, derive_account_key
from shared.readmodel.queries import account_key_for_crm_id, account_key_for_domain


async def resolve_account_key(engine: AsyncEngine, identity: AccountIdentity) -> str:
    async with engine.connect() as conn:
        if identity.crm_account_id:
            key = await account_key_for_crm_id(conn, identity.crm_account_id)
            if key:
                return key
        if identity.domain:
            key = await account_key_for_domain(conn, identity.domain)
            if key:
                return key
    return derive_account_key(identity)
