"""Tickets of the reference fulfilment consumer (``raypay fulfill``), in Redis.

One ticket per succeeded payment, issued by its ``payment-succeeded`` event and voided
by the ``refund-succeeded`` event that completes the payment's refund. Each event is
handled once (its eventId is remembered for ``EVENT_TTL_S``), each step is one Lua
script, and a void that arrives before its payment's event (another topic, so no order
between them) leaves a void ticket behind, which the late payment event then finds and
does not issue. Key names: keys.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from raypay.adapters.keys import Keys
from raypay.adapters.redis_client import translated
from raypay.domain.sharding import VSHARDS, vshard_in

EVENT_TTL_S = 7 * 24 * 3600  # far longer than any redelivery

# KEYS: fulfil:event, ticket, fulfil:stats. ARGV: ticketId, orderId, paymentId, now, ttl.
_ISSUE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[5]) then
  redis.call('HINCRBY', KEYS[3], 'duplicates', 1)
  return 'duplicate'
end
local status = redis.call('HGET', KEYS[2], 'status')
if status then return status end
redis.call('HSET', KEYS[2], 'ticketId', ARGV[1], 'orderId', ARGV[2], 'paymentId', ARGV[3],
           'status', 'issued', 'issuedAt', ARGV[4])
redis.call('HINCRBY', KEYS[3], 'issued', 1)
return 'issued'
"""

# KEYS: fulfil:event, ticket, fulfil:stats.
# ARGV: ticketId, orderId, paymentId, now, ttl, refundId.
_VOID = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[5]) then
  redis.call('HINCRBY', KEYS[3], 'duplicates', 1)
  return 'duplicate'
end
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'void' then return 'void' end
redis.call('HSET', KEYS[2], 'ticketId', ARGV[1], 'orderId', ARGV[2], 'paymentId', ARGV[3],
           'status', 'void', 'voidedAt', ARGV[4], 'voidedBy', ARGV[6])
if status then
  redis.call('HINCRBY', KEYS[3], 'voided', 1)
  return 'voided'
end
redis.call('HINCRBY', KEYS[3], 'voidedFirst', 1)
return 'voided_first'
"""


@dataclass(frozen=True, slots=True)
class Ticket:
    ticket_id: str
    order_id: str
    payment_id: str
    status: str  # issued | void


def ticket_id_for(payment_id: str) -> str:
    """One ticket per payment: its id follows from the paymentId."""
    return "tkt_" + payment_id.removeprefix("pay_")


class RedisTickets:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys
        self._issue = redis.register_script(_ISSUE)
        self._void = redis.register_script(_VOID)

    async def issue(self, event_id: str, order_id: str, payment_id: str, now: str) -> str:
        """``issued``; or ``duplicate`` (this event was handled), ``issued`` / ``void``
        (the ticket's status: issued by another event, or voided before it came)."""
        async with translated():
            return await self._issue(
                keys=self._keys(event_id, payment_id),
                args=[ticket_id_for(payment_id), order_id, payment_id, now, EVENT_TTL_S],
            )

    async def void(
        self, event_id: str, order_id: str, payment_id: str, refund_id: str, now: str
    ) -> str:
        """``voided``, ``voided_first`` (no ticket was issued yet: none will be),
        ``void`` (already) or ``duplicate``."""
        async with translated():
            return await self._void(
                keys=self._keys(event_id, payment_id),
                args=[ticket_id_for(payment_id), order_id, payment_id, now, EVENT_TTL_S, refund_id],
            )

    def _keys(self, event_id: str, payment_id: str) -> list[str]:
        keys = self.keys
        stats = keys.fulfil_stats(vshard_in(payment_id))  # all three beside the payment
        return [keys.fulfilled_event(event_id, payment_id), keys.ticket(payment_id), stats]

    async def get(self, payment_id: str) -> Ticket | None:
        async with translated():
            fields = await self.redis.hgetall(self.keys.ticket(payment_id))
        if not fields:
            return None
        return Ticket(fields["ticketId"], fields["orderId"], fields["paymentId"], fields["status"])

    async def stats(self) -> dict[str, int]:
        """The counts of every vshard, added up."""
        async with translated():
            async with self.redis.pipeline(transaction=False) as pipe:
                for vshard in range(VSHARDS):
                    pipe.hgetall(self.keys.fulfil_stats(vshard))
                rows = await pipe.execute()
        totals: dict[str, int] = {}
        for row in rows:
            for name, value in row.items():
                totals[name] = totals.get(name, 0) + int(value)
        return totals
