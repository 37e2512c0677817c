"""Refunds under faults, on the fault stack (its simulated gateway takes 300 ms, its sweep
runs after 3 s): a refund is paid back at most once, and one left pending is settled."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import ray
from raystack import after_a_later_event, consuming, eventually

from raypay.adapters.keys import Keys

pytestmark = pytest.mark.integration


async def paid(service, method: str = "pm_card_visa") -> dict:
    response = await eventually(
        lambda: service.pay(service.seed(amount="30.00"), paymentMethod=method),
        lambda r: r.status_code < 500,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def refunds_of(service, payment_id: str) -> list[dict]:
    return (await service.http.get(f"/v1/payments/{payment_id}/refunds")).json()["refunds"]


async def exactly_one_refund_event(faults, order_id: str, refund_id: str) -> None:
    """On the broker, the order has one refund event, that refund's (asserted after a
    later order's event, so a duplicate would have arrived by then)."""
    service = faults.service
    async with consuming(faults.broker.url, service.settings.topics()) as log:
        await eventually(
            lambda: [m for m in log.for_order(order_id) if m["value"].get("refundId")], bool
        )
        await after_a_later_event(service, log)
        found = [
            m["value"]["refundId"] for m in log.for_order(order_id) if "refundId" in m["value"]
        ]
        assert found == [refund_id]


async def test_shard_killed_mid_refund_then_retry_with_its_key_refunds_once(faults):
    service = faults.service
    payment = await paid(service)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    in_flight = asyncio.ensure_future(service.refund(payment["paymentId"], headers=key))
    # Until the refund is pending in Redis (its 300 ms gateway call in flight), read every
    # 5 ms: over HTTP, a busy machine can miss the window.
    begun = Keys(service.settings.key_prefix).payment_refunds(payment["paymentId"])
    deadline = asyncio.get_running_loop().time() + 5
    while not service.redis.llen(begun):
        assert asyncio.get_running_loop().time() < deadline, "the refund never was pending"
        await asyncio.sleep(0.005)

    ray.kill(faults.shard_of(payment["orderId"]), no_restart=False)

    first = await in_flight
    assert first.status_code == 503, first.text
    final = await eventually(
        lambda: service.refund(payment["paymentId"], headers=key), lambda r: r.status_code < 500
    )
    assert final.status_code == 201, final.text
    [refund] = await refunds_of(service, payment["paymentId"])
    assert (refund["refundId"], refund["status"]) == (final.json()["refundId"], "succeeded")
    assert service.refunds_made(payment["orderId"]) == 1
    await exactly_one_refund_event(faults, payment["orderId"], refund["refundId"])


async def test_a_refund_left_pending_by_a_silent_gateway_is_settled_by_the_sweep(faults):
    service = faults.service
    payment = await paid(service, "pm_card_refundTimeout")

    first = await service.refund(payment["paymentId"])  # no key: only the sweep settles it

    assert first.status_code == 503, first.text
    [refund] = await eventually(
        lambda: refunds_of(service, payment["paymentId"]),
        lambda found: [r["status"] for r in found] == ["succeeded"],
        within=30,
    )
    assert service.refunds_made(payment["orderId"]) == 1
    now = (await service.http.get(f"/v1/payments/{payment['paymentId']}")).json()
    assert (now["amountRefunded"], now["refunded"]) == ("30.00", True)
    await exactly_one_refund_event(faults, payment["orderId"], refund["refundId"])
