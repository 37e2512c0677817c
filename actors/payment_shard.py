"""The PaymentActor shard: owns the orders whose orderId hashes to it.

Inside, one asyncio lock per order: requests for one order run one after another,
different orders run concurrently. The durable truth is Redis, so a restarted shard
picks up where its predecessor left off: its sweep settles payments left pending.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

import ray

from actors.gateway import ActorPoolGateway
from raypay.adapters.redis_store import (
    Keys,
    RedisOrders,
    RedisPayments,
    RedisReplies,
    RedisReservations,
    connect,
)
from raypay.batching import TicketBox
from raypay.errors import RaypayError
from raypay.model import PaymentRequest
from raypay.replies import Reply, answer
from raypay.settings import Settings
from raypay.sharding import shard_for
from raypay.workflow import Deps, settle_pending

log = logging.getLogger("raypay.shard")


class UtcClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=2000)
class PaymentActor:
    async def __init__(
        self,
        index: int,
        shards: int,
        settings: Settings,
        gateways: list[ray.actor.ActorHandle],
        sweep_after_s: float = 60.0,
        batch_window_s: float = 0.001,
        batch_hold_s: float = 0.5,
    ) -> None:
        self.index, self.shards = index, shards
        redis = connect(settings.redis_url, settings.redis_timeout_s, pipelined=True)
        keys = Keys(settings.key_prefix)
        self.payments = RedisPayments(redis, keys)
        self.replies = RedisReplies(redis, keys, settings.idempotency_ttl_s)
        self.deps = Deps(
            orders=RedisOrders(redis, keys),
            reservations=RedisReservations(redis, keys),
            payments=self.payments,
            gateway=ActorPoolGateway(gateways, settings.gateway_timeout_s, batch_window_s),
            clock=UtcClock(),
        )
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.in_flight = 0
        self._box = TicketBox(batch_hold_s)
        self.sweep_after = timedelta(seconds=sweep_after_s)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    def _lock(self, order_id: str) -> asyncio.Lock:
        lock = self._locks.get(order_id)
        if lock is None:
            lock = self._locks[order_id] = asyncio.Lock()
        return lock

    async def pay(self, request: PaymentRequest, idempotency_key: str | None = None) -> Reply:
        """Run the payment workflow for one order under its lock.

        Returns the final Reply (payment or problem); raises Unavailable (503) when a
        dependency is down, and IdempotencyKeyReused for a key used with another request.
        """
        lock = self._lock(request.order_id)
        self.in_flight += 1
        try:
            async with lock:
                return await answer(request, self.deps, self.replies, idempotency_key)
        finally:
            self.in_flight -= 1

    async def pay_many(self, items: list[tuple[PaymentRequest, str | None]]) -> list[Any]:
        """``pay`` for a batch: Replies or errors (as values), Tickets for slow ones."""
        return await self._box.run([self.pay(request, key) for request, key in items])

    async def collect(self, ticket_ids: list[int]) -> list[Any]:
        """Answers for the Tickets of earlier batches."""
        return await self._box.collect(ticket_ids)

    async def sweep(self) -> int:
        """Settle this shard's payments pending for longer than ``sweep_after``."""
        cutoff = self.deps.clock.now() - self.sweep_after
        settled = 0
        for payment in await self.payments.pending_older_than(cutoff):
            if shard_for(payment.order_id, self.shards) != self.index:
                continue
            async with self._lock(payment.order_id):
                current = await self.payments.get(payment.payment_id)
                if current is not None and current.status == payment.status:
                    await settle_pending(current, self.deps)
                    settled += 1
        return settled

    async def _sweep_forever(self) -> None:
        # The first pass runs at start, so a restarted shard settles what its predecessor left.
        while True:
            try:
                if settled := await self.sweep():
                    log.info("sweep settled %d pending payments", settled)
            except RaypayError as exc:
                log.warning("sweep skipped: %s", exc)
            await asyncio.sleep(max(1.0, self.sweep_after.total_seconds() / 4))

    async def stats(self) -> dict:
        """In-flight requests of this shard, for readyz and metrics."""
        return {"shard": self.index, "inFlight": self.in_flight, "orders": len(self._locks)}
