"""Console sign-in: an API key exchanged for a session cookie, and CSRF protection.

The cookie holds the signed-in key, its role and subject, a CSRF token and an expiry,
encrypted and authenticated with AES-GCM under a key derived from `DEALREG_SESSION_SECRET`
(unset: a random key per process, so sign-ins end with the process). The browser cannot read
it (`HttpOnly`), never sends it from another site (`SameSite=Strict`), and only over https
when the console is reached over https (`Secure`). The key is checked again by the app's
`Authenticator` on every request, so a revoked key ends its sessions within the key cache.

Every non-GET console request must carry the session's CSRF token, as the `csrf` form field
or the `X-CSRF-Token` header (htmx sends it through `hx-headers` on `<body>`). The sign-in
form, which has no session yet, uses a double-submit cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Annotated, cast
from urllib.parse import parse_qsl, quote, urlsplit

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import Depends, Request
from starlette.datastructures import ImmutableMultiDict
from starlette.responses import Response

from shared.api.auth import ROLES, Authenticator, Role
from shared.settings import Settings

COOKIE = "dealreg_session"
SIGNIN_COOKIE = "dealreg_signin"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
CARRY_FIELD = "carried"
"""The sign-in form's field carrying a form refused for want of a session (`kept_form`),
sealed to the user whose page it was (`SessionCodec.seal_form`)."""
_AAD = b"dealreg-console-session-v1"
_CARRY_AAD = b"dealreg-console-carried-form-v1"
MAX_FORM_BYTES = 256 * 1024
_TOO_LARGE = (f"The form is over {MAX_FORM_BYTES // 1024} KB, more than any console form "
              "needs; nothing was changed. Shorten what was typed and send it again.")


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in console user."""

    token: str
    role: Role
    subject_id: str | None
    csrf: str
    expires: int  # unix seconds

    @property
    def who(self) -> str:
        """How the user is named in the header."""
        return f"{self.role.replace('_', ' ')} {self.subject_id}" if self.subject_id \
            else self.role.replace("_", " ")


