"""Domain rules: order and reservation checks, payment transitions, the payment object and
event shapes of DESIGN.md, the orderId -> shard hash, and the error hierarchy."""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from raypay.domain import errors
from raypay.domain.events import FAILED, SCHEMA_VERSION, SUCCEEDED, event_for
from raypay.domain.model import (
    Order,
    Payment,
    PaymentRequest,
    PaymentStatus,
    Reservation,
    check_order,
    check_reservation,
)
from raypay.domain.money import Money
from raypay.domain.sharding import shard_for

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)
USD_25 = Money(2500, "USD")


def a_request(**changes) -> PaymentRequest:
    return replace(PaymentRequest("ord_1", "cus_1", USD_25, "pm_card_visa", "res_1"), **changes)


def an_order(**changes) -> Order:
    return replace(Order("ord_1", "cus_1", USD_25, "pending_payment"), **changes)


def a_reservation(**changes) -> Reservation:
    expires_at = NOW + timedelta(minutes=10)
    return replace(Reservation("res_1", "ord_1", "cus_1", "active", expires_at), **changes)


def a_pending_payment() -> Payment:
    return Payment.start(a_request(), "pay_1", NOW)


class TestCheckOrder:
    def test_a_payable_order_of_the_customer_with_the_same_amount_passes(self):
        order = an_order()
        assert check_order(order, a_request()) is order

    def test_a_missing_order_is_not_found(self):
        with pytest.raises(errors.OrderNotFound):
            check_order(None, a_request())

    def test_another_customers_order_is_reported_as_not_found(self):
        with pytest.raises(errors.OrderNotFound):
            check_order(an_order(customer_id="cus_other"), a_request())

    @pytest.mark.parametrize("amount", [Money(2499, "USD"), Money(2501, "USD")])
    def test_a_different_amount_is_a_mismatch(self, amount):
        with pytest.raises(errors.AmountMismatch):
            check_order(an_order(), a_request(amount=amount))

    def test_a_different_currency_is_a_mismatch(self):
        with pytest.raises(errors.AmountMismatch):
            check_order(an_order(), a_request(amount=Money(2500, "EUR")))

    @pytest.mark.parametrize("status", ["cancelled", "expired", "paid"])
    def test_an_order_that_is_not_pending_payment_is_not_payable(self, status):
        with pytest.raises(errors.OrderNotPayable, match=status):
            check_order(an_order(status=status), a_request())


class TestCheckReservation:
    def test_an_active_reservation_of_the_customer_and_order_passes(self):
        reservation = a_reservation()
        assert check_reservation(reservation, a_request(), NOW) is reservation

    @pytest.mark.parametrize(
        "reservation",
        [None, a_reservation(customer_id="cus_other"), a_reservation(order_id="ord_other")],
        ids=["missing", "other-customer", "other-order"],
    )
    def test_a_reservation_that_is_not_this_customers_and_orders_is_not_found(self, reservation):
        with pytest.raises(errors.ReservationNotFound):
            check_reservation(reservation, a_request(), NOW)

    @pytest.mark.parametrize("status", ["released", "expired"])
    def test_a_released_or_expired_reservation_is_inactive(self, status):
        with pytest.raises(errors.ReservationInactive):
            check_reservation(a_reservation(status=status), a_request(), NOW)

    @pytest.mark.parametrize("ago", [timedelta(0), timedelta(seconds=1), timedelta(days=1)])
    def test_an_active_reservation_past_its_expiry_is_inactive(self, ago):
        with pytest.raises(errors.ReservationInactive, match="expired at"):
            check_reservation(a_reservation(expires_at=NOW - ago), a_request(), NOW)


