"""API keys in Redis: the Keyring replicas ask (async, cached), and the sync helpers
``raypay keys``, ``raypay up`` and the tests use to create, revoke and list keys.

A key is stored only as its SHA-256 (``Keys.api_key``): HASH role, label, createdAt
[, rate, burst]. The rules about keys and roles are in raypay/domain/auth.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from raypay.adapters.keys import Keys
from raypay.adapters.redis_client import translated
from raypay.domain.auth import (
    KEY_PREFIX,
    KeyCache,
    Principal,
    Role,
    hash_key,
    key_id,
    new_key,
    parse_api_keys,
    principal_from,
)
from raypay.settings import Settings


class Keyring:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.configured = parse_api_keys(settings.api_keys)
        self.redis, self.keys = redis, Keys(settings.key_prefix)
        self.cache = KeyCache(settings.api_key_cache_s, time.monotonic)
        self._lookups: dict[str, asyncio.Future[Principal | None]] = {}

    async def principal(self, key: str) -> Principal | None:
        """The Principal of ``key``, or None if no valid key is like it."""
        digest = hash_key(key)
        if (configured := self.configured.get(digest)) is not None:
            return configured
        known, principal = self.cache.get(digest)
        if known:
            return principal
        if (pending := self._lookups.get(digest)) is not None:  # one Redis call per key
            return await asyncio.shield(pending)
        lookup = asyncio.ensure_future(self._fetch(digest))
        self._lookups[digest] = lookup
        try:
            return await asyncio.shield(lookup)
        finally:
            self._lookups.pop(digest, None)

    async def _fetch(self, digest: str) -> Principal | None:
        async with translated():
            fields = await self.redis.hgetall(self.keys.api_key(digest))
        principal = principal_from(digest, fields) if fields else None
        self.cache.put(digest, principal)
        return principal


def create_key(
    redis: Any,
    prefix: str,
    role: Role | str,
    *,
    label: str = "",
    rate: float | None = None,
    burst: int | None = None,
    now: datetime | None = None,
) -> tuple[str, str]:
    """Store a new key's hash and role; returns (key, sha256). The key is not kept anywhere."""
    key = new_key()
    digest = hash_key(key)
    fields = {
        "role": str(Role(role)),
        "label": label,
        "createdAt": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
    }
    if rate is not None:
        fields |= {"rate": str(rate), "burst": str(burst or max(1, int(rate)))}
    redis.hset(Keys(prefix).api_key(digest), mapping=fields)
    return key, digest


def key_exists(redis: Any, prefix: str, key: str) -> bool:
    return bool(redis.exists(Keys(prefix).api_key(hash_key(key))))


def find_keys(redis: Any, prefix: str, ref: str = "") -> list[str]:
    """Hashes of stored keys matching ``ref``: a key, its full hash, or a hash prefix (id)."""
    ref = ref.strip()
    if ref.startswith(KEY_PREFIX):
        ref = hash_key(ref)
    ref = ref.lower()
    if ref and not re.fullmatch(r"[0-9a-f]{1,64}", ref):
        return []
    start = len(Keys(prefix).api_key(""))
    found = redis.scan_iter(match=Keys(prefix).api_key(ref) + "*", count=1000)
    return sorted(_text(name)[start:] for name in found)


def revoke_key(redis: Any, prefix: str, ref: str, *, min_prefix: int = 8) -> str:
    """Delete the one stored key ``ref`` names; returns its hash. ValueError if not exactly one."""
    if not ref.strip().startswith(KEY_PREFIX) and len(ref.strip()) < min_prefix:
        raise ValueError(f"give at least {min_prefix} hex digits of the key's hash")
    matches = find_keys(redis, prefix, ref)
    if len(matches) != 1:
        raise ValueError("no such key" if not matches else f"{len(matches)} keys match: be longer")
    redis.delete(Keys(prefix).api_key(matches[0]))
    return matches[0]


def list_keys(redis: Any, prefix: str) -> list[dict[str, str]]:
    """Every stored key: id, role, label, createdAt (never a key or a full hash)."""
    rows = []
    for digest in find_keys(redis, prefix):
        stored = redis.hgetall(Keys(prefix).api_key(digest))
        fields = {_text(k): _text(v) for k, v in stored.items()}
        rows.append({"id": key_id(digest), **fields})
    return rows


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
