"""The events each outcome publishes, read back from the broker by a real consumer, and
checked against the JSON Schemas consumers read (schemas/events/)."""

from __future__ import annotations

import pytest
from raystack import assert_valid

pytestmark = pytest.mark.e2e


COMMON = {
    "eventId",
    "eventType",
    "occurredAt",
    "schemaVersion",
    "paymentId",
    "orderId",
    "customerId",
    "amount",
    "currency",
    "status",
}


async def test_succeeded_payment_publishes_payment_succeeded_keyed_by_order(service, events):
    order = service.seed(amount="10.00")
    payment = (await service.pay(order)).json()
    [message] = await events.wait_for(order["orderId"], 1)
    assert message["topic"] == service.settings.topic_succeeded
    event = message["value"]
    assert COMMON | {"transactionId", "processedAt"} <= event.keys()
    assert event["eventType"] == "payment-succeeded"
    assert (event["paymentId"], event["amount"], event["transactionId"]) == (
        payment["paymentId"],
        "10.00",
        payment["transactionId"],
    )
    assert message["headers"]["eventId"].decode() == event["eventId"]
    assert_valid(message)


async def test_declined_payment_publishes_payment_failed(service, events):
    order = service.seed()
    response = await service.pay(order, paymentMethod="pm_card_chargeDeclinedInsufficientFunds")
    assert response.status_code == 402
    [message] = await events.wait_for(order["orderId"], 1)
    assert message["topic"] == service.settings.topic_failed
    event = message["value"]
    assert COMMON | {"errorCode", "errorMessage", "failureReason", "attemptedAt"} <= event.keys()
    assert event["eventType"] == "payment-failed"
    assert event["errorCode"] == event["failureReason"] == "insufficient_funds"
    assert event["paymentId"] == response.json()["payment"]["paymentId"]
    assert_valid(message)


async def test_rejected_request_publishes_nothing(service, events):
    order = service.seed(status="cancelled")
    assert (await service.pay(order)).status_code == 409
    paid = service.seed()
    assert (await service.pay(paid)).status_code == 201
    await events.wait_for(paid["orderId"], 1)  # later events have arrived by now
    assert events.for_order(order["orderId"]) == []


async def test_every_event_on_the_broker_validates_against_its_schema(service, events):
    methods = ["pm_card_visa", "pm_card_chargeDeclined", "pm_card_chargeDeclinedFraudulent"]
    orders = [service.seed(currency="JPY", amount="1500") for _ in methods]
    for order, method in zip(orders, methods, strict=True):
        assert (await service.pay(order, paymentMethod=method)).status_code in (201, 402)
    for order in orders:
        await events.wait_for(order["orderId"], 1)
    # Every event this session's consumer has seen, from these tests and the ones before.
    assert len(events.messages) >= len(orders)
    for message in events.messages:
        assert_valid(message)


async def test_an_orders_events_are_numbered_in_order_across_its_topics(service, events):
    order = service.seed(amount="30.00")
    declined = await service.pay(order, paymentMethod="pm_card_chargeDeclined")
    assert declined.status_code == 402
    paid = await service.pay(order)
    assert paid.status_code == 201
    refund = await service.refund(paid.json()["paymentId"], amount="10.00")
    assert refund.status_code == 201, refund.text
    found = await events.wait_for(order["orderId"], 3)
    numbered = sorted((m["value"]["sequence"], m["value"]["eventType"]) for m in found)
    assert numbered == [(1, "payment-failed"), (2, "payment-succeeded"), (3, "refund-succeeded")]
    for message in found:
        assert_valid(message)
