"""The PaymentActor shard: owns the orders whose orderId hashes to it.

Inside, one asyncio lock per order: requests for one order run one after another,
different orders run concurrently. The durable truth is Redis, so a restarted shard
picks up where its predecessor left off: its sweep settles payments left pending.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import ray

from actors.gateway import ActorPoolGateway
from actors.logs import outcome_log
from actors.metrics import ShardMetrics, tick_forever, watch_redis
from raypay.adapters.batching import TicketBox
from raypay.adapters.redis_store import (
    Keys,
    RedisOrders,
    RedisPayments,
    RedisReplies,
    RedisReservations,
    connect,
)
from raypay.domain.errors import RaypayError
from raypay.domain.idempotency import Reply, answer, outcome_of
from raypay.domain.model import Payment, PaymentRequest
from raypay.domain.sharding import shard_for
from raypay.domain.workflow import Deps, settle_pending
from raypay.settings import Settings

log = logging.getLogger("raypay.shard")


class OrderLocks:
    """One asyncio lock per order, kept while requests for the order are in flight;
    ``len`` is the number of those orders."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    def enter(self, order_id: str) -> asyncio.Lock:
        self._users[order_id] = self._users.get(order_id, 0) + 1
        lock = self._locks.get(order_id)
        if lock is None:
            lock = self._locks[order_id] = asyncio.Lock()
        return lock

    def leave(self, order_id: str) -> None:
        if users := self._users[order_id] - 1:
            self._users[order_id] = users
        else:
            del self._users[order_id], self._locks[order_id]

    def __len__(self) -> int:
        return len(self._locks)


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
        self.metrics = ShardMetrics(settings.key_prefix, index)
        self.outcomes = outcome_log(f"{settings.key_prefix}-shard-{index}")
        redis = watch_redis(
            connect(settings.redis_url, settings.redis_timeout_s, pipelined=True),
            self.metrics.redis_error,
        )
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
        self.orders = OrderLocks()
        self.in_flight = 0
        self._box = TicketBox(batch_hold_s)
        self.sweep_after = timedelta(seconds=sweep_after_s)
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._sweep_forever())
        self._metrics_task = loop.create_task(
            tick_forever(lambda: self.metrics.flush(len(self.orders)))
        )

    async def pay(self, request: PaymentRequest, idempotency_key: str | None = None) -> Reply:
        """Run the payment workflow for one order under its lock.

        Returns the final Reply (payment or problem); raises Unavailable (503) when a
        dependency is down, and IdempotencyKeyReused for a key used with another request.
        """
        lock = self.orders.enter(request.order_id)
        self.in_flight += 1
        started = time.perf_counter()
        try:
            async with lock:
                reply = await answer(request, self.deps, self.replies, idempotency_key)
        except BaseException as exc:
            self._record(request, exc, time.perf_counter() - started)
            raise
        finally:
            self.in_flight -= 1
            self.orders.leave(request.order_id)
        self._record(request, reply, time.perf_counter() - started)
        return reply

    def _record(self, request: PaymentRequest, result: Reply | BaseException, took: float) -> None:
        """Count the outcome and log one line for it (actors/logs.py): ids, outcome,
        latency; never the payment method or anything else that could be card data."""
        outcome, code = outcome_of(result)
        self.metrics.count(outcome, code)
        body = result.body if isinstance(result, Reply) else {}
        payment = body.get("payment", body)  # a decline's problem carries the payment
        self.outcomes.info(
            "payment %s",
            outcome,
            extra={
                "orderId": request.order_id,
                "paymentId": payment.get("paymentId"),
                "customerId": request.customer_id,
                "outcome": outcome,
                "code": code or None,
                "latencyMs": round(took * 1000, 1),
                "requestId": request.request_id,
                "shard": self.index,
            },
        )

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
            lock = self.orders.enter(payment.order_id)
            try:
                async with lock:
                    settled += await self._settle_left_pending(payment)
            finally:
                self.orders.leave(payment.order_id)
        return settled

    async def _settle_left_pending(self, payment: Payment) -> bool:
        current = await self.payments.get(payment.payment_id)
        if current is None or current.status != payment.status:
            return False  # settled meanwhile
        done = await settle_pending(current, self.deps)
        log.info(
            "pending payment settled by the sweep",
            extra={
                "orderId": done.order_id,
                "paymentId": done.payment_id,
                "customerId": done.customer_id,
                "outcome": done.status.value,
                "code": done.error_code,
            },
        )
        return True

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
        return {"shard": self.index, "inFlight": self.in_flight, "orders": len(self.orders)}