class TestPaymentTransitions:
    def test_a_payment_starts_pending_with_the_request_fields(self):
        payment = a_pending_payment()
        assert (payment.status, payment.created_at, payment.processed_at) == ("pending", NOW, None)
        request = a_request()
        assert (payment.order_id, payment.customer_id) == (request.order_id, request.customer_id)
        assert (payment.amount, payment.reservation_id) == (USD_25, "res_1")

    def test_pending_to_succeeded(self):
        later = NOW + timedelta(seconds=1)
        paid = a_pending_payment().succeed("txn_1", later, simulated=True)
        assert paid.status is PaymentStatus.SUCCEEDED
        assert paid.transaction_id == "txn_1"
        assert paid.processed_at == later
        assert paid.error_code is None

    def test_pending_to_failed(self):
        failed = a_pending_payment().fail("insufficient_funds", "No money", NOW, simulated=False)
        assert failed.status is PaymentStatus.FAILED
        assert (failed.error_code, failed.error_message) == ("insufficient_funds", "No money")
        assert failed.processed_at == NOW
        assert failed.is_simulated is False
        assert failed.transaction_id is None

    @pytest.mark.parametrize(
        "settled",
        [
            a_pending_payment().succeed("txn_1", NOW, simulated=True),
            a_pending_payment().fail("card_declined", "no", NOW),
        ],
        ids=["succeeded", "failed"],
    )
    def test_a_settled_payment_cannot_be_settled_again(self, settled):
        with pytest.raises(ValueError, match="not pending"):
            settled.succeed("txn_2", NOW, simulated=True)
        with pytest.raises(ValueError, match="not pending"):
            settled.fail("card_declined", "no", NOW)


PAYMENT_OBJECT_KEYS = (
    "paymentId orderId customerId reservationId amount currency paymentMethod status "
    "transactionId errorCode errorMessage createdAt processedAt isSimulated"
).split()


