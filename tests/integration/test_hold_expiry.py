"""The seat hold that expires during a slow simulated charge (the fault stack's gateway
takes 300 ms): raypay records the payment, refunds it at once and answers 409
reservation_expired_during_payment with both; both events reach the broker; the order
can be paid again once it holds seats again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import ray
from raystack import assert_problem, consuming, eventually

from raypay.adapters.keys import Keys
from raypay.adapters.records import iso_utc

pytestmark = pytest.mark.integration


async def charging(service, order: dict) -> asyncio.Future:
    """The answer to a payment of ``order`` whose charge is now in flight (pending in
    Redis, read every 5 ms: over HTTP, a busy machine can miss the 300 ms window). A 5xx
    before that (the stack still recovering from an earlier fault test's Redis restart)
    is retried, as the contract tells clients to."""
    key = Keys(service.settings.key_prefix).pending(order["orderId"])
    for _ in range(20):
        answer = asyncio.ensure_future(service.pay(order))
        while not answer.done():
            if service.redis.exists(key):
                return answer
            await asyncio.sleep(0.005)
        assert answer.result().status_code >= 500, answer.result().text
        await asyncio.sleep(0.2)
    raise AssertionError("the payment never was pending")


@pytest.fixture
async def fresh(faults):
    """The fault stack with restarted shards and gateways: earlier fault tests restart
    its Redis, and a pooled connection from before fails once when next used."""
    for i in range(faults.args.shards):
        ray.kill(faults.actor(f"shard-{i}"), no_restart=False)
    for i in range(faults.args.gateway_pool):
        ray.kill(faults.actor(f"gateway-{i}"), no_restart=False)
    service = faults.service
    await eventually(lambda: service.pay(service.seed()), lambda r: r.status_code == 201)
    return faults


@pytest.mark.parametrize("how", ["expires", "released"])
async def test_a_hold_lost_during_the_charge_is_refunded_and_frees_the_order(fresh, how):
    faults, service = fresh, fresh.service
    order = service.seed(reservation=True, reservation_ttl_s=600)
    hold = Keys(service.settings.key_prefix).reservation(order["reservationId"], order["orderId"])
    in_flight = await charging(service, order)

    # The hold runs out (its expiry moved to now) or is released while the card is charged.
    if how == "expires":
        service.redis.hset(hold, "expiresAt", iso_utc(datetime.now(UTC)))
    else:
        service.redis.hset(hold, "status", "released")

    body = assert_problem(await in_flight, 409, "reservation_expired_during_payment")
    payment, refund = body["payment"], body["refund"]
    assert (payment["status"], payment["amountRefunded"], payment["refunded"]) == (
        "succeeded", order["amount"], True,
    )  # fmt: skip
    assert (refund["paymentId"], refund["reason"], refund["status"], refund["amount"]) == (
        payment["paymentId"], "reservation_expired", "succeeded", order["amount"],
    )  # fmt: skip
    assert (service.charges(order["orderId"]), service.refunds_made(order["orderId"])) == (1, 1)

    async with consuming(faults.broker.url, service.settings.topics()) as log:
        found = await log.wait_for(order["orderId"], 2)
        kinds = sorted(m["value"]["eventType"] for m in found)
        assert kinds == ["payment-succeeded", "refund-succeeded"]

    # The order was released: with the lost hold it is refused, with a fresh one it pays.
    assert_problem(await service.pay(order), 409, "reservation_inactive")
    service.redis.hset(
        hold,
        mapping={
            "status": "active",
            "expiresAt": iso_utc(datetime.now(UTC) + timedelta(minutes=10)),
        },
    )
    again = await service.pay(order)
    assert again.status_code == 201, again.text
    assert again.json()["paymentId"] != payment["paymentId"]
    assert service.charges(order["orderId"]) == 2
