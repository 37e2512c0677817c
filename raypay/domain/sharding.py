"""orderId -> shard: a stable hash, the same in every process (not Python's salted hash())."""

from __future__ import annotations

import hashlib


def shard_for(key: str, shards: int) -> int:
    """The shard in ``range(shards)`` that owns ``key``."""
    if shards < 1:
        raise ValueError("shards must be >= 1")
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards
