"""The HTTP contract's payment object (deployments/models.py): exactly DESIGN.md's fields,
and ``payment_body`` (the hot path's hand-built dict) the same as ``PaymentOut``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deployments.models import PaymentOut, payment_body
from raypay.domain.model import Payment, PaymentRequest
from raypay.domain.money import Money

pytestmark = pytest.mark.unit

USD_25 = Money(2500, "USD")
NOW = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)
PAYMENT_OBJECT_KEYS = (
    "paymentId orderId customerId reservationId amount currency paymentMethod status "
    "transactionId errorCode errorMessage createdAt processedAt isSimulated"
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
