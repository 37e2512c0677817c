"""Redis adapters: orders and reservations (written upstream), payments and the outbox.

Key names: keys.py; record formats: records.py; the event payload: event_payload.py.
Every write step is one Lua script, so it is atomic and one round trip, and touches the
keys of one vshard (one hash slot). Beginning and settling are durable steps: answered
once ``replicas`` have them (script_batch.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import redis.asyncio as aioredis

from raypay.adapters.event_payload import outbox_args, sequence_lua
from raypay.adapters.keys import Keys
from raypay.adapters.records import (
    from_record,
    order_from_record,
    outcome_record,
    reservation_from_record,
    to_record,
)
from raypay.adapters.redis_client import Replicas, translated
from raypay.adapters.script_batch import BatchedScript
from raypay.domain.errors import StoreUnavailable
from raypay.domain.events import PaymentEvent
from raypay.domain.model import Order, Payment, PaymentStatus, Reservation
from raypay.domain.ports import Begun
from raypay.domain.sharding import vshard_of

_BEGIN = """
local done = redis.call('GET', KEYS[1])
if done then return {'succeeded', done} end
local pending = redis.call('GET', KEYS[2])
if pending then return {'pending', pending} end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], unpack(ARGV, 3))
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
return {'created', ARGV[1]}
"""

# KEYS: payment, order:pending, order:succeeded, pending, outbox, order:seq.
# ARGV: paymentId, status, kind, key, value (no sequence yet), eventId, requestId, fields...
# Settling twice is a no-op: one recorded outcome, one event, one sequence number.
_SETTLE = f"""
local current = redis.call('HGET', KEYS[1], 'status')
if current ~= 'pending' then return current or 'missing' end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if ARGV[2] == 'succeeded' then redis.call('SET', KEYS[3], ARGV[1]) end
redis.call('ZREM', KEYS[4], ARGV[1])
{sequence_lua("ARGV[5]", "KEYS[6]")}
redis.call('XADD', KEYS[5], '*', 'eventId', ARGV[6], 'kind', ARGV[3], 'key', ARGV[4],
           'value', value_seq, 'requestId', ARGV[7])
return 'settled'
"""


class RedisOrders:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys

    async def get(self, order_id: str) -> Order | None:
        async with translated():
            fields = await self.redis.hgetall(self.keys.order(order_id))
        return order_from_record(order_id, fields) if fields else None


class RedisReservations:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys

    async def get(self, reservation_id: str, order_id: str) -> Reservation | None:
        async with translated():
            fields = await self.redis.hgetall(self.keys.reservation(reservation_id, order_id))
        return reservation_from_record(reservation_id, fields) if fields else None


def flat(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


class RedisPayments:
    """Payments, the per-order guards and the transactional outbox."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, replicas: Replicas | None = None):
        self.redis, self.keys = redis, keys
        # One EVALSHA per loop turn (and hash slot) for the payments that begin or settle.
        self._begin = BatchedScript(redis, _BEGIN, replicas=replicas)
        self._settle = BatchedScript(redis, _SETTLE, replicas=replicas)

    async def get(self, payment_id: str) -> Payment | None:
        async with translated():
            fields = await self.redis.hgetall(self.keys.payment(payment_id))
        return from_record(fields) if fields else None

    async def order_of(self, payment_id: str) -> str | None:
        """The orderId of a payment (which shard owns it), or None if there is none."""
        async with translated():
            return await self.redis.hget(self.keys.payment(payment_id), "orderId")

    async def succeeded_for(self, order_id: str) -> Payment | None:
        async with translated():
            payment_id = await self.redis.get(self.keys.succeeded(order_id))
        return await self.get(payment_id) if payment_id else None

    async def begin(self, payment: Payment) -> Begun:
        keys = self.keys
        created_ms = int(payment.created_at.timestamp() * 1000)
        async with translated():
            outcome, payment_id = await self._begin(
                keys=[
                    keys.succeeded(payment.order_id),
                    keys.pending(payment.order_id),
                    keys.payment(payment.payment_id),
                    keys.order_payments(payment.order_id),
                    keys.pending_index(vshard_of(payment.order_id)),
                ],
                args=[payment.payment_id, created_ms, *flat(to_record(payment))],
            )
        if outcome == "created":
            return Begun(payment, created=True)
        existing = await self.get(payment_id)
        if existing is None:
            raise StoreUnavailable(f"payment {payment_id} is indexed but missing")
        return Begun(existing, created=False)

    async def settle(self, payment: Payment, event: PaymentEvent) -> Payment:
        keys = self.keys
        async with translated():
            outcome = await self._settle(
                keys=[
                    keys.payment(payment.payment_id),
                    keys.pending(payment.order_id),
                    keys.succeeded(payment.order_id),
                    keys.pending_index(vshard_of(payment.order_id)),
                    keys.outbox(vshard_of(payment.order_id)),
                    keys.order_sequence(payment.order_id),
                ],
                args=[
                    payment.payment_id,
                    payment.status.value,
                    *outbox_args(event),
                    *flat(outcome_record(payment)),
                ],
            )
        if outcome == "settled":
            return payment
        stored = await self.get(payment.payment_id)
        if stored is None:
            raise StoreUnavailable(f"payment {payment.payment_id} vanished while settling")
        return stored

    async def list_for_order(self, order_id: str) -> list[Payment]:
        async with translated():
            ids = await self.redis.lrange(self.keys.order_payments(order_id), 0, -1)
            if not ids:
                return []
            async with self.redis.pipeline(transaction=False) as pipe:
                for payment_id in ids:
                    pipe.hgetall(self.keys.payment(payment_id))
                rows = await pipe.execute()
        return [from_record(fields) for fields in rows if fields]

    async def pending_older_than(
        self, cutoff: datetime, vshards: Iterable[int], limit: int = 100
    ) -> list[Payment]:
        """Pending payments of these vshards created before ``cutoff``, oldest first in
        each vshard, ``limit`` in all (for the sweep of the shard owning them)."""
        keys = [self.keys.pending_index(v) for v in vshards]
        ids = await oldest(self.redis, keys, int(cutoff.timestamp() * 1000), limit)
        found = [await self.get(payment_id) for payment_id in ids]
        return [p for p in found if p is not None and p.status is PaymentStatus.PENDING]


async def oldest(redis: aioredis.Redis, keys: list[str], cutoff_ms: int, limit: int) -> list[str]:
    """Members scored up to ``cutoff_ms`` of these sorted sets, lowest score first, at
    most ``limit`` (one round trip; on a cluster one per master, at once)."""
    async with translated():
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrangebyscore(key, "-inf", cutoff_ms, 0, limit, withscores=True)
            found = await pipe.execute()
    scored = sorted((score, member) for members in found for member, score in members)
    return [member for _, member in scored[:limit]]
