"""The Redis BatchStore: refund batches, their orders and each order's outcome.

Everything a runner needs to resume is here: the batch's orders (a list), the outcomes
recorded so far (a hash, each field written once), a cursor below which every order is
recorded, and the set of batches still running. Key names: keys.py (one hash tag for all
batches, so each script touches one slot); creating a batch is a durable step.
"""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis

from raypay.adapters.keys import Keys
from raypay.adapters.records import (
    batch_from_record,
    batch_record,
    item_from_record,
    item_record,
)
from raypay.adapters.redis_client import Replicas, translated
from raypay.adapters.redis_store import flat
from raypay.adapters.script_batch import BatchedScript
from raypay.domain.batches import BatchItem, RefundBatch
from raypay.domain.model import iso

# KEYS: batch, batch:orders, open. ARGV: batchId, the number of fields n, n fields, orderIds.
# Lua's unpack takes a few thousand values at most: the orders go in slices.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 3, 2 + n))
for i = 3 + n, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""

# KEYS: batch, batch:items, open. ARGV: orderId, item (JSON), its status, now, batchId.
_RECORD = """
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
local total = redis.call('HGET', KEYS[1], 'total')
if redis.call('HLEN', KEYS[2]) >= tonumber(total) then
  redis.call('HSET', KEYS[1], 'status', 'done', 'finishedAt', ARGV[4], 'cursor', total)
  redis.call('SREM', KEYS[3], ARGV[5])
end
return 1
"""


class RedisBatches:
    def __init__(self, redis: aioredis.Redis, keys: Keys, replicas: Replicas | None = None):
        self.redis, self.keys = redis, keys
        self._create = BatchedScript(redis, _CREATE, replicas=replicas)
        self._record = redis.register_script(_RECORD)

    async def create(self, batch: RefundBatch, order_ids: list[str]) -> RefundBatch:
        fields = flat(batch_record(batch))
        async with translated():
            await self._create(
                keys=[
                    self.keys.batch(batch.batch_id),
                    self.keys.batch_orders(batch.batch_id),
                    self.keys.open_batches,
                ],
                args=[batch.batch_id, len(fields), *fields, *order_ids],
            )
        stored = await self.get(batch.batch_id)
        assert stored is not None
        return stored

    async def get(self, batch_id: str) -> RefundBatch | None:
        async with translated():
            fields = await self.redis.hgetall(self.keys.batch(batch_id))
        return batch_from_record(fields) if fields else None

    async def open_batches(self) -> list[str]:
        async with translated():
            return sorted(await self.redis.smembers(self.keys.open_batches))

    async def orders(self, batch_id: str, start: int, count: int) -> list[str]:
        async with translated():
            return await self.redis.lrange(
                self.keys.batch_orders(batch_id), start, start + count - 1
            )

    async def items(self, batch_id: str, order_ids: list[str]) -> list[BatchItem]:
        if not order_ids:
            return []
        async with translated():
            raw = await self.redis.hmget(self.keys.batch_items(batch_id), order_ids)
        return [item_from_record(o, r) for o, r in zip(order_ids, raw, strict=True)]

    async def record(self, batch_id: str, item: BatchItem, now: datetime) -> None:
        async with translated():
            await self._record(
                keys=[
                    self.keys.batch(batch_id),
                    self.keys.batch_items(batch_id),
                    self.keys.open_batches,
                ],
                args=[item.order_id, item_record(item), item.status.value, iso(now), batch_id],
            )

    async def advance(self, batch_id: str, cursor: int) -> None:
        async with translated():
            await self.redis.hset(self.keys.batch(batch_id), "cursor", cursor)
