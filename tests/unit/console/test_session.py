"""Console sessions: sealed cookies, expiry, CSRF-free redirects, and the one API path."""

from __future__ import annotations

import ast
import base64
from dataclasses import replace
from pathlib import Path

from services.console.session import Session, SessionCodec, safe_next

ROOT = Path(__file__).resolve().parents[3]


def _session(expires: int = 2_000) -> Session:
    return Session("drk.key_1.secret", "partner", "p-1", "csrf-token", expires)


def test_a_sealed_session_opens_under_the_same_secret_until_it_expires() -> None:
    codec = SessionCodec("s3cret")
    cookie = codec.seal(_session())
    assert SessionCodec("s3cret").open(cookie, now=1_999) == _session()
    assert codec.open(cookie, now=2_000) is None


def test_the_cookie_hides_the_key_and_refuses_tampering_and_other_secrets() -> None:
    codec = SessionCodec("s3cret")
    # Markers long enough that random ciphertext never spells them (a 3-letter "p-1" once
    # showed up in a cookie's base64 by chance); checked in the cookie and in its bytes.
    secret = replace(_session(), token="drk.key_1.secret-marker", subject_id="p-marker-0001")
    sealed = codec.seal(secret)
    raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    for marker in ("drk.key_1", "p-marker-0001"):
        assert marker not in sealed and marker.encode() not in raw
    assert codec.open(sealed, now=0) == secret
    cookie = codec.seal(_session())
    flipped = cookie[:20] + ("A" if cookie[20] != "A" else "B") + cookie[21:]
    assert codec.open(flipped, now=0) is None
    assert SessionCodec("other").open(cookie, now=0) is None
    assert SessionCodec(None).open(cookie, now=0) is None  # a random key per process
    assert codec.open("garbage", now=0) is None
    assert codec.open(None, now=0) is None


def test_a_session_with_an_unknown_role_is_refused() -> None:
    codec = SessionCodec("s3cret")
    forged = replace(_session(), role="root")  # type: ignore[arg-type]
    assert codec.open(codec.seal(forged), now=0) is None


def test_after_sign_in_the_user_goes_only_to_a_console_page() -> None:
    assert safe_next("/console/partner/registrations/r-1") == "/console/partner/registrations/r-1"
    for outside in ("https://evil.example/", "//evil.example/console/", "/console//evil",
                    "/v1/registrations", None, "", "/console/\\evil"):
        assert safe_next(outside) == "/console/"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_console_reads_and_acts_only_through_the_public_api() -> None:
    # One authorization and redaction path: no read-model queries, no commands, no other
    # service's code in the console (it calls /v1 through ConsoleApi).
    forbidden = ("services.registration", "services.projections", "services.adjudication",
                 "shared.readmodel", "shared.eventlog", "shared.api.partner_view", "sqlalchemy")
    offenders = [f"{p.relative_to(ROOT)} imports {name}"
                 for p in sorted((ROOT / "services" / "console").rglob("*.py"))
                 for name in _imports(p)
                 if any(name == f or name.startswith(f + ".") for f in forbidden)]
    assert offenders == []