class SessionCodec:
    """Seals and opens session cookies (AES-GCM, random 96-bit nonce)."""

    def __init__(self, secret: str | None) -> None:
        material = secret.encode() if secret else os.urandom(32)
        self._aead = AESGCM(hashlib.sha256(b"dealreg console session\0" + material).digest())
        self._tag_key = hashlib.sha256(b"dealreg console csrf owner\0" + material).digest()

    def owner_tag(self, role: str, subject_id: str | None) -> str:
        """Whose pages a CSRF token was issued for (a keyed digest of the user: role and
        subject), its prefix: a form refused for a stale token is offered again only to
        that user (`same_user`), never to whoever signed in since on the same browser."""
        digest = hmac.new(self._tag_key, f"{role}\0{subject_id or ''}".encode(),
                          hashlib.sha256).hexdigest()
        return digest[:16]

    def seal_form(self, owner: str, fields: list[tuple[str, str]]) -> str:
        """A form refused for want of a session, sealed for the sign-in page to carry:
        only the user `owner` (`owner_tag`) opens it (`open_form`). Sealed, not hidden
        fields: on a shared machine whoever stands at the sign-in page (and whoever signs
        in there) must not read what the previous user typed (session 27, rival round 2)."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, orjson.dumps({"owner": owner, "fields": fields}),
                                    _CARRY_AAD)
        return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()

    def open_form(self, sealed: str | None, owner: str) -> list[tuple[str, str]] | None:
        """The fields of a form `seal_form` sealed for `owner`, else None (another user's,
        tampered, or sealed under another secret)."""
        if not sealed or len(sealed) > 2 * MAX_FORM_BYTES:
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
            data = orjson.loads(self._aead.decrypt(raw[:12], raw[12:], _CARRY_AAD))
        except (ValueError, TypeError, InvalidTag, orjson.JSONDecodeError):
            return None
        if not isinstance(data, dict) or not hmac.compare_digest(str(data.get("owner")), owner):
            return None
        fields = data.get("fields")
        if not isinstance(fields, list):
            return None
        return [(str(name), str(value)) for name, value in fields]

    def seal(self, session: Session) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, orjson.dumps(asdict(session)), _AAD)
        return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()

    def open(self, cookie: str | None, now: float) -> Session | None:
        if not cookie or len(cookie) > 4000:
            return None
        try:
            raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
            data = orjson.loads(self._aead.decrypt(raw[:12], raw[12:], _AAD))
            session = Session(**data)
        except (ValueError, TypeError, InvalidTag, orjson.JSONDecodeError):
            return None
        if session.expires <= now or session.role not in ROLES:
            return None
        return session


class SignInRequired(Exception):
    """No (valid) session: the user is sent to the sign-in page."""


class FormRefused(Exception):
    """A console form refused before anything reads it (nothing is applied)."""


class CsrfRefused(FormRefused):
    """A state-changing request without the right CSRF token (answered 403)."""


class FormTooLarge(FormRefused):
    """A form body over `MAX_FORM_BYTES` (answered 413: its size, not its token, is
    wrong; a reload would not help)."""


@dataclass(frozen=True, slots=True)
class Sessions:
    codec: SessionCodec
    settings: Settings
    signed_out: dict[str, int] = field(default_factory=dict)
    """Sessions ended by sign-out (their CSRF token, unique per sign-in -> expiry): a copy
    of the cookie kept from before sign-out opens nothing. Kept in this process until the
    session would have expired anyway."""
    max_signed_out: int = 100_000

    def start(self, response: Response, request: Request, token: str, role: Role,
              subject_id: str | None) -> Session:
        session = self.new(token, role, subject_id)
        self.attach(response, request, session)
        return session

    def new(self, token: str, role: Role, subject_id: str | None) -> Session:
        return Session(token, role, subject_id,
                       f"{self.codec.owner_tag(role, subject_id)}.{secrets.token_urlsafe(24)}",
                       int(time.time()) + self.settings.session_max_age_seconds)

    def attach(self, response: Response, request: Request, session: Session) -> None:
        """`response` signs the browser in to `session`."""
        response.set_cookie(COOKIE, self.codec.seal(session), path="/console",
                            max_age=self.settings.session_max_age_seconds, httponly=True,
                            samesite="strict", secure=self.secure(request))
        response.delete_cookie(SIGNIN_COOKIE, path="/console", httponly=True, samesite="strict",
                               secure=self.secure(request))

    def secure(self, request: Request) -> bool:
        """`Secure` cookies: as configured, else when the request came over https."""
        configured = self.settings.session_cookie_secure
        return request.url.scheme == "https" if configured is None else configured

    @staticmethod
    def end(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")

    def sign_out(self, response: Response, session: Session, now: float) -> None:
        """End `session` for good: the cookie is cleared and, should a copy of it come back,
        refused until it expires."""
        if len(self.signed_out) >= self.max_signed_out:
            for ident in [k for k, expires in self.signed_out.items() if expires <= now]:
                del self.signed_out[ident]
            while len(self.signed_out) >= self.max_signed_out:  # the earliest to expire go
                del self.signed_out[min(self.signed_out, key=self.signed_out.__getitem__)]
        self.signed_out[session.csrf] = session.expires
        self.end(response)

    def is_signed_out(self, session: Session) -> bool:
        return session.csrf in self.signed_out


def sessions(request: Request) -> Sessions:
    return cast(Sessions, request.app.state.console_sessions)


async def read_form(request: Request) -> ImmutableMultiDict[str, str]:
    """An `application/x-www-form-urlencoded` body (what console forms and htmx send),
    read once and kept on the request."""
    cached = getattr(request.state, "console_form", None)
    if cached is not None:
        return cast(ImmutableMultiDict[str, str], cached)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLarge(_TOO_LARGE)  # refused unread
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise FormTooLarge(_TOO_LARGE)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    pairs = (parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
             if media == "application/x-www-form-urlencoded" else [])
    form: ImmutableMultiDict[str, str] = ImmutableMultiDict(pairs)
    request.state.console_form = form
    return form


def same_origin(request: Request) -> bool:
    """Whether a request came from a console page rather than another site: the browser's
    `Sec-Fetch-Site`, else its `Origin` against the host it was sent to (neither: no)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin, host = request.headers.get("origin"), request.headers.get("host")
    return bool(origin and host) and urlsplit(origin).netloc == host


