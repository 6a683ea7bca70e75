"""Bearer-token authentication and role checks, shared by the command and query APIs.

A principal is a role bound to a subject (a partner id, a rep id, an owner id). Two kinds of
token are accepted:

- the admin token from the settings (`DEALREG_ADMIN_TOKEN`), compared in constant time;
- API keys minted by an admin: `drk.<key id>.<secret>` where the secret is 256 random bits
  (base64url). Only SHA-256(secret) is stored. A request costs one dictionary look-up by key
  id, one SHA-256 of 32 bytes and one constant-time compare (~1-2 microseconds); the key's
  row is read from the store only when it is not in the in-memory cache (short TTL, so a
  revocation reaches every process within `api_key_cache_seconds`).

Why not argon2/bcrypt: those are for low-entropy passwords, where slowing every guess is the
only defence. A 256-bit random secret cannot be guessed, so a fast preimage-resistant hash is
as safe and keeps authentication off the latency budget (argon2 costs tens of milliseconds by
design, on every request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Column, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.api.problems import Problem, problem_response
from shared.api.ratelimit import TokenBuckets, client_key
from shared.ids import new_id
from shared.logging import get_logger
from shared.readmodel.schema import UTCDateTime, metadata

Role = Literal["admin", "integration", "partner", "rep", "owner", "channel_manager"]
ROLES: tuple[Role, ...] = ("admin", "integration", "partner", "rep", "owner", "channel_manager")
SUBJECT_ROLES: frozenset[str] = frozenset({"partner", "rep", "owner"})
"""Roles whose keys are bound to one subject id (the partner, rep or owner they act as)."""

TOKEN_PREFIX = "drk"

log = get_logger(__name__)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("subject_id", String(200), nullable=True),
    Column("name", String(200), nullable=True),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    subject_id: str | None = None
    key_id: str | None = None

    @property
    def actor_id(self) -> str:
        """Who acted, for events and audit: the subject, else the key, else `admin`."""
        return self.subject_id or self.key_id or "admin"

    @property
    def scope(self) -> str:
        """The namespace of this caller's idempotency keys."""
        return f"key:{self.key_id}" if self.key_id else f"{self.role}:token"


@dataclass(frozen=True, slots=True)
class MintedKey:
    id: str
    token: str
    role: Role
    subject_id: str | None
    name: str | None
    created_at: datetime


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """`(key id, secret)` of an API-key token, or None if it is not shaped like one."""
    prefix, _, rest = token.partition(".")
    key_id, _, secret = rest.partition(".")
    if prefix != TOKEN_PREFIX or not key_id or len(secret) < 40 or len(key_id) > 40:
        return None
    return key_id, secret


@dataclass(slots=True)
class _Cached:
    principal: Principal | None  # None: unknown or revoked
    digest: str
    until: float


