"""Refunds through HTTP on the real stack, and their events read back from the broker:
every row of the README's refund table."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from raystack import after_a_later_event, assert_problem, assert_valid, payment_body

pytestmark = pytest.mark.e2e


async def paid(service, amount: str = "40.00", method: str = "pm_card_visa") -> dict:
    """A seeded order paid with ``method``; its payment object."""
    response = await service.pay(service.seed(amount=amount), paymentMethod=method)
    assert response.status_code == 201, response.text
    return response.json()


def refund_events(events, order_id: str) -> list[dict]:
    return [m for m in events.for_order(order_id) if m["value"]["eventType"].startswith("refund")]


async def test_a_full_refund_is_201_and_the_payment_shows_it(service, events):
    payment = await paid(service, "25.00")

    response = await service.refund(payment["paymentId"], "event_cancelled", metadata={"e": "1"})

    assert response.status_code == 201, response.text
    refund = response.json()
    assert refund["refundId"].startswith("re_") and refund["gatewayRefundId"]
    assert (refund["paymentId"], refund["orderId"], refund["amount"], refund["currency"]) == (
        payment["paymentId"], payment["orderId"], "25.00", "USD",
    )  # fmt: skip
    assert (refund["status"], refund["reason"], refund["metadata"]) == (
        "succeeded", "event_cancelled", {"e": "1"},
    )  # fmt: skip
    assert (await service.http.get(f"/v1/refunds/{refund['refundId']}")).json() == refund
    listed = (await service.http.get(f"/v1/payments/{payment['paymentId']}/refunds")).json()
    assert listed == {"paymentId": payment["paymentId"], "refunds": [refund]}
    now = (await service.http.get(f"/v1/payments/{payment['paymentId']}")).json()
    assert (now["status"], now["amountRefunded"], now["refunded"]) == ("succeeded", "25.00", True)
    assert service.refunds_made(payment["orderId"]) == 1

    [message] = await events.wait_for_refunds([refund["refundId"]])
    assert message["topic"] == service.settings.topic_refund_succeeded
    assert message["key"] == payment["orderId"]
    assert message["headers"]["eventId"].decode() == message["value"]["eventId"]
    assert (message["value"]["paymentAmountRefunded"], message["value"]["paymentRefunded"]) == (
        "25.00", True,
    )  # fmt: skip
    assert_valid(message)


async def test_partial_refunds_add_up_and_one_more_cent_is_422(service):
    payment = await paid(service, "40.00")
    pid = payment["paymentId"]

    amounts = [(await service.refund(pid, amount=a)).json()["amount"] for a in ("10", "25.50")]
    rest = await service.refund(pid)  # no amount: all that is left
    over = await service.refund(pid, amount="0.01")

    assert amounts == ["10.00", "25.50"] and rest.json()["amount"] == "4.50"
    body = assert_problem(over, 422, "refund_exceeds_payment")
    assert (body["amountRefundable"], body["currency"]) == ("0.00", "USD")
    now = (await service.http.get(f"/v1/payments/{pid}")).json()
    assert (now["amountRefunded"], now["refunded"]) == ("40.00", True)


async def test_twenty_concurrent_partial_refunds_never_sum_above_the_charge(service, events):
    payment = await paid(service, "40.00")
    pid, order_id = payment["paymentId"], payment["orderId"]

    # 20 x 3.00 = 60.00 asked for a 40.00 charge, all at once.
    answers = await asyncio.gather(*(service.refund(pid, amount="3.00") for _ in range(20)))

    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 13 + [422] * 7, [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 422):
        assert_problem(refused, 422, "refund_exceeds_payment")
    refunds = (await service.http.get(f"/v1/payments/{pid}/refunds")).json()["refunds"]
    total = sum(Decimal(r["amount"]) for r in refunds if r["status"] == "succeeded")
    assert (len(refunds), total) == (13, Decimal("39.00"))
    now = (await service.http.get(f"/v1/payments/{pid}")).json()
    assert (now["amountRefunded"], now["refunded"]) == ("39.00", False)
    assert service.refunds_made(order_id) == 13

    # On the broker: one refund-succeeded per refund, whatever else is still coming.
    await events.wait_for_refunds([r["refundId"] for r in refunds])
    await after_a_later_event(service, events)
    published = refund_events(events, order_id)
    assert sorted(m["value"]["refundId"] for m in published) == sorted(
        r["refundId"] for r in refunds
    )
    assert max(Decimal(m["value"]["paymentAmountRefunded"]) for m in published) == total


async def test_a_payment_that_did_not_succeed_is_409_and_an_unknown_one_404(service):
    order = service.seed()
    declined = await service.pay(order, paymentMethod="pm_card_chargeDeclined")
    failed_id = declined.json()["payment"]["paymentId"]

    assert_problem(await service.refund(failed_id), 409, "payment_not_refundable")
    assert_problem(await service.refund("pay_nope"), 404, "payment_not_found")
    assert_problem(await service.http.get("/v1/refunds/re_nope"), 404, "refund_not_found")
    missing = await service.http.get("/v1/payments/pay_nope/refunds")
    assert_problem(missing, 404, "payment_not_found")
    assert service.refunds_made(order["orderId"]) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "because"}, "reason"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "1.001"}, "amount"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_an_invalid_refund_body_is_422_naming_the_field(service, body, field):
    payment = await paid(service, "10.00")
    body = assert_problem(
        await service.refund(payment["paymentId"], **body), 422, "validation_error"
    )
    assert any(error["field"] == field for error in body["errors"]), body


async def test_a_declined_refund_is_402_with_the_failed_refund_and_its_event(service, events):
    payment = await paid(service, "30.00", "pm_card_refundDeclined")

    body = assert_problem(await service.refund(payment["paymentId"]), 402, "refund_declined")

    failed = body["refund"]
    assert (failed["status"], failed["errorCode"], failed["amount"]) == (
        "failed", "expired_or_canceled_card", "30.00",
    )  # fmt: skip
    [message] = await events.wait_for_refunds([failed["refundId"]])
    assert message["topic"] == service.settings.topic_refund_failed
    assert message["value"]["errorCode"] == "expired_or_canceled_card"
    assert_valid(message)
    now = (await service.http.get(f"/v1/payments/{payment['paymentId']}")).json()
    assert (now["amountRefunded"], now["refunded"]) == ("0.00", False)


async def test_a_silent_gateway_is_503_and_the_retry_with_its_key_refunds_once(service, events):
    payment = await paid(service, "20.00", "pm_card_refundTimeout")
    key = {"Idempotency-Key": uuid.uuid4().hex}

    first = await service.refund(payment["paymentId"], headers=key)

    assert_problem(first, 503, "unavailable")
    assert int(first.headers["Retry-After"]) >= 1
    [pending] = (await service.http.get(f"/v1/payments/{payment['paymentId']}/refunds")).json()[
        "refunds"
    ]
    assert pending["status"] == "pending"
    retry = await service.refund(payment["paymentId"], headers=key)
    assert retry.status_code == 201, retry.text
    assert (retry.json()["refundId"], retry.json()["status"]) == (pending["refundId"], "succeeded")
    assert service.refunds_made(payment["orderId"]) == 1
    await events.wait_for_refunds([pending["refundId"]])


async def test_the_same_key_replays_the_refund_and_another_body_is_422(service):
    payment = await paid(service, "20.00")
    key = {"Idempotency-Key": uuid.uuid4().hex}

    first = await service.refund(payment["paymentId"], amount="5.00", headers=key)
    again = await service.refund(payment["paymentId"], amount="5.00", headers=key)
    other = await service.refund(payment["paymentId"], amount="6.00", headers=key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert_problem(other, 422, "idempotency_key_reused")
    assert service.refunds_made(payment["orderId"]) == 1


async def test_refunds_need_the_refunds_role_not_checkout(service):
    payment = await paid(service, "10.00")
    pid = payment["paymentId"]
    checkout, refunds = service.create_key("checkout"), service.create_key("refunds")
    async with service.caller(checkout) as shop, service.caller(refunds) as office:
        for call in (
            shop.post(f"/v1/payments/{pid}/refunds", json={"reason": "duplicate"}),
            shop.get(f"/v1/payments/{pid}/refunds"),
            shop.get("/v1/refunds/re_nope"),
        ):
            assert_problem(await call, 403, "forbidden")
        made = await office.post(f"/v1/payments/{pid}/refunds", json={"reason": "duplicate"})
        assert made.status_code == 201, made.text
        assert (await office.get(f"/v1/payments/{pid}")).json()["refunded"] is True
        listed = await office.get(f"/v1/payments/{pid}/refunds")
        assert [r["refundId"] for r in listed.json()["refunds"]] == [made.json()["refundId"]]
        order = service.seed()
        denied = await office.post("/v1/payments", json=payment_body(order))
        assert_problem(denied, 403, "forbidden")
    assert service.refunds_made(payment["orderId"]) == 1
