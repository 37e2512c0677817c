"""Idempotency-Keys (raypay.domain.idempotency.pay_once) over the Redis store that keeps
their outcomes (raypay.adapters.idempotency_store), on fakeredis."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from raypay.adapters.idempotency_store import RedisIdempotency
from raypay.domain.errors import (
    IdempotencyKeyReused,
    OrderNotFound,
    PaymentDeclined,
    RefundDeclined,
)
from raypay.domain.idempotency import fingerprint, pay_once, refund_once
from raypay.domain.money import Money
from raypay.domain.outcomes import Outcome
from raypay.domain.refunds import RefundReason, RefundRequest

from .fakes import a_checkout, a_request

pytestmark = pytest.mark.unit


@pytest.fixture
def store(redis, keys) -> RedisIdempotency:
    return RedisIdempotency(redis, keys, ttl_s=60)


async def test_a_new_payment_is_stored_and_given_again_for_its_key(store, redis):
    world = a_checkout()
    first = await pay_once(a_request(), world.deps, store, "key-1")
    again = await pay_once(a_request(request_id="retry"), world.deps, store, "key-1")

    assert (first.replayed, first.key_replay, first.error) == (False, False, None)
    assert again == Outcome(first.payment, key_replay=True)
    assert len(world.gateway.calls) == 1
    assert 0 < await redis.ttl("raypay:idem:key-1") <= 60


async def test_the_same_key_with_another_request_is_refused(store):
    world = a_checkout()
    await pay_once(a_request(), world.deps, store, "key-1")
    with pytest.raises(IdempotencyKeyReused):
        await pay_once(a_request(amount=Money(1, "USD")), world.deps, store, "key-1")


async def test_a_decline_is_final_and_given_again_with_its_failed_payment(store):
    world = a_checkout()
    world.gateway.decline_next("insufficient_funds", "Not enough")
    first = await pay_once(a_request(), world.deps, store, "key-2")
    again = await pay_once(a_request(), world.deps, store, "key-2")

    assert isinstance(first.error, PaymentDeclined)
    assert first.payment is not None and first.error.payment == first.payment
    assert again.key_replay and again.payment == first.payment
    assert isinstance(again.error, PaymentDeclined)
    assert (again.error.decline_code, again.error.detail) == ("insufficient_funds", "Not enough")
    assert len(world.gateway.calls) == 1


async def test_a_refusal_is_stored_as_its_error_class(store):
    world = a_checkout()
    first = await pay_once(a_request(order_id="ord_x"), world.deps, store, "key-3")
    again = await pay_once(a_request(order_id="ord_x"), world.deps, store, "key-3")
    assert type(first.error) is type(again.error) is OrderNotFound
    assert again.error.detail == first.error.detail and again.key_replay


async def test_without_a_key_nothing_is_stored(store, redis):
    await pay_once(a_request(), a_checkout().deps, store)
    assert await redis.keys("raypay:idem:*") == []


LEGACY_PAYMENT = {
    "paymentId": "pay_1", "orderId": "ord_1", "customerId": "cus_1", "reservationId": None,
    "amount": "40.00", "currency": "USD", "paymentMethod": "pm_card_visa", "status": "failed",
    "transactionId": None, "errorCode": "card_declined", "errorMessage": "Declined",
    "createdAt": "2026-05-01T12:00:00.000Z", "processedAt": "2026-05-01T12:00:01.000Z",
    "isSimulated": True,
}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (201, {**LEGACY_PAYMENT, "status": "succeeded", "errorCode": None}, None),
        (200, {**LEGACY_PAYMENT, "status": "succeeded", "errorCode": None}, None),
        (402, {"code": "card_declined", "detail": "Declined", "payment": LEGACY_PAYMENT},
         PaymentDeclined),
        (404, {"code": "order_not_found", "detail": "order ord_1 not found"}, OrderNotFound),
    ],
)  # fmt: skip
async def test_records_stored_before_this_format_are_still_read(store, redis, status, body, kind):
    digest = fingerprint(a_request())
    record = {"status": status, "body": {"status": status, **body}, "fingerprint": digest}
    await redis.set("raypay:idem:old", json.dumps(record))

    stored_digest, outcome = await store.get("old")

    assert stored_digest == digest
    assert type(outcome.error) is kind if kind else outcome.error is None
    assert outcome.replayed is (status == 200)
    if status != 404:
        assert outcome.payment is not None
        assert (outcome.payment.payment_id, str(outcome.payment.amount)) == ("pay_1", "40.00")


async def test_a_refund_outcome_is_stored_with_its_refund_and_payment(store):
    world = a_checkout()
    paid = (await pay_once(a_request(), world.deps, store)).payment
    request = RefundRequest(paid.payment_id, RefundReason.REQUESTED_BY_CUSTOMER, Decimal("5"))
    first = await refund_once(request, world.deps, store, "key-r")

    _, again = await store.get("key-r")

    assert again == first and again.refund.status.value == "succeeded"
    assert again.payment.amount_refunded_minor == 500


async def test_a_declined_refund_is_stored_as_its_error_with_the_failed_refund(store):
    world = a_checkout()
    paid = (await pay_once(a_request(), world.deps, store)).payment
    world.gateway.decline_next_refund("expired_or_canceled_card", "Closed")
    request = RefundRequest(paid.payment_id, RefundReason.REQUESTED_BY_CUSTOMER)
    first = await refund_once(request, world.deps, store, "key-d")

    _, again = await store.get("key-d")

    assert isinstance(again.error, RefundDeclined) and again.error.refund == first.refund
    assert again.refund == first.refund and again.refund.error_code == "expired_or_canceled_card"