async def kept_form(request: Request) -> list[tuple[str, str]] | None:
    """The fields of a console form refused for its session (it ended, or the page came
    from an earlier sign-in), to offer it again rather than lose what was typed; its old
    CSRF token left out. None when there is nothing to keep or it must not be kept: not a
    form POST, an htmx request, too large, or sent from another site (which could
    otherwise pre-fill a form for the user to send)."""
    if request.method != "POST" or request.headers.get("hx-request") \
            or request.url.path == "/console/sign-in" or not same_origin(request):
        return None
    try:
        form = await read_form(request)
    except FormRefused:
        return None
    fields = [(name, value) for name, value in form.multi_items() if name != CSRF_FIELD]
    return fields or None


async def form_owner(request: Request) -> str | None:
    """Whose page a refused form came from: its CSRF token's owner tag
    (`SessionCodec.owner_tag`), else None (no token, or one without a tag)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        try:
            sent = (await read_form(request)).get(CSRF_FIELD)
        except FormRefused:
            return None
    if not isinstance(sent, str) or "." not in sent:
        return None
    return sent.partition(".")[0] or None


async def same_user(request: Request, session: Session) -> bool:
    """Whether a form refused for its stale CSRF token came from a page of `session`'s
    user (`SessionCodec.owner_tag`): on a shared machine a tab of the previous user sends
    its form after someone else signed in, and offering it again showed that user what the
    previous one typed, and sent it as theirs with one button."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        try:
            sent = (await read_form(request)).get(CSRF_FIELD)
        except FormRefused:
            return False
    tag = sessions(request).codec.owner_tag(session.role, session.subject_id)
    return isinstance(sent, str) and hmac.compare_digest(sent.partition(".")[0], tag) \
        and "." in sent


async def optional_session(request: Request) -> Session | None:
    """The signed-in user, or None (no cookie, expired, tampered, or the key was revoked)."""
    cached = getattr(request.state, "console_session", False)
    if cached is not False:
        return cast(Session | None, cached)
    known = sessions(request)
    session = known.codec.open(request.cookies.get(COOKIE), time.time())
    if session is not None and known.is_signed_out(session):
        session = None
    if session is not None:
        authenticator: Authenticator = request.app.state.authenticator
        principal = await authenticator.authenticate(session.token)
        if principal is None or principal.role != session.role:
            session = None
    request.state.console_session = session
    return session


async def _check_csrf(request: Request, expected: str) -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        sent = (await read_form(request)).get(CSRF_FIELD)
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRefused("The form's security token is missing or stale. Reload the page "
                          "and try again.")


async def signed_in(
    request: Request, session: Annotated[Session | None, Depends(optional_session)],
) -> Session:
    """The signed-in user (else the sign-in page); on a non-GET request, CSRF is checked."""
    if session is None:
        raise SignInRequired()
    await _check_csrf(request, session.csrf)
    return session


def signin_csrf(request: Request) -> str:
    """The sign-in form's token (double-submit cookie): the existing one, or a new one."""
    current = request.cookies.get(SIGNIN_COOKIE)
    return current if current and len(current) <= 64 else secrets.token_urlsafe(24)


async def check_signin_csrf(request: Request) -> None:
    expected = request.cookies.get(SIGNIN_COOKIE)
    if not expected:
        raise CsrfRefused("The form's security token is missing (sign-in needs cookies). "
                          "Reload the page and try again.")
    await _check_csrf(request, expected)


def set_signin_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(SIGNIN_COOKIE, token, path="/console", max_age=3600, httponly=True,
                        samesite="strict", secure=sessions(request).secure(request))


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a console path only (no open redirect)."""
    if target and target.startswith("/console/") and not target.startswith("/console//") \
            and "\\" not in target:
        return target
    return "/console/"


def next_param(request: Request) -> str:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return quote(safe_next(path), safe="")

