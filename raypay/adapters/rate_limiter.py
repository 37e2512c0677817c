"""Rate limits: a token bucket in Redis per API key and per customer, both checked and
taken in one Lua call: one round trip per request, shared by all replicas. The customer's
bucket shares the API key's hash tag (keys.py), so the call touches one slot: a
customer is limited per API key they come through."""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from raypay.adapters.keys import Keys
from raypay.adapters.redis_client import translated
from raypay.adapters.script_batch import BatchedScript
from raypay.domain.auth import Principal
from raypay.domain.errors import RateLimited
from raypay.settings import Settings

# KEYS: buckets; ARGV: rate (tokens/s) and burst per bucket. Takes one token from every
# bucket, or from none when one is empty: then {0, ms until it has one, its index}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local levels, wait, which = {}, 0, 0
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local level, at = tonumber(state[1]), tonumber(state[2])
  if level == nil or at == nil then level, at = burst, now end
  level = math.min(burst, level + math.max(0, now - at) * rate / 1000)
  levels[i] = level
  if level < 1 then
    local ms = math.ceil((1 - level) * 1000 / rate)
    if ms > wait then wait, which = ms, i end
  end
end
if wait > 0 then return {0, wait, which} end
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst * 1000 / rate) + 1000)
end
return {1, 0, 0}
"""


class RateLimiter:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings, self.keys = settings, Keys(settings.key_prefix)
        # The requests of one loop turn share an EVALSHA per hash slot: all of one API
        # key's are in one slot (keys.py), so a busy key's take one call a turn.
        self._take = BatchedScript(redis, _TAKE)

    async def admit(self, principal: Principal, customer_id: str | None = None) -> None:
        """Take a token for the key (and the customer); RateLimited (429) when one is empty."""
        s = self.settings
        buckets: list[tuple[str, str, float, int]] = []
        key_rate = principal.rate if principal.rate is not None else s.rate_limit_per_key
        key_burst = principal.burst or s.rate_limit_per_key_burst
        if key_rate > 0:
            bucket = self.keys.key_bucket(principal.key_id)
            buckets.append(("API key", bucket, key_rate, key_burst))
        if customer_id is not None and s.rate_limit_per_customer > 0:
            buckets.append(
                (
                    "customer",
                    self.keys.customer_bucket(principal.key_id, customer_id),
                    s.rate_limit_per_customer,
                    s.rate_limit_per_customer_burst,
                )
            )
        if not buckets:
            return
        args = [value for _, _, rate, burst in buckets for value in (rate, burst)]
        async with translated():
            allowed, wait_ms, which = await self._take(keys=[b[1] for b in buckets], args=args)
        if not allowed:
            what = buckets[int(which) - 1][0]
            raise RateLimited(
                f"too many requests for this {what}", retry_after_s=math.ceil(int(wait_ms) / 1000)
            )
