"""`Idempotency-Key` semantics, decided without I/O.

A key belongs to one caller (its API key, or the admin token) and remembers the first
request's fingerprint and response. The same key with the same request replays that
response; with a different request it is a client error (422); while the first request is
still running, a repeat is told to retry (409). Responses of 5xx are not remembered (the
reservation is dropped, unless the command may have reached the log), so a retry after a
transient failure runs the command again.

A command run under a key has an identity, `command_seed`: a digest of the caller, the key,
the request's fingerprint and the key's first use. Its event id (and a new registration's,
claim's or dispute's id) derive from it, so a retry that takes over a reservation its dead
process stranded (appended, never answered) makes the very same event, and can look for it
in the log before appending anything (README, "Idempotency").
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
    leased_at: datetime | None = None
    """When the running request last renewed its lease (None: `created_at`)."""


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
    if (now - (stored.leased_at or stored.created_at)).total_seconds() > lease_seconds:
        return Verdict.PROCEED
    return Verdict.IN_PROGRESS


def stranded(stored: Stored | None, now: datetime) -> bool:
    """Whether a PROCEED verdict takes over a reservation whose request may have appended
    its command already (a pending, unexpired entry whose lease lapsed): the taker must
    look for the command's event before running it again."""
    return stored is not None and not stored.done and stored.expires_at > now


def command_seed(scope: str, key: str, fingerprint_: str, first_used: datetime) -> str:
    """The identity of the command run under a key: the same for every retry of it while
    the key is remembered, different for the same key and body used again after it
    expired (a new command)."""
    digest = hashlib.sha256()
    for part in (scope, key, fingerprint_, first_used.isoformat()):
        digest.update(part.encode())
        digest.update(b"\n")
    return digest.hexdigest()
