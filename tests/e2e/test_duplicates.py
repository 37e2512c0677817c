"""Duplicates and retries: an order is charged once, recorded once, announced once."""

from __future__ import annotations

import asyncio

import pytest
from raystack import after_a_later_event

pytestmark = pytest.mark.e2e

DOCUMENTED = {200, 201, 402, 409, 503}


async def test_fifty_concurrent_requests_for_one_order_charge_once(service, events):
    order = service.seed()
    responses = await asyncio.gather(*(service.pay(order) for _ in range(50)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= DOCUMENTED, statuses
    assert statuses.count(201) == 1
    paid = {r.json()["paymentId"] for r in responses if r.status_code in (200, 201)}
    assert len(paid) == 1
    assert service.charges(order["orderId"]) == 1
    listed = (await service.http.get(f"/v1/orders/{order['orderId']}/payments")).json()
    assert [p["status"] for p in listed["payments"]] == ["succeeded"]
    [event] = await events.wait_for(order["orderId"], 1)
    delivered = await after_a_later_event(service, events)
    assert events.for_order(order["orderId"]) == [event]
    assert [e["eventId"] for e in delivered if e["key"] == order["orderId"]] == [
        event["value"]["eventId"]
    ]


async def test_retry_after_success_replays_without_charge_or_event(service, events):
    order = service.seed()
    first = await service.pay(order)
    await events.wait_for(order["orderId"], 1)
    retry = await service.pay(order)
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json()["paymentId"] == first.json()["paymentId"]
    assert service.charges(order["orderId"]) == 1
    probe = service.seed()
    await service.pay(probe)
    await events.wait_for(probe["orderId"], 1)
    assert len(events.for_order(order["orderId"])) == 1


async def test_declined_payment_can_be_retried_and_succeed(service, events):
    order = service.seed()
    declined = await service.pay(order, paymentMethod="pm_card_chargeDeclined")
    assert declined.status_code == 402
    retried = await service.pay(order, paymentMethod="pm_card_visa")
    assert retried.status_code == 201
    listed = (await service.http.get(f"/v1/orders/{order['orderId']}/payments")).json()
    assert [p["status"] for p in listed["payments"]] == ["failed", "succeeded"]
    assert service.charges(order["orderId"]) == 2
    found = await events.wait_for(order["orderId"], 2)
    # Two topics: Kafka orders within a partition, not across topics; occurredAt does.
    in_time = sorted(found, key=lambda m: m["value"]["occurredAt"])
    assert [m["value"]["eventType"] for m in in_time] == ["payment-failed", "payment-succeeded"]
