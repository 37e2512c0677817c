"""The PaymentActor shard: owns the orders of a range of vshards (domain/sharding.py).

Inside, one asyncio lock per order: requests for one order (its payments and the
refunds of its payments) run one after another, different orders run concurrently. The
durable truth is Redis, so a restarted shard picks up where its predecessor left off:
its sweep settles payments and refunds left pending.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import ray

from actors.gateway import ActorPoolGateway
from actors.metrics import ShardMetrics, tick_forever
from raypay import bootstrap
from raypay.adapters.batching import TicketBox
from raypay.bootstrap import ShardConfig
from raypay.domain.batches import refund_order
from raypay.domain.errors import RaypayError, Unavailable
from raypay.domain.idempotency import pay_once, refund_once
from raypay.domain.model import Payment, PaymentRequest
from raypay.domain.outcomes import Outcome
from raypay.domain.refunding import settle_pending_refund
from raypay.domain.refunds import Refund, RefundReason, RefundRequest, RefundStatus
from raypay.domain.sharding import vshards_of
from raypay.domain.workflow import settle_pending

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


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=2000)
class PaymentActor:
    async def __init__(self, config: ShardConfig, gateways: list[ray.actor.ActorHandle]) -> None:
        settings, topology = config.settings, config.topology
        self.index, self.shards = config.index, topology.shards
        self.vshards = vshards_of(config.index, topology.shards)
        self.metrics = ShardMetrics(settings.key_prefix, config.index)
        stores = bootstrap.stores(
            settings, bootstrap.redis_client(settings, self.metrics.redis_error)
        )
        self.payments, self.idempotency = stores.payments, stores.idempotency
        self.refunds = stores.refunds
        gateway = ActorPoolGateway(gateways, settings.gateway_timeout_s, topology.batch_window_s)
        self.deps = bootstrap.workflow_deps(stores, gateway)
        self.orders = OrderLocks()
        self.in_flight = 0
        self._box = TicketBox(topology.batch_hold_s)
        self.sweep_after = timedelta(seconds=topology.sweep_after_s)
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._sweep_forever())
        self._metrics_task = loop.create_task(
            tick_forever(lambda: self.metrics.flush(len(self.orders)))
        )

    async def pay(self, request: PaymentRequest, idempotency_key: str | None = None) -> Outcome:
        """Run the payment workflow for one order under its lock.

        Returns the final Outcome (a payment or a refusal); raises Unavailable (503) when
        a dependency is down, and IdempotencyKeyReused for a key used with another request.
        """
        lock = self.orders.enter(request.order_id)
        self.in_flight += 1
        try:
            async with lock:
                return await pay_once(request, self.deps, self.idempotency, idempotency_key)
        finally:
            self.in_flight -= 1
            self.orders.leave(request.order_id)

    async def refund(
        self, request: RefundRequest, order_id: str, idempotency_key: str | None = None
    ) -> Outcome:
        """Run the refund workflow for a payment of ``order_id``, under the order's lock.

        Returns the final Outcome (the refund, or a refusal: a decline carries the failed
        refund); raises Unavailable (503) when a dependency is down (the refund may stay
        pending: the retry or the sweep settles it).
        """
        lock = self.orders.enter(order_id)
        self.in_flight += 1
        try:
            async with lock:
                return await refund_once(request, self.deps, self.idempotency, idempotency_key)
        finally:
            self.in_flight -= 1
            self.orders.leave(order_id)

    async def refund_order(
        self, order_id: str, reason: RefundReason, metadata: dict[str, str], idempotency_key: str
    ) -> Outcome:
        """A refund batch's step: refund all that is left of the order's succeeded payment,
        under the order's lock. ``idempotency_key`` names the batch and the order, so a
        resumed batch gets the same refund back."""
        lock = self.orders.enter(order_id)
        self.in_flight += 1
        try:
            async with lock:
                return await refund_order(
                    order_id, reason, metadata, self.deps, self.idempotency, idempotency_key
                )
        finally:
            self.in_flight -= 1
            self.orders.leave(order_id)

    async def pay_many(self, items: list[tuple[PaymentRequest, str | None]]) -> list[Any]:
        """``pay`` for a batch: Outcomes or errors (as values), Tickets for slow ones."""
        return await self._box.run([self.pay(request, key) for request, key in items])

    async def collect(self, ticket_ids: list[int]) -> list[Any]:
        """Answers for the Tickets of earlier batches."""
        return await self._box.collect(ticket_ids)

    async def sweep(self) -> int:
        """Settle the payments and refunds of this shard's vshards pending for longer than
        ``sweep_after`` (each vshard has its pending sets)."""
        cutoff = self.deps.clock.now() - self.sweep_after
        settled = 0
        for payment in await self.payments.pending_older_than(cutoff, self.vshards):
            lock = self.orders.enter(payment.order_id)
            try:
                async with lock:
                    settled += await self._settle_left_pending(payment)
            finally:
                self.orders.leave(payment.order_id)
        for refund in await self.refunds.pending_older_than(cutoff, self.vshards):
            lock = self.orders.enter(refund.order_id)
            try:
                async with lock:
                    settled += await self._settle_left_pending_refund(refund)
            finally:
                self.orders.leave(refund.order_id)
        return settled

    async def _settle_left_pending_refund(self, refund: Refund) -> bool:
        current = await self.refunds.get(refund.refund_id)
        if current is None or current.status is not RefundStatus.PENDING:
            return False  # settled meanwhile
        try:
            done = await settle_pending_refund(current, self.deps)
        except Unavailable as exc:  # the gateway is still away: the next pass asks again
            log.warning("pending refund %s not settled: %s", refund.refund_id, exc)
            return False
        log.info(
            "pending refund settled by the sweep",
            extra={
                "orderId": done.order_id,
                "paymentId": done.payment_id,
                "refundId": done.refund_id,
                "outcome": done.status.value,
                "code": done.error_code,
            },
        )
        return True

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
