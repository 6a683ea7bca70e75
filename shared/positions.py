"""Sealed log positions: the read-your-writes token a partner gets instead of
`topic/partition/offset` (issue 13: offsets count a competitor's activity on a partition).

`seal` encrypts the position text (fixed length, random nonce: two tokens for one position
differ, and a token's length says nothing about the offset) and authenticates it; only the
server, holding the key, can `unseal` it. The key is `DEALREG_POSITION_SECRET`, else
derived from `DEALREG_ADMIN_TOKEN`, else from the deployment's connection settings: every
process of one deployment derives the same key. Pure (no I/O); `os.urandom` is the nonce.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from typing import Final, Protocol

PREFIX: Final = "lp1."
_NONCE: Final = 12
_TAG: Final = 16
_PLAIN: Final = 96  # `topic/partition/offset` padded: topics are short, offsets 19 digits


class _KeySettings(Protocol):
    position_secret: str | None
    admin_token: str | None
    database_url: str
    kafka_bootstrap_servers: str
    topic_prefix: str


def position_key(settings: _KeySettings) -> bytes:
    seed = (settings.position_secret or settings.admin_token
            or "|".join((settings.database_url, settings.kafka_bootstrap_servers,
                         settings.topic_prefix)))
    return hashlib.blake2b(seed.encode(), key=b"dealreg-position-v1", digest_size=32).digest()


def _stream(key: bytes, nonce: bytes, size: int) -> bytes:
    out = b""
    block = 0
    while len(out) < size:
        out += hashlib.blake2b(nonce + block.to_bytes(4, "big"), key=key,
                               person=b"dealreg-pos-enc").digest()
        block += 1
    return out[:size]


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, b"dealreg-pos-tag" + body, hashlib.sha256).digest()[:_TAG]


def is_sealed(token: str) -> bool:
    return token.strip().startswith(PREFIX)


def seal(position: str, key: bytes) -> str:
    """A position (one or several, comma-separated) as an opaque token."""
    raw = position.encode()
    if len(raw) > _PLAIN:
        raise ValueError("position too long to seal")
    plain = raw.ljust(_PLAIN, b" ")
    nonce = os.urandom(_NONCE)
    cipher = bytes(a ^ b for a, b in zip(plain, _stream(key, nonce, _PLAIN), strict=True))
    body = nonce + cipher
    return PREFIX + base64.urlsafe_b64encode(body + _tag(key, body)).decode().rstrip("=")


def unseal(token: str, key: bytes) -> str:
    """The position a token we sealed carries; ValueError for anything else."""
    token = token.strip()
    if not token.startswith(PREFIX):
        raise ValueError("not a sealed position")
    data = token[len(PREFIX):]
    try:
        blob = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a sealed position") from exc
    if len(blob) != _NONCE + _PLAIN + _TAG:
        raise ValueError("not a sealed position")
    body, tag = blob[:-_TAG], blob[-_TAG:]
    if not hmac.compare_digest(tag, _tag(key, body)):
        raise ValueError("not a sealed position")
    nonce, cipher = body[:_NONCE], body[_NONCE:]
    plain = bytes(a ^ b for a, b in zip(cipher, _stream(key, nonce, _PLAIN), strict=True))
    return plain.decode().rstrip(" ")
