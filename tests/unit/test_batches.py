"""Refund batches (raypay.domain.batches) over the Redis BatchStore on fakeredis and the
fakes of the workflow's ports: every order's outcome recorded once, resumable after a
crash without refunding twice, retried while a dependency is away, paced."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from raypay.adapters.batch_store import RedisBatches
from raypay.adapters.idempotency_store import RedisIdempotency
from raypay.domain.batches import (
    BatchItem,
    BatchStatus,
    ItemStatus,
    Pacer,
    RefundBatch,
    item_for,
    refund_order,
    run_batch,
)
from raypay.domain.errors import PaymentDeclined, ShardUnavailable
from raypay.domain.model import Order
from raypay.domain.refunds import RefundReason
from raypay.domain.workflow import pay

from .fakes import USD_40, FakeWorld, a_checkout, a_request

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def store(redis, keys) -> RedisBatches:
    return RedisBatches(redis, keys)


@pytest.fixture
def idempotency(redis, keys) -> RedisIdempotency:
    return RedisIdempotency(redis, keys, ttl_s=60)


async def paid_orders(world: FakeWorld, count: int) -> list[str]:
    orders = []
    for n in range(count):
        order_id = f"ord_p{n}"
        world.orders.add(Order(order_id, "cus_1", USD_40, "pending_payment"))
        await pay(a_request(order_id=order_id, reservation_id=None), world.deps)
        orders.append(order_id)
    return orders


def a_batch(total: int, batch_id: str = "rb_1") -> RefundBatch:
    return RefundBatch(batch_id, RefundReason.EVENT_CANCELLED, total, NOW, metadata={"e": "9"})


def refunder(world: FakeWorld, idempotency, calls: list[str] | None = None):
    async def refund_one(batch: RefundBatch, order_id: str):
        if calls is not None:
            calls.append(order_id)
        key = batch.idempotency_key(order_id)
        return await refund_order(
            order_id, batch.reason, batch.metadata, world.deps, idempotency, key
        )

    return refund_one


async def run(batch, store, refund_one, rate: float = 10_000) -> RefundBatch:
    await run_batch(batch, store, refund_one, Pacer(rate), lambda: NOW)
    return await store.get(batch.batch_id)


async def test_every_paid_order_is_refunded_and_every_outcome_recorded(store, idempotency):
    world = a_checkout()
    paid = await paid_orders(world, 5)
    world.gateway.decline_next()
    with pytest.raises(PaymentDeclined):
        await pay(a_request(reservation_id=None), world.deps)  # ord_1: a failed payment
    orders = [*paid, "ord_1", "ord_unknown"]
    batch = await store.create(a_batch(len(orders)), orders)

    done = await run(batch, store, refunder(world, idempotency))

    assert (done.status, done.done, done.cursor) == (BatchStatus.DONE, 7, 7)
    assert done.counts == {"succeeded": 5, "failed": 0, "skipped": 2}
    assert await store.open_batches() == []
    items = await store.items("rb_1", orders)
    assert [i.status for i in items] == [ItemStatus.SUCCEEDED] * 5 + [ItemStatus.SKIPPED] * 2
    assert {i.code for i in items[5:]} == {"payment_not_found"}
    assert all(i.refund_id and i.amount == "40.00" for i in items[:5])
    for order_id in paid:
        payment = await world.payments.succeeded_for(order_id)
        assert payment.refunded
        [refund] = await world.refunds.list_for_payment(payment.payment_id)
        assert (refund.reason, refund.metadata) == (RefundReason.EVENT_CANCELLED, {"e": "9"})


async def test_a_declined_refund_is_recorded_failed_with_its_code(store, idempotency):
    world = a_checkout()
    [order_id] = await paid_orders(world, 1)
    world.gateway.decline_next_refund("expired_or_canceled_card")
    batch = await store.create(a_batch(1), [order_id])

    done = await run(batch, store, refunder(world, idempotency))

    [item] = await store.items("rb_1", [order_id])
    assert (item.status, item.code) == (ItemStatus.FAILED, "expired_or_canceled_card")
    assert done.counts["failed"] == 1


async def test_a_resumed_batch_refunds_no_order_twice(store, idempotency):
    world = a_checkout()
    orders = await paid_orders(world, 6)
    batch = await store.create(a_batch(6), orders)
    refund_one = refunder(world, idempotency)

    # The runner dies: two orders recorded, a third refunded but not recorded.
    for order_id in orders[:2]:
        await run_one(store, batch, refund_one, order_id)
    await refund_one(batch, orders[2])

    calls: list[str] = []
    done = await run(await store.get("rb_1"), store, refunder(world, idempotency, calls))

    assert calls == orders[2:]  # recorded orders are skipped
    assert (done.status, done.counts["succeeded"]) == (BatchStatus.DONE, 6)
    assert len(world.gateway.refunded) == 6  # the third order's refund was given again


async def run_one(store, batch, refund_one, order_id):
    await store.record(batch.batch_id, item_for(order_id, await refund_one(batch, order_id)), NOW)


async def test_an_order_whose_shard_is_away_is_retried_not_recorded(store, idempotency):
    world = a_checkout()
    [order_id] = await paid_orders(world, 1)
    batch = await store.create(a_batch(1), [order_id])
    inner, attempts = refunder(world, idempotency), []

    async def flaky(batch, order_id):
        attempts.append(order_id)
        if len(attempts) == 1:
            raise ShardUnavailable("shard restarting")
        return await inner(batch, order_id)

    done = await run(batch, store, flaky)

    assert (len(attempts), done.counts["succeeded"]) == (2, 1)


async def test_recording_an_order_twice_counts_it_once(store):
    batch = await store.create(a_batch(2), ["ord_a", "ord_b"])
    item = BatchItem("ord_a", ItemStatus.SKIPPED, code="payment_not_found")
    await store.record(batch.batch_id, item, NOW)
    await store.record(batch.batch_id, item, NOW)

    again = await store.get("rb_1")
    assert (again.status, again.counts["skipped"]) == (BatchStatus.RUNNING, 1)
    assert await store.open_batches() == ["rb_1"]


async def test_creating_a_batch_with_an_id_that_exists_keeps_the_first(store):
    first = await store.create(a_batch(2), ["ord_a", "ord_b"])
    again = await store.create(a_batch(1), ["ord_c"])
    assert again == first and await store.orders("rb_1", 0, 10) == ["ord_a", "ord_b"]


async def test_ten_thousand_orders_are_stored_in_order(store):
    orders = [f"ord_{n}" for n in range(10_000)]
    batch = await store.create(a_batch(10_000), orders)
    assert batch.total == 10_000
    assert await store.orders("rb_1", 9_998, 10) == ["ord_9998", "ord_9999"]


async def test_the_pacer_spaces_starts_by_its_rate():
    pacer = Pacer(rate=100)
    started = time.monotonic()
    await asyncio.gather(*(pacer.wait() for _ in range(21)))  # 20 intervals of 10 ms
    assert time.monotonic() - started >= 0.19
