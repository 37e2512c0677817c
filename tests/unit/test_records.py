"""Storage records (raypay.adapters.records): the hash fields stored data already has,
and a round trip for every payment state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from raypay.adapters.records import (
    from_record,
    order_from_record,
    order_record,
    refund_from_record,
    refund_record,
    reservation_from_record,
    reservation_record,
    to_record,
)
from raypay.domain.model import Order, Payment, PaymentRequest, Reservation
from raypay.domain.money import Money
from raypay.domain.refunds import Refund, RefundReason, RefundRequest

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)


def a_pending_payment(reservation: str | None = "res_1") -> Payment:
    request = PaymentRequest("ord_1", "cus_1", Money(1230, "KWD"), "pm_card_visa", reservation)
    return Payment.start(request, "pay_1", NOW)


def test_a_payment_record_keeps_the_stored_field_names_and_minor_units():
    assert to_record(a_pending_payment()) == {
        "paymentId": "pay_1",
        "orderId": "ord_1",
        "customerId": "cus_1",
        "reservationId": "res_1",
        "amountMinor": "1230",
        "currency": "KWD",
        "paymentMethod": "pm_card_visa",
        "status": "pending",
        "transactionId": "",
        "errorCode": "",
        "errorMessage": "",
        "createdAt": "2026-03-14T15:09:26.535Z",
        "processedAt": "",
        "isSimulated": "1",
        "amountRefundedMinor": "0",
    }


@pytest.mark.parametrize(
    "payment",
    [
        a_pending_payment(),
        a_pending_payment(reservation=None).succeed("txn_1", NOW, simulated=False),
        a_pending_payment().fail("insufficient_funds", "Not enough", NOW),
    ],
)
def test_every_payment_state_survives_a_round_trip(payment):
    assert from_record(to_record(payment)) == payment


def test_orders_and_reservations_in_the_upstream_formats():
    order = Order("ord_1", "cus_1", Money(2500, "USD"), "pending_payment")
    fields = order_record("cus_1", Money(2500, "USD"), "pending_payment")
    assert fields == {
        "customerId": "cus_1",
        "amountMinor": "2500",
        "currency": "USD",
        "status": "pending_payment",
    }
    assert order_from_record("ord_1", fields) == order
    fields = reservation_record("ord_1", "cus_1", "active", NOW)
    assert fields["expiresAt"] == "2026-03-14T15:09:26.535Z"
    assert reservation_from_record("res_1", fields) == Reservation(
        "res_1", "ord_1", "cus_1", "active", NOW
    )


def a_pending_refund() -> Refund:
    payment = a_pending_payment().succeed("txn_1", NOW, simulated=True)
    request = RefundRequest("pay_1", RefundReason.DUPLICATE, metadata={"ticket": "T-1"})
    return Refund.start(request, payment, "re_1", Money(230, "KWD"), NOW)


def test_a_refund_record_has_minor_units_and_its_metadata_as_json():
    assert refund_record(a_pending_refund()) == {
        "refundId": "re_1",
        "paymentId": "pay_1",
        "orderId": "ord_1",
        "customerId": "cus_1",
        "amountMinor": "230",
        "currency": "KWD",
        "reason": "duplicate",
        "status": "pending",
        "metadata": '{"ticket":"T-1"}',
        "gatewayRefundId": "",
        "errorCode": "",
        "errorMessage": "",
        "createdAt": "2026-03-14T15:09:26.535Z",
        "processedAt": "",
    }


@pytest.mark.parametrize(
    "refund",
    [
        a_pending_refund(),
        a_pending_refund().succeed("gre_1", NOW),
        a_pending_refund().fail("expired_or_canceled_card", "Closed", NOW),
    ],
)
def test_every_refund_state_survives_a_round_trip(refund):
    assert refund_from_record(refund_record(refund)) == refund


def test_a_payment_keeps_its_refunded_amount_and_older_records_have_none():
    paid = replace(a_pending_payment().succeed("txn_1", NOW, True), amount_refunded_minor=1230)
    assert from_record(to_record(paid)) == paid and paid.refunded
    older = {k: v for k, v in to_record(paid).items() if k != "amountRefundedMinor"}
    assert from_record(older).amount_refunded_minor == 0
