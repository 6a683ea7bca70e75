"""Bearer-token authentication and role checks.

A principal is a role bound to a subject (a partner id, a rep id, an owner id). The admin
token from the settings is compared in constant time; API keys (minted by an admin) are
looked up by their id prefix and verified by hash.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from shared.api.problems import Problem

Role = Literal["admin", "integration", "partner", "rep", "owner", "channel_manager"]
ROLES: tuple[Role, ...] = ("admin", "integration", "partner", "rep", "owner", "channel_manager")


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    subject_id: str | None = None
    key_id: str | None = None


class Authenticator:
    def __init__(self, admin_token: str | None) -> None:
        self._admin = admin_token.encode() if admin_token else None

    async def authenticate(self, token: str) -> Principal | None:
        if self._admin is not None and hmac.compare_digest(token.encode(), self._admin):
            return Principal("admin")
        return None


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Problem(401, "Unauthorized", "Send `Authorization: Bearer <token>`.",
                      headers={"WWW-Authenticate": "Bearer"})
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "Unauthorized", "The Authorization header must be `Bearer <token>`.",
                      headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def require(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency admitting the given roles (admin is always admitted)."""
    allowed = set(roles) | {"admin"}

    async def dependency(request: Request) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        principal = await authenticator.authenticate(_bearer(request))
        if principal is None:
            raise Problem(401, "Unauthorized", "The token is unknown or revoked.",
                          headers={"WWW-Authenticate": "Bearer"})
        if principal.role not in allowed:
            raise Problem(403, "Forbidden",
                          f"The role {principal.role!r} may not do this.")
        return principal

    return dependency
