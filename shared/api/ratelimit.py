"""Token buckets, one per key (an API key id, or a client address for failed
authentications). Pure: the caller passes the clock, so the tests need no sleeping.

A bucket holds at most `burst` tokens and gains `rate` per second; a request takes one. An
empty bucket answers how long until the next token, which the API sends as `Retry-After`.
A full table drops refilled buckets, then the fuller half (over-limit keys are kept).
Buckets live in the memory of one process: with N processes behind a load balancer a key
gets up to N times the rate (documented in the README).
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass


@functools.lru_cache(maxsize=4096)
def client_key(address: str) -> str:
    """The key of a client address in a per-address limit: an IPv6 address's /64 (one host
    holds a whole /64 and may rotate through it), an IPv4-mapped IPv6 address's IPv4
    address, anything else (an IPv4 address, a name) as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """`take(key, now)` → 0.0 when admitted, else the seconds until a token is available."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def refund(self, key: str) -> None:
        """Give back the token a `take` took (the attempt did not count: a reservation
        taken before an awaited check, returned when it passed)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(self.burst, bucket.tokens + 1.0)

    def wait(self, key: str, now: float) -> float:
        """What `take` would answer, without taking: 0.0 when a token is available."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.at) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (a new bucket would be identical); if that frees
        nothing, drop the fuller half: the keys that are over their limit are kept, so
        many new keys (a botnet's addresses) evict each other, not a lockout. Clearing
        everything would let them flush it."""
        def tokens(bucket: _Bucket) -> float:
            return bucket.tokens + max(0.0, now - bucket.at) * self.rate

        full = [k for k, b in self._buckets.items() if tokens(b) >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self._max_keys:
            by_fullness = sorted(self._buckets, key=lambda k: tokens(self._buckets[k]),
                                 reverse=True)
            for key in by_fullness[:max(1, len(by_fullness) // 2)]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
