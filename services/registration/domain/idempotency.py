"""`Idempotency-Key` semantics, decided without I/O.

A key belongs to one caller (its API key, or the admin token) and remembers the first
request's fingerprint and response. The same key with the same request replays that
response; with a different request it is a client error (422); while the first request is
still running, a repeat is told to retry (409). Responses of 5xx are not remembered (the
reservation is dropped), so a retry after a transient failure runs the command again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final

import orjson

KEY_PATTERN: Final = re.compile(r"^[\x21-\x7e]{1,255}$")


class Verdict(Enum):
    PROCEED = "proceed"
    REPLAY = "replay"
    MISMATCH = "mismatch"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class Stored:
    fingerprint: str
    done: bool
    created_at: datetime
    expires_at: datetime


def valid_key(key: str) -> bool:
    """1-255 printable ASCII characters without spaces (the IETF draft suggests a UUID)."""
    return bool(KEY_PATTERN.match(key))


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the request; JSON bodies are canonicalised (key order, whitespace) so a
    client that re-serialises its retry still matches."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    digest = hashlib.sha256()
    digest.update(method.upper().encode())
    digest.update(b" ")
    digest.update(path.encode())
    digest.update(b"\n")
    digest.update(canonical)
    return digest.hexdigest()


def judge(stored: Stored | None, fingerprint_: str, now: datetime,
          lease_seconds: float) -> Verdict:
    """What to do with a request whose key already has `stored` (None: first use).

    An expired entry counts as absent; so does a pending entry older than the lease (its
    process died before answering) -- the caller then takes the reservation over."""
    if stored is None or stored.expires_at <= now:
        return Verdict.PROCEED
    if stored.fingerprint != fingerprint_:
        return Verdict.MISMATCH
    if stored.done:
        return Verdict.REPLAY
    if (now - stored.created_at).total_seconds() > lease_seconds:
        return Verdict.PROCEED
    return Verdict.IN_PROGRESS
