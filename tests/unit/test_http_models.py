"""The HTTP contract's payment object (deployments/models.py): exactly DESIGN.md's fields,
and ``payment_body`` (the hot path's hand-built dict) the same as ``PaymentOut``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from deployments.models import PaymentOut, RefundBody, RefundOut, payment_body, refund_body
from raypay.domain.model import Payment, PaymentRequest
from raypay.domain.money import Money
from raypay.domain.refunds import Refund, RefundReason, RefundRequest

pytestmark = pytest.mark.unit

USD_25 = Money(2500, "USD")
NOW = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)
PAYMENT_OBJECT_KEYS = (
    "paymentId orderId customerId reservationId amount currency paymentMethod status "
    "transactionId errorCode errorMessage createdAt processedAt isSimulated amountRefunded "
    "refunded"
).split()


def a_pending_payment(amount: Money = USD_25, at: datetime = NOW) -> Payment:
    request = PaymentRequest("ord_1", "cus_1", amount, "pm_card_visa", "res_1")
    return Payment.start(request, "pay_1", at)


def test_it_has_exactly_the_camelcase_fields_of_the_contract():
    assert sorted(payment_body(a_pending_payment())) == sorted(PAYMENT_OBJECT_KEYS)


def test_it_is_what_the_documented_model_says():
    aliases = [field.alias for field in PaymentOut.model_fields.values()]
    assert sorted(aliases) == sorted(PAYMENT_OBJECT_KEYS)
    for payment in (
        a_pending_payment(),
        a_pending_payment().succeed("txn_9", NOW, simulated=True),
        a_pending_payment().fail("card_declined", "Declined", NOW),
    ):
        body = payment_body(payment)
        assert PaymentOut.model_validate(body).model_dump(by_alias=True) == body


def test_a_pending_payment():
    assert payment_body(a_pending_payment()) == {
        "paymentId": "pay_1",
        "orderId": "ord_1",
        "customerId": "cus_1",
        "reservationId": "res_1",
        "amount": "25.00",
        "currency": "USD",
        "paymentMethod": "pm_card_visa",
        "status": "pending",
        "transactionId": None,
        "errorCode": None,
        "errorMessage": None,
        "createdAt": "2026-03-14T15:09:26.535Z",
        "processedAt": None,
        "isSimulated": True,
        "amountRefunded": "0.00",
        "refunded": False,
    }


def test_a_succeeded_payment_has_its_transaction_and_processing_time():
    later = NOW + timedelta(seconds=2)
    body = payment_body(a_pending_payment().succeed("txn_9", later, simulated=True))
    assert (body["status"], body["transactionId"]) == ("succeeded", "txn_9")
    assert body["processedAt"] == "2026-03-14T15:09:28.535Z"


def test_the_amount_is_a_decimal_string_with_the_currency_decimals():
    jpy = payment_body(a_pending_payment(Money(1500, "JPY")))
    kwd = payment_body(a_pending_payment(Money(1230, "KWD")))
    assert (jpy["amount"], jpy["currency"]) == ("1500", "JPY")
    assert (kwd["amount"], kwd["currency"]) == ("1.230", "KWD")


def test_times_are_iso_utc_with_milliseconds_and_z():
    body = payment_body(a_pending_payment(at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)))
    assert body["createdAt"] == "2026-01-02T03:04:05.000Z"


def test_a_refunded_payment_shows_what_was_paid_back_and_keeps_its_status():
    paid = a_pending_payment().succeed("txn_9", NOW, simulated=True)
    part = payment_body(replace(paid, amount_refunded_minor=1000))
    full = payment_body(replace(paid, amount_refunded_minor=2500))
    assert (part["status"], part["amountRefunded"], part["refunded"]) == (
        "succeeded",
        "10.00",
        False,
    )
    assert (full["status"], full["amountRefunded"], full["refunded"]) == (
        "succeeded",
        "25.00",
        True,
    )


REFUND_OBJECT_KEYS = (
    "refundId paymentId orderId amount currency reason status gatewayRefundId errorCode "
    "errorMessage metadata createdAt processedAt"
).split()


def a_pending_refund() -> Refund:
    paid = a_pending_payment().succeed("txn_9", NOW, simulated=True)
    request = RefundRequest("pay_1", RefundReason.EVENT_CANCELLED, metadata={"event": "ev_1"})
    return Refund.start(request, paid, "re_1", Money(1000, "USD"), NOW)


def test_the_refund_object_is_what_the_documented_model_says():
    aliases = [field.alias for field in RefundOut.model_fields.values()]
    assert sorted(aliases) == sorted(REFUND_OBJECT_KEYS)
    for refund in (
        a_pending_refund(),
        a_pending_refund().succeed("gre_1", NOW),
        a_pending_refund().fail("expired_or_canceled_card", "Closed", NOW),
    ):
        body = refund_body(refund)
        assert sorted(body) == sorted(REFUND_OBJECT_KEYS)
        assert RefundOut.model_validate(body).model_dump(by_alias=True) == body
    assert refund_body(a_pending_refund())["amount"] == "10.00"


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "event_cancelled", "amount": None},
        {"reason": "duplicate", "amount": "10.00", "metadata": {"ticket": "T-1"}},
        {"reason": "fraudulent", "amount": 7},
    ],
)
def test_a_refund_body_the_contract_allows(body):
    request = RefundBody.model_validate(body).to_domain("pay_1", "req-1")
    assert (request.payment_id, request.reason.value) == ("pay_1", body["reason"])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reason": "because"},
        {"reason": "duplicate", "amount": "-1"},
        {"reason": "duplicate", "amount": "0"},
        {"reason": "duplicate", "amount": -1.5},
        {"reason": "duplicate", "amount": 0},
        {"reason": "duplicate", "amount": 1e24},
        {"reason": "duplicate", "amount": "1e3"},
        {"reason": "duplicate", "extra": 1},
        {"reason": "duplicate", "metadata": {"bad key": "x"}},
        {"reason": "duplicate", "metadata": {f"k{n}": "x" for n in range(21)}},
        {"reason": "duplicate", "metadata": {"note": "4242 4242 4242 4242"}},
    ],
)
def test_a_refund_body_the_contract_refuses(body):
    with pytest.raises(ValidationError):
        RefundBody.model_validate(body)


def test_a_refund_amount_may_be_a_json_number_as_a_payment_amount_may():
    """DESIGN.md: an amount is a decimal as string or number (the payment body agrees);
    its decimal places are checked against the payment's currency later."""
    assert RefundBody.model_validate({"reason": "duplicate", "amount": 1.5}).amount == Decimal(
        "1.5"
    )
