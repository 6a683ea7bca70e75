"""Kafka's default partitioner (murmur2 of the key bytes), used by both backends.

Using the same function everywhere means an account key maps to the same partition number
on the embedded log, on Kafka, and across topics with equal partition counts.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=1 << 16)
def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-null key.

    Cached: murmur2 in Python costs microseconds, and hot accounts repeat."""
    return (int(murmur2(key.encode())) & 0x7FFFFFFF) % partitions
