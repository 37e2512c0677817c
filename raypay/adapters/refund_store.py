"""The Redis RefundStore: refunds, the amounts they set aside on their payment, the outbox.

A payment's hash carries ``amountRefundedMinor`` (its succeeded refunds) and
``amountRefundingMinor`` (its pending refunds' amounts, set aside). Both move only in the
two scripts below, each one atomic step, so however refunds of one payment interleave,
refunded + set aside never exceeds ``amountMinor``. Key names: keys.py. A refund's keys sit
in its payment's vshard (its refundId carries it); beginning and settling are durable
steps (script_batch.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import redis.asyncio as aioredis

from raypay.adapters.event_payload import outbox_args, sequence_lua
from raypay.adapters.keys import Keys
from raypay.adapters.records import refund_from_record, refund_record
from raypay.adapters.redis_client import Replicas, translated
from raypay.adapters.redis_store import flat, oldest
from raypay.adapters.script_batch import BatchedScript
from raypay.domain.errors import (
    PaymentNotFound,
    PaymentNotRefundable,
    RefundExceedsPayment,
    StoreUnavailable,
)
from raypay.domain.events import RefundEvent
from raypay.domain.money import Money
from raypay.domain.ports import RefundBegun
from raypay.domain.refunds import Refund, RefundStatus
from raypay.domain.sharding import vshard_in

# KEYS: payment, refund, payment:refunds, refunds:pending, order:succeeded.
# ARGV: refundId, amountMinor, createdAt (ms), release ('1': the payment stops being the
# order's succeeded payment), paymentId, the refund's fields...
_BEGIN = """
if redis.call('EXISTS', KEYS[2]) == 1 then return {'exists'} end
local p = redis.call('HMGET', KEYS[1], 'status', 'amountMinor', 'amountRefundedMinor',
                     'amountRefundingMinor')
if not p[1] then return {'missing'} end
if p[1] ~= 'succeeded' then return {'not_succeeded', p[1]} end
local left = tonumber(p[2]) - tonumber(p[3] or '0') - tonumber(p[4] or '0')
if tonumber(ARGV[2]) > left then return {'exceeds', tostring(left)} end
redis.call('HINCRBY', KEYS[1], 'amountRefundingMinor', ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 6))
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
if ARGV[4] == '1' and redis.call('GET', KEYS[5]) == ARGV[5] then redis.call('DEL', KEYS[5]) end
return {'created'}
"""

# KEYS: refund, payment, refunds:pending, outbox, order:seq (the refund's order).
# ARGV: refundId, status, kind, key, value (no sequence yet), eventId, requestId, the
# refund's fields...
# Settling twice is a no-op: one recorded outcome, one event, one move of the amount.
_SETTLE = f"""
local r = redis.call('HMGET', KEYS[1], 'status', 'amountMinor')
if r[1] ~= 'pending' then return r[1] or 'missing' end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
redis.call('HINCRBY', KEYS[2], 'amountRefundingMinor', '-' .. r[2])
if ARGV[2] == 'succeeded' then redis.call('HINCRBY', KEYS[2], 'amountRefundedMinor', r[2]) end
redis.call('ZREM', KEYS[3], ARGV[1])
{sequence_lua("ARGV[5]", "KEYS[5]")}
redis.call('XADD', KEYS[4], '*', 'eventId', ARGV[6], 'kind', ARGV[3], 'key', ARGV[4],
           'value', value_seq, 'requestId', ARGV[7])
return 'settled'
"""


class RedisRefunds:
    """Refunds of payments, and their guard on each payment's refundable amount."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, replicas: Replicas | None = None):
        self.redis, self.keys = redis, keys
        self._begin = BatchedScript(redis, _BEGIN, replicas=replicas)
        self._settle = BatchedScript(redis, _SETTLE, replicas=replicas)

    async def get(self, refund_id: str) -> Refund | None:
        async with translated():
            fields = await self.redis.hgetall(self.keys.refund(refund_id))
        return refund_from_record(fields) if fields else None

    async def begin(self, refund: Refund, release_order: bool = False) -> RefundBegun:
        keys = self.keys
        async with translated():
            reply = await self._begin(
                keys=[
                    keys.payment(refund.payment_id),
                    keys.refund(refund.refund_id),
                    keys.payment_refunds(refund.payment_id),
                    keys.refunds_pending(vshard_in(refund.refund_id)),
                    keys.succeeded(refund.order_id),
                ],
                args=[
                    refund.refund_id,
                    refund.amount.minor,
                    int(refund.created_at.timestamp() * 1000),
                    "1" if release_order else "0",
                    refund.payment_id,
                    *flat(refund_record(refund)),
                ],
            )
        outcome, detail = reply[0], reply[1] if len(reply) > 1 else ""
        if outcome == "created":
            return RefundBegun(refund, created=True)
        if outcome == "exists":
            existing = await self.get(refund.refund_id)
            if existing is None:
                raise StoreUnavailable(f"refund {refund.refund_id} vanished")
            return RefundBegun(existing, created=False)
        if outcome == "missing":
            raise PaymentNotFound(f"payment {refund.payment_id} not found")
        if outcome == "not_succeeded":
            raise PaymentNotRefundable(
                f"payment {refund.payment_id} is {detail}; only a succeeded payment can be refunded"
            )
        # Lua's tostring of a number: "250", or "2.5e+20" when large; Decimal reads both
        # exactly (money never goes through float here).
        left = Money(max(0, int(Decimal(detail))), refund.amount.currency)
        raise RefundExceedsPayment(
            f"payment {refund.payment_id} has {left} {left.currency} left to refund",
            {"amountRefundable": str(left), "currency": left.currency},
        )

    async def settle(self, refund: Refund, event: RefundEvent) -> Refund:
        keys = self.keys
        async with translated():
            outcome = await self._settle(
                keys=[
                    keys.refund(refund.refund_id),
                    keys.payment(refund.payment_id),
                    keys.refunds_pending(vshard_in(refund.refund_id)),
                    keys.outbox(vshard_in(refund.refund_id)),
                    keys.order_sequence(refund.order_id),
                ],
                args=[
                    refund.refund_id,
                    refund.status.value,
                    *outbox_args(event),
                    *flat(refund_record(refund)),
                ],
            )
        if outcome == "settled":
            return refund
        stored = await self.get(refund.refund_id)
        if stored is None:
            raise StoreUnavailable(f"refund {refund.refund_id} vanished while settling")
        return stored

    async def list_for_payment(self, payment_id: str) -> list[Refund]:
        async with translated():
            ids = await self.redis.lrange(self.keys.payment_refunds(payment_id), 0, -1)
            if not ids:
                return []
            async with self.redis.pipeline(transaction=False) as pipe:
                for refund_id in ids:
                    pipe.hgetall(self.keys.refund(refund_id))
                rows = await pipe.execute()
        return [refund_from_record(fields) for fields in rows if fields]

    async def pending_older_than(
        self, cutoff: datetime, vshards: Iterable[int], limit: int = 100
    ) -> list[Refund]:
        """Pending refunds of these vshards created before ``cutoff`` (for the sweep)."""
        keys = [self.keys.refunds_pending(v) for v in vshards]
        ids = await oldest(self.redis, keys, int(cutoff.timestamp() * 1000), limit)
        found = [await self.get(refund_id) for refund_id in ids]
        return [r for r in found if r is not None and r.status is RefundStatus.PENDING]
