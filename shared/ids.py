"""Identifiers: time-ordered (so cursors and logs sort by creation) and unguessable."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str) -> str:
    """`prefix_` + 26 base32 chars: 48 bits of milliseconds, then 80 random bits (ULID)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def opaque_id(prefix: str) -> str:
    """`prefix_` + 26 hex chars, all random: an id that reveals nothing, not even when it
    was made (the shape of the adjudicator's hashed dispute ids)."""
    return f"{prefix}_{os.urandom(13).hex()}"