class Authenticator:
    """Resolves bearer tokens to principals; mints and revokes API keys."""

    _NEGATIVE_LIMIT = 10_000

    def __init__(
        self,
        admin_token: str | None,
        engine: AsyncEngine | None = None,
        *,
        cache_seconds: float = 30.0,
    ) -> None:
        self._admin = admin_token.encode() if admin_token else None
        self._engine = engine
        self._ttl = cache_seconds
        self._cache: dict[str, _Cached] = {}

    async def authenticate(self, token: str) -> Principal | None:
        if self._admin is not None and hmac.compare_digest(token.encode(), self._admin):
            return Principal("admin")
        parts = split_token(token)
        if parts is None or self._engine is None:
            return None
        key_id, secret = parts
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is None or cached.until < now:
            cached = await self._load(key_id, now)
        if cached.principal is None:
            return None
        return cached.principal if hmac.compare_digest(_digest(secret), cached.digest) else None

    async def _load(self, key_id: str, now: float) -> _Cached:
        assert self._engine is not None
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        if row is None or row.revoked_at is not None:
            # Cache misses too (bounded) so a flood of made-up key ids cannot hammer the store.
            if len(self._cache) >= self._NEGATIVE_LIMIT:
                self._cache.clear()
            entry = _Cached(None, "", now + self._ttl)
        else:
            entry = _Cached(Principal(row.role, row.subject_id, row.id), row.secret_sha256,
                            now + self._ttl)
        if self._ttl > 0:
            self._cache[key_id] = entry
        return entry

    async def mint(self, role: Role, subject_id: str | None, name: str | None) -> MintedKey:
        """Create an API key; the token is returned once and never stored."""
        if self._engine is None:
            raise RuntimeError("API keys need the read-model store")
        key_id = new_id("key")
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        created = datetime.now(UTC)
        async with self._engine.begin() as conn:
            await conn.execute(api_keys.insert().values(
                id=key_id, role=role, subject_id=subject_id, name=name,
                secret_sha256=_digest(secret), created_at=created, revoked_at=None,
            ))
        return MintedKey(key_id, f"{TOKEN_PREFIX}.{key_id}.{secret}", role, subject_id, name,
                         created)

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; True if it existed and was active. Other processes follow within
        their cache TTL."""
        if self._engine is None:
            return False
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        self._cache.pop(key_id, None)
        return bool(result.rowcount)


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, else a 401 problem."""
    if not header:
        raise Problem(401, "Unauthorized", "Send `Authorization: Bearer <token>`.",
                      headers={"WWW-Authenticate": "Bearer"})
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "Unauthorized", "The Authorization header must be `Bearer <token>`.",
                      headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def _unknown_token() -> Problem:
    return Problem(401, "Unauthorized", "The token is unknown or revoked.",
                   headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _too_many(wait: float, detail: str) -> Problem:
    return Problem(429, "Too many requests", detail,
                   headers={"Retry-After": str(max(1, math.ceil(wait)))})


class TooManyFailures(Exception):
    """A client address past its failed-authentication limit: nothing is tried for
    `wait` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"too many failed authentications; retry in {wait:.1f} s")
        self.wait = wait


async def limit_failures(
    failures: TokenBuckets | None, address: str, clock: Callable[[], float],
    attempt: Callable[[], Awaitable[Principal | None]],
) -> Principal | None:
    """Run one authentication `attempt` under the per-address limit on failures: the one
    rule for the API (`AuthenticateFirst`) and the console's sign-in form.

    A token is taken from `address`'s bucket *before* the attempt (which may await the key
    store) and given back when the attempt succeeds: checking first and counting on failure
    let a burst of concurrent guesses all pass the check while none had failed yet, and
    every one was tried. An empty bucket raises `TooManyFailures` and nothing is tried, not
    even a right key (a guesser must not learn that it guessed right). An attempt that fails
    for the store's sake (any error other than a `Problem`, which is the client's: a
    malformed header) gives the token back too, or an outage would lock every client out.
    None: the attempt found no principal (the failure stays counted)."""
    if failures is None:
        return await attempt()
    wait = failures.take(address, clock())
    if wait > 0:
        raise TooManyFailures(wait)
    try:
        principal = await attempt()
    except Problem:
        raise
    except Exception:  # the store is unreachable (503): not the client's failure
        failures.refund(address)
        raise
    if principal is not None:
        failures.refund(address)
    return principal


class AuthenticateFirst:
    """Pure ASGI middleware: every request under `/v1` is authenticated, and rate limited,
    before anything else looks at it (body limits, parameter validation, look-ups,
    `Prefer: wait`). The principal is left in the request state for `require()`, which
    checks the role.

    - no or malformed header, unknown or revoked token: 401 problem with
      `WWW-Authenticate: Bearer`;
    - failed authentications are also counted per client address: past the
      `auth_failures` bucket that address gets 429 with `Retry-After` for every request
      until a token returns, and no key is even tried (so made-up key ids cannot hammer the
      store, and a right guess among the refused ones gets no answer telling it so; the
      console's sign-in does the same);
    - an API key past its bucket in `keys`: 429 with `Retry-After`. The admin token (one
      operator secret, not a party's key) is not limited.
    """

    def __init__(self, app: ASGIApp, authenticator: Authenticator,
                 keys: TokenBuckets | None = None,
                 auth_failures: TokenBuckets | None = None,
                 prefix: str = "/v1",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.authenticator = authenticator
        self.keys = keys
        self.auth_failures = auth_failures
        self.prefix = prefix
        self.clock = clock

    def _guarded(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._principal(scope)
        except Problem as problem:
            await problem_response(problem)(scope, receive, send)
            return
        except Exception as exc:  # the key store is unreachable
            log.exception("authentication_failed", error=repr(exc))
            await problem_response(Problem(
                503, "Service unavailable", "Authentication is unavailable; retry.",
                headers={"Retry-After": "1"}))(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _principal(self, scope: Scope) -> Principal:
        header: str | None = None
        for name, value in scope.get("headers") or ():
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        client = scope.get("client")
        address = client_key(client[0]) if client else "-"
        try:
            principal = await limit_failures(
                self.auth_failures, address, self.clock,
                lambda: self.authenticator.authenticate(bearer_token(header)))
        except TooManyFailures as exc:
            raise _too_many(exc.wait, "Too many failed authentications from this address; "
                                      "no key is tried until Retry-After.") from None
        if principal is None:
            raise _unknown_token()
        if self.keys is not None and principal.key_id is not None:
            wait = self.keys.take(principal.key_id, self.clock())
            if wait > 0:
                raise _too_many(wait, "This API key is over its rate limit "
                                      f"({self.keys.rate:g}/s, burst {self.keys.burst:g}).")
        return principal


# Declares the scheme in the OpenAPI document; the header is checked by `bearer_token` above, so
# a missing or malformed one is a 401 problem rather than FastAPI's plain 403.
# Behind `AuthenticateFirst` the principal is already resolved.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="An API key (`drk.<id>.<secret>`) or the admin token")


def admitted(*roles: Role) -> frozenset[Role]:
    """The roles an operation open to `roles` admits: admin is always admitted. The one rule
    `require` and the registration route's short path (which skips the dependency) read."""
    return frozenset(roles) | {"admin"}


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency admitting the given roles (admin is always admitted)."""
    allowed = admitted(*roles)

    async def dependency(
        request: Request,
        _: HTTPAuthorizationCredentials | None = Security(BEARER),
    ) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:  # an app without the middleware (benchmarks)
            authenticator: Authenticator = request.app.state.authenticator
            principal = await authenticator.authenticate(
                bearer_token(request.headers.get("authorization")))
            if principal is None:
                raise _unknown_token()
        if principal.role not in allowed:
            raise Problem(403, "Forbidden",
                          f"The role {principal.role!r} may not do this.")
        request.state.principal = principal
        return principal

    return dependency
