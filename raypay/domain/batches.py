"""Refund batches: refund every order of a cancelled event, resumably, at a bounded rate.

A batch is a list of orderIds and a reason, kept in a BatchStore. ``run_batch`` refunds
all that is left of each order's succeeded payment, one order at a time per the shared
``Pacer`` (so a batch never starves live payments), and records each order's outcome.
It is resumable from the store after any crash: a recorded order is never refunded
again, and each refund carries an Idempotency-Key that names the batch and the order,
so an order that was in flight when the runner died gets the same refund, not a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from raypay.domain.errors import PaymentNotFound, RefundDeclined, Rejected, Unavailable
from raypay.domain.idempotency import IdempotencyStore, refund_once
from raypay.domain.outcomes import Outcome, refused
from raypay.domain.ports import Deps
from raypay.domain.refunds import RefundReason, RefundRequest

log = logging.getLogger("raypay.domain.batches")
MAX_ORDERS = 10_000
CHUNK = 200  # orders read from the store at once
MAX_IN_FLIGHT = 32  # refunds of one runner under way at once, whatever the rate


class BatchStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"


class ItemStatus(StrEnum):
    SUCCEEDED = "succeeded"  # refunded (all that was left of its payment)
    FAILED = "failed"  # the gateway declined the refund (code: why)
    SKIPPED = "skipped"  # nothing to refund: no succeeded payment, already refunded (code)
    PENDING = "pending"  # not done yet


@dataclass(frozen=True, slots=True)
class RefundBatch:
    batch_id: str
    reason: RefundReason
    total: int
    created_at: datetime
    status: BatchStatus = BatchStatus.RUNNING
    metadata: Mapping[str, str] = field(default_factory=dict)
    cursor: int = 0  # every order before this index is recorded
    counts: Mapping[str, int] = field(default_factory=dict)  # by ItemStatus
    finished_at: datetime | None = None

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def idempotency_key(self, order_id: str) -> str:
        """The key of the order's refund in this batch: the same on every resumption."""
        return f"batch:{self.batch_id}:{order_id}"


@dataclass(frozen=True, slots=True)
class BatchItem:
    order_id: str
    status: ItemStatus
    payment_id: str | None = None
    refund_id: str | None = None
    amount: str | None = None
    code: str | None = None


class BatchStore(Protocol):
    async def create(self, batch: RefundBatch, order_ids: list[str]) -> RefundBatch:
        """Record a new batch and its orders; a batch with this id already there is
        returned as it is (creating with an Idempotency-Key twice makes one batch)."""

    async def get(self, batch_id: str) -> RefundBatch | None: ...

    async def open_batches(self) -> list[str]:
        """The ids of the batches still running."""

    async def orders(self, batch_id: str, start: int, count: int) -> list[str]:
        """The batch's orderIds from index ``start``, at most ``count``."""

    async def items(self, batch_id: str, order_ids: list[str]) -> list[BatchItem]:
        """The recorded outcome of each order (PENDING for one not done yet)."""

    async def record(self, batch_id: str, item: BatchItem, now: datetime) -> None:
        """Record an order's outcome once (a second record of it changes nothing), count
        it, and mark the batch done with its last order."""

    async def advance(self, batch_id: str, cursor: int) -> None:
        """Every order before ``cursor`` is recorded: a resumption starts there."""


def item_for(order_id: str, outcome: Outcome) -> BatchItem:
    """An order's outcome in a batch, from the outcome of its refund."""
    refund, error = outcome.refund, outcome.error
    payment_id = refund.payment_id if refund else None
    if error is None and refund is not None:
        amount = str(refund.amount)
        return BatchItem(order_id, ItemStatus.SUCCEEDED, payment_id, refund.refund_id, amount)
    if isinstance(error, RefundDeclined) and refund is not None:
        code = refund.error_code or error.code
        return BatchItem(order_id, ItemStatus.FAILED, payment_id, refund.refund_id, None, code)
    code = getattr(error, "code", "internal_error")
    return BatchItem(order_id, ItemStatus.SKIPPED, payment_id, code=code)


async def refund_order(
    order_id: str,
    reason: RefundReason,
    metadata: Mapping[str, str],
    deps: Deps,
    idempotency: IdempotencyStore,
    key: str,
) -> Outcome:
    """A batch's step for one order: refund all that is left of its succeeded payment.
    Runs in the shard that owns the order, under its lock."""
    payment = await deps.payments.succeeded_for(order_id)
    if payment is None:
        return refused(PaymentNotFound(f"order {order_id} has no succeeded payment"))
    request = RefundRequest(payment.payment_id, reason, metadata=metadata)
    return await refund_once(request, deps, idempotency, key)


class Pacer:
    """At most ``rate`` starts a second, evenly spaced, for all who share it."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.clock = 1.0 / rate, clock
        self._next = clock()

    async def wait(self) -> None:
        now = self.clock()
        start = max(self._next, now)
        self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


RefundOne = Callable[[RefundBatch, str], Awaitable[Outcome]]


async def run_batch(
    batch: RefundBatch,
    store: BatchStore,
    refund_one: RefundOne,
    pacer: Pacer,
    now: Callable[[], datetime],
) -> None:
    """Refund every order of ``batch`` not recorded yet, paced, and record each outcome.

    ``refund_one`` refunds one order (``refund_order`` in the shard that owns it); a
    dependency that is away (Unavailable) is retried with backoff, never recorded.
    """
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def one(order_id: str) -> None:
        async with gate:
            backoff = 0.5
            while True:
                await pacer.wait()
                try:
                    outcome = await refund_one(batch, order_id)
                except Unavailable as exc:
                    log.warning("batch %s order %s: %s; retrying", batch.batch_id, order_id, exc)
                except Rejected as exc:  # final, though raised: record it
                    outcome = refused(exc)
                    break
                else:
                    break
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        await store.record(batch.batch_id, item_for(order_id, outcome), now())

    cursor = batch.cursor
    while cursor < batch.total:
        chunk = await store.orders(batch.batch_id, cursor, CHUNK)
        if not chunk:
            break
        recorded = await store.items(batch.batch_id, chunk)
        todo = [item.order_id for item in recorded if item.status is ItemStatus.PENDING]
        await asyncio.gather(*(one(order_id) for order_id in todo))
        cursor += len(chunk)
        await store.advance(batch.batch_id, cursor)
