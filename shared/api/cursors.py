"""Opaque page cursors shared by every list endpoint (`?cursor&limit` -> `next_cursor`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from shared.api.problems import Problem

# A cursor is the last id of a page with a checksum, base64url: a cursor we did not issue
# (tampered, truncated, `AAAA`) is a 422, never a page that starts somewhere arbitrary.
# The checksum is not a secret (what a caller can read is decided by who it is, not by the
# cursor); it makes a garbage cursor detectable, the pattern keeps its content an id.
_CURSOR_KEY = b"dealreg-cursor-v1"
_CURSOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")
_CURSOR_CHECK_BYTES = 8


def _cursor_check(value: bytes) -> bytes:
    return hashlib.blake2s(value, key=_CURSOR_KEY, digest_size=_CURSOR_CHECK_BYTES).digest()


def encode_cursor(value: str) -> str:
    raw = value.encode()
    return base64.urlsafe_b64encode(raw + _cursor_check(raw)).decode().rstrip("=")


def _bad_cursor() -> Problem:
    return Problem(422, "Validation failed", "The cursor is not one we issued.",
                   errors=[{"field": "cursor", "message": "invalid cursor: pass the "
                            "`next_cursor` of the previous page unchanged"}])


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _bad_cursor() from exc
    value, check = raw[:-_CURSOR_CHECK_BYTES], raw[-_CURSOR_CHECK_BYTES:]
    if len(raw) <= _CURSOR_CHECK_BYTES or not hmac.compare_digest(check,
                                                                  _cursor_check(value)):
        raise _bad_cursor()
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError as exc:
        raise _bad_cursor() from exc
    if not _CURSOR_ID.match(text):
        raise _bad_cursor()
    return text
