"""One Lua script call per batch instead of one per payment.

A shard runs many payments at once, and each of them calls the same scripts (begin,
settle, the simulator's ledger). ``BatchedScript`` gathers the calls made in the same
turn of the event loop and sends them as one EVALSHA of a wrapper that runs the
script once per call, in order, each in its own ``pcall``: every call is still atomic
on its own (a Redis script runs whole, alone) and learns its own result or error, and
one call's error never stops the others. Redis pays the script call's fixed cost once
per batch, redis-py packs and parses one command instead of N.

The keys of one batch may lie in different hash slots: fine on one Redis. On Redis
Cluster a batch must be grouped by slot first (the scale-out issue's virtual shards).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from raypay.adapters.batching import MicroBatcher, Pending, resolve

# ARGV: calls, then per call its key count, its arg count and its args; KEYS in order.
_MANY = """
local function one(KEYS, ARGV)
%s
end
local out, k, pos = {}, 1, 2
for i = 1, tonumber(ARGV[1]) do
  local nk, na = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])
  pos = pos + 2
  local keys, args = {}, {}
  for j = 1, nk do keys[j] = KEYS[k]; k = k + 1 end
  for j = 1, na do args[j] = ARGV[pos]; pos = pos + 1 end
  local ok, result = pcall(one, keys, args)
  if ok or type(result) == 'table' then out[i] = result  -- redis.call's errors: {err=...}
  else out[i] = {err = tostring(result)} end
end
return out
"""


class BatchedScript:
    """``await script(keys=..., args=...)`` as with redis-py's ``register_script``, but
    the calls of one loop turn travel together (``max_size`` at most)."""

    def __init__(self, redis: aioredis.Redis, body: str, max_size: int = 256) -> None:
        self._many = redis.register_script(_MANY % body)
        self._batcher: MicroBatcher[tuple[list[Any], list[Any]], Any] = MicroBatcher(
            self._flush, window_s=0, max_size=max_size
        )

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        return await self._batcher.submit((keys, args))

    async def _flush(self, batch: Pending) -> None:
        every_key: list[Any] = []
        argv: list[Any] = [len(batch)]
        for (keys, args), _ in batch:
            every_key += keys
            argv += [len(keys), len(args), *args]
        results = await self._many(keys=every_key, args=argv)
        for (_, future), result in zip(batch, results, strict=True):
            resolve(future, result)  # a call's error reply comes as a value: raised there
