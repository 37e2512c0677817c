"""Domain rules: order and reservation checks, payment transitions, the events a settled
payment makes, the orderId -> shard hash, and the error hierarchy."""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from raypay.domain import errors
from raypay.domain.events import EventType, event_for
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
from raypay.domain.sharding import (
    VSHARDS,
    owner_of,
    scoped_id,
    shard_for,
    shard_of_order,
    vshard_in,
    vshard_of,
    vshards_of,
)

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


class TestEvents:
    def test_a_succeeded_payment_makes_a_payment_succeeded_event_keyed_by_order(self):
        paid = a_pending_payment().succeed("txn_1", NOW, simulated=True)
        event = event_for(paid, "evt_1", NOW, request_id="req-1")
        assert (event.type, event.key, event.payment) == (
            EventType.PAYMENT_SUCCEEDED,
            "ord_1",
            paid,
        )
        assert (event.event_id, event.occurred_at, event.request_id) == ("evt_1", NOW, "req-1")

    def test_a_failed_payment_makes_a_payment_failed_event(self):
        failed = a_pending_payment().fail("insufficient_funds", "Not enough", NOW)
        assert event_for(failed, "evt_2", NOW).type is EventType.PAYMENT_FAILED

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


class TestVirtualShards:
    def test_an_orders_vshard_is_pinned(self):
        # Stored keys carry it: it must never change (blake2b, VSHARDS fixed).
        assert VSHARDS == 256
        assert (vshard_of("ord_1"), vshard_of("ord_123")) == (39, 113)

    def test_an_id_carries_its_vshard_and_an_older_id_is_placed_by_its_hash(self):
        assert vshard_in(scoped_id("pay", 17, "9f3a")) == 17
        assert vshard_in("re_vs255_x") == 255
        assert vshard_in("pay_9f3a") == vshard_of("pay_9f3a")
        assert vshard_in(f"pay_vs{VSHARDS}_x") == vshard_of(f"pay_vs{VSHARDS}_x")  # no such

    @pytest.mark.parametrize("shards", [1, 2, 3, 7, 64, VSHARDS])
    def test_every_vshard_has_one_owner_and_the_owners_share_them_evenly(self, shards):
        owned = [list(vshards_of(shard, shards)) for shard in range(shards)]
        assert sorted(v for vs in owned for v in vs) == list(range(VSHARDS))
        assert all(owner_of(v, shards) == s for s, vs in enumerate(owned) for v in vs)
        assert max(map(len, owned)) - min(map(len, owned)) <= 1

    def test_an_order_goes_to_the_shard_owning_its_vshard(self):
        assert all(
            shard_of_order(f"ord_{i}", 5) == owner_of(vshard_of(f"ord_{i}"), 5) for i in range(200)
        )


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

    @pytest.mark.parametrize(
        ("cls", "code", "status"),
        [row for row in ERROR_TABLE if row[0] is not errors.PaymentDeclined],
    )
    def test_errors_survive_a_pickle_round_trip(self, cls, code, status):
        error = cls("order ord_1 not found", {"orderId": "ord_1"})
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls
        assert (copy.detail, copy.extra, str(copy)) == (error.detail, error.extra, str(error))

    def test_a_decline_pickles_with_its_decline_code_and_payment(self):
        failed = a_pending_payment().fail("insufficient_funds", "Not enough", NOW)
        error = errors.PaymentDeclined(
            "Your card has insufficient funds.", failed, decline_code="insufficient_funds"
        )
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is errors.PaymentDeclined
        assert copy.detail == "Your card has insufficient funds."
        assert copy.payment == failed
        assert copy.decline_code == "insufficient_funds"
        assert errors.problem_code(copy) == "insufficient_funds"

    def test_a_decline_without_a_code_is_card_declined(self):
        assert errors.problem_code(errors.PaymentDeclined("no")) == "card_declined"

    def test_every_error_class_is_listed_for_stored_outcomes(self):
        listed = errors.error_classes()
        assert {cls for cls, _, _ in ERROR_TABLE} <= set(listed)
        assert len({cls.__name__ for cls in listed}) == len(listed)

    def test_an_error_without_detail_uses_its_title(self):
        error = errors.OrderNotFound()
        assert error.detail == "Order not found"
        assert pickle.loads(pickle.dumps(error)).detail == "Order not found"