class TestPaymentObject:
    def test_it_has_exactly_the_camelcase_fields_of_the_contract(self):
        assert sorted(a_pending_payment().to_api()) == sorted(PAYMENT_OBJECT_KEYS)

    def test_a_pending_payment(self):
        assert a_pending_payment().to_api() == {
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

    def test_a_succeeded_payment_has_its_transaction_and_processing_time(self):
        later = NOW + timedelta(seconds=2)
        api = a_pending_payment().succeed("txn_9", later, simulated=True).to_api()
        assert (api["status"], api["transactionId"]) == ("succeeded", "txn_9")
        assert api["processedAt"] == "2026-03-14T15:09:28.535Z"

    def test_the_amount_is_a_decimal_string_with_the_currency_decimals(self):
        jpy = Payment.start(a_request(amount=Money(1500, "JPY")), "pay_j", NOW).to_api()
        kwd = Payment.start(a_request(amount=Money(1230, "KWD")), "pay_k", NOW).to_api()
        assert (jpy["amount"], jpy["currency"]) == ("1500", "JPY")
        assert (kwd["amount"], kwd["currency"]) == ("1.230", "KWD")

    def test_times_are_iso_utc_with_milliseconds_and_z(self):
        created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        api = Payment.start(a_request(), "pay_1", created).to_api()
        assert api["createdAt"] == "2026-01-02T03:04:05.000Z"


class TestEvents:
    def test_a_succeeded_payment_makes_a_payment_succeeded_event_keyed_by_order(self):
        paid = a_pending_payment().succeed("txn_1", NOW, simulated=True)
        event = event_for(paid, "evt_1", NOW + timedelta(seconds=1))
        assert (event.kind, event.key) == (SUCCEEDED, "ord_1")
        assert event.value == {
            "eventId": "evt_1",
            "eventType": "payment-succeeded",
            "occurredAt": "2026-03-14T15:09:27.535Z",
            "schemaVersion": SCHEMA_VERSION,
            **paid.to_api(),
        }
        assert event.value["transactionId"] == "txn_1"
        assert event.value["processedAt"] == "2026-03-14T15:09:26.535Z"

    def test_a_failed_payment_makes_a_payment_failed_event_with_reason_and_attempt_time(self):
        failed = a_pending_payment().fail("insufficient_funds", "Not enough", NOW)
        event = event_for(failed, "evt_2", NOW)
        assert (event.kind, event.key) == (FAILED, "ord_1")
        value = event.value
        assert value["eventType"] == "payment-failed"
        assert (value["eventId"], value["schemaVersion"]) == ("evt_2", SCHEMA_VERSION)
        assert (value["errorCode"], value["errorMessage"]) == ("insufficient_funds", "Not enough")
        assert value["failureReason"] == "insufficient_funds"
        assert value["attemptedAt"] == value["processedAt"] == "2026-03-14T15:09:26.535Z"
        assert set(PAYMENT_OBJECT_KEYS) <= set(value)

    def test_a_pending_payment_has_no_event(self):
        with pytest.raises(ValueError, match="pending"):
            event_for(a_pending_payment(), "evt_3", NOW)


class TestSharding:
    def test_the_same_key_always_lands_on_the_same_shard(self):
        # Pinned values: blake2b, not Python's per-process salted hash().
        assert shard_for("ord_1", 16) == 7
        assert shard_for("ord_123", 1024) == 625

    @pytest.mark.parametrize("shards", [1, 2, 7, 64])
    def test_the_shard_is_in_range(self, shards):
        assert all(0 <= shard_for(f"ord_{i}", shards) < shards for i in range(500))

    def test_keys_spread_over_all_shards(self):
        counts = Counter(shard_for(f"ord_{i}", 8) for i in range(8000))
        assert set(counts) == set(range(8))
        assert all(800 <= n <= 1200 for n in counts.values()), counts

    def test_zero_shards_is_an_error(self):
        with pytest.raises(ValueError):
            shard_for("ord_1", 0)


ERROR_TABLE = [
    (errors.InvalidRequest, "validation_error", 422),
    (errors.InvalidJson, "invalid_json", 400),
    (errors.OrderNotFound, "order_not_found", 404),
    (errors.ReservationNotFound, "reservation_not_found", 404),
    (errors.PaymentNotFound, "payment_not_found", 404),
    (errors.ReservationInactive, "reservation_inactive", 409),
    (errors.OrderNotPayable, "order_not_payable", 409),
    (errors.AmountMismatch, "amount_mismatch", 422),
    (errors.IdempotencyKeyReused, "idempotency_key_reused", 422),
    (errors.PayloadTooLarge, "payload_too_large", 413),
    (errors.PaymentDeclined, "card_declined", 402),
    (errors.Unavailable, "unavailable", 503),
    (errors.StoreUnavailable, "unavailable", 503),
    (errors.GatewayUnavailable, "unavailable", 503),
    (errors.ShardUnavailable, "unavailable", 503),
]


class TestErrors:
    @pytest.mark.parametrize(("cls", "code", "status"), ERROR_TABLE)
    def test_each_error_has_its_stable_code_and_status(self, cls, code, status):
        error = cls("detail")
        assert (error.code, error.status, errors.problem_code(error)) == (code, status, code)

    @pytest.mark.parametrize(("cls", "code", "status"), ERROR_TABLE)
    def test_only_unavailable_errors_are_retriable(self, cls, code, status):
        assert cls.retriable is (status == 503)
        assert issubclass(cls, errors.Rejected) is (400 <= status < 500 and status != 402)

    @pytest.mark.parametrize(("cls", "code", "status"), ERROR_TABLE)
    def test_errors_survive_a_pickle_round_trip(self, cls, code, status):
        error = cls("order ord_1 not found", {"orderId": "ord_1"})
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls
        assert (copy.detail, copy.extra, str(copy)) == (error.detail, error.extra, str(error))

    def test_a_decline_pickles_with_its_decline_code_and_payment(self):
        error = errors.PaymentDeclined(
            "Your card has insufficient funds.",
            {"payment": {"paymentId": "pay_1", "status": "failed"}},
            decline_code="insufficient_funds",
        )
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is errors.PaymentDeclined
        assert copy.detail == "Your card has insufficient funds."
        assert copy.extra == {"payment": {"paymentId": "pay_1", "status": "failed"}}
        assert copy.decline_code == "insufficient_funds"
        assert errors.problem_code(copy) == "insufficient_funds"

    def test_a_decline_without_a_code_is_card_declined(self):
        assert errors.problem_code(errors.PaymentDeclined("no")) == "card_declined"

    def test_an_error_without_detail_uses_its_title(self):
        error = errors.OrderNotFound()
        assert error.detail == "Order not found"
        assert pickle.loads(pickle.dumps(error)).detail == "Order not found"
