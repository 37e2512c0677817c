"""The payment workflow ``raypay.domain.workflow.pay`` against in-memory fakes of its ports."""

from __future__ import annotations

from datetime import timedelta

import pytest

from raypay.domain.errors import (
    AmountMismatch,
    GatewayUnavailable,
    OrderNotFound,
    OrderNotPayable,
    PaymentDeclined,
    ReservationInactive,
    ReservationNotFound,
)
from raypay.domain.events import EventType
from raypay.domain.model import Order, Payment, PaymentStatus, Reservation
from raypay.domain.money import Money
from raypay.domain.workflow import pay

from .fakes import NOW, USD_40, FakeWorld, a_checkout, a_request

pytestmark = pytest.mark.unit


@pytest.fixture
def world() -> FakeWorld:
    return a_checkout()


class TestNewPayment:
    async def test_it_succeeds_and_records_the_succeeded_payment(self, world):
        outcome = await pay(a_request(), world.deps)

        assert outcome.replayed is False
        payment = outcome.payment
        assert payment.status is PaymentStatus.SUCCEEDED
        assert payment.transaction_id == "txn_1"
        assert payment.processed_at == NOW
        assert await world.payments.get(payment.payment_id) == payment
        assert await world.payments.succeeded_for("ord_1") == payment

    async def test_the_payment_is_pending_when_the_gateway_is_called(self, world):
        seen: list[Payment | None] = []
        charge = world.gateway.charge

        async def spying_charge(request):
            seen.append(await world.payments.get(request.idempotency_key))
            return await charge(request)

        world.gateway.charge = spying_charge
        await pay(a_request(), world.deps)

        assert [p.status for p in seen if p] == [PaymentStatus.PENDING]

    async def test_it_charges_once_with_the_payment_id_as_idempotency_key(self, world):
        outcome = await pay(a_request(), world.deps)

        (call,) = world.gateway.calls
        assert call.idempotency_key == outcome.payment.payment_id
        assert (call.amount, call.payment_method, call.reference) == (
            USD_40,
            "pm_card_visa",
            "ord_1",
        )
        assert world.gateway.counted == [outcome.payment.payment_id]

    async def test_it_queues_one_payment_succeeded_event(self, world):
        outcome = await pay(a_request(), world.deps)

        (event,) = world.payments.outbox
        assert (event.type, event.key) == (EventType.PAYMENT_SUCCEEDED, "ord_1")
        assert event.payment.payment_id == outcome.payment.payment_id
        assert event.payment.transaction_id == "txn_1"

    async def test_a_reservation_is_optional(self, world):
        outcome = await pay(a_request(reservation_id=None), world.deps)
        assert outcome.payment.status is PaymentStatus.SUCCEEDED
        assert outcome.payment.reservation_id is None


class TestReplay:
    async def test_paying_a_paid_order_again_returns_the_payment_and_charges_nothing(self, world):
        first = await pay(a_request(), world.deps)
        again = await pay(a_request(), world.deps)

        assert again.replayed is True
        assert again.payment == first.payment
        assert len(world.gateway.calls) == 1
        assert len(world.payments.outbox) == 1

    async def test_the_replay_wins_over_an_order_that_is_no_longer_payable(self, world):
        first = await pay(a_request(), world.deps)
        world.orders.add(Order("ord_1", "cus_1", USD_40, "paid"))

        again = await pay(a_request(), world.deps)
        assert (again.replayed, again.payment) == (True, first.payment)


class TestDecline:
    async def test_a_decline_raises_with_the_failed_payment(self, world):
        world.gateway.decline_next("insufficient_funds", "Your card has insufficient funds.")

        with pytest.raises(PaymentDeclined) as declined:
            await pay(a_request(), world.deps)

        error = declined.value
        assert error.decline_code == "insufficient_funds"
        assert error.detail == "Your card has insufficient funds."
        (failed,) = await world.payments.list_for_order("ord_1")
        assert failed.status is PaymentStatus.FAILED
        assert failed.error_code == "insufficient_funds"
        assert error.payment == failed

    async def test_a_decline_queues_one_payment_failed_event(self, world):
        world.gateway.decline_next("card_declined")

        with pytest.raises(PaymentDeclined):
            await pay(a_request(), world.deps)

        (event,) = world.payments.outbox
        assert (event.type, event.key) == (EventType.PAYMENT_FAILED, "ord_1")
        assert event.payment.error_code == "card_declined"
        assert await world.payments.succeeded_for("ord_1") is None

    async def test_a_retry_after_a_decline_succeeds_as_a_new_payment(self, world):
        world.gateway.decline_next()
        with pytest.raises(PaymentDeclined) as declined:
            await pay(a_request(payment_method="pm_card_chargeDeclined"), world.deps)

        outcome = await pay(a_request(), world.deps)

        failed_id = declined.value.payment.payment_id
        assert outcome.replayed is False
        assert outcome.payment.status is PaymentStatus.SUCCEEDED
        assert outcome.payment.payment_id != failed_id
        history = await world.payments.list_for_order("ord_1")
        assert [(p.payment_id, p.status) for p in history] == [
            (failed_id, PaymentStatus.FAILED),
            (outcome.payment.payment_id, PaymentStatus.SUCCEEDED),
        ]
        assert [e.type for e in world.payments.outbox] == [
            EventType.PAYMENT_FAILED,
            EventType.PAYMENT_SUCCEEDED,
        ]


class TestGatewayUnavailable:
    async def test_the_error_propagates_and_the_payment_stays_pending(self, world):
        world.gateway.unavailable_next()

        with pytest.raises(GatewayUnavailable):
            await pay(a_request(), world.deps)

        (pending,) = await world.payments.list_for_order("ord_1")
        assert pending.status is PaymentStatus.PENDING
        assert world.payments.outbox == []

    async def test_a_retry_resumes_the_same_payment_and_charges_once(self, world):
        world.gateway.unavailable_next()
        with pytest.raises(GatewayUnavailable):
            await pay(a_request(), world.deps)
        (pending,) = await world.payments.list_for_order("ord_1")

        outcome = await pay(a_request(), world.deps)

        assert outcome.payment.payment_id == pending.payment_id
        assert outcome.payment.status is PaymentStatus.SUCCEEDED
        assert outcome.replayed is False  # the client sees this payment for the first time
        assert [c.idempotency_key for c in world.gateway.calls] == [pending.payment_id] * 2
        assert world.gateway.counted == [pending.payment_id]
        assert len(await world.payments.list_for_order("ord_1")) == 1
        assert [e.type for e in world.payments.outbox] == [EventType.PAYMENT_SUCCEEDED]

    async def test_a_retry_after_a_timeout_that_charged_gets_that_charge(self, world):
        world.gateway.unavailable_next(charged=True)
        with pytest.raises(GatewayUnavailable):
            await pay(a_request(), world.deps)
        (pending,) = await world.payments.list_for_order("ord_1")
        assert pending.status is PaymentStatus.PENDING

        outcome = await pay(a_request(), world.deps)

        assert outcome.payment.payment_id == pending.payment_id
        assert outcome.payment.transaction_id == "txn_1"
        assert world.gateway.counted == [pending.payment_id]

    async def test_a_resumed_payment_that_is_declined_is_followed_by_a_new_attempt(self, world):
        world.gateway.unavailable_next(charged=True)
        world.gateway.decline_next("card_declined")
        with pytest.raises(GatewayUnavailable):
            await pay(a_request(), world.deps)

        outcome = await pay(a_request(), world.deps)

        first, second = await world.payments.list_for_order("ord_1")
        assert first.status is PaymentStatus.FAILED
        assert outcome.payment == second
        assert second.status is PaymentStatus.SUCCEEDED
        assert world.gateway.counted == [first.payment_id, second.payment_id]


class TestRejections:
    @pytest.mark.parametrize(
        ("request_changes", "error"),
        [
            ({"order_id": "ord_missing"}, OrderNotFound),
            ({"customer_id": "cus_other"}, OrderNotFound),
            ({"amount": Money(3999, "USD")}, AmountMismatch),
            ({"amount": Money(4000, "EUR")}, AmountMismatch),
            ({"reservation_id": "res_missing"}, ReservationNotFound),
        ],
        ids=["no-order", "other-customer", "amount", "currency", "no-reservation"],
    )
    async def test_an_invalid_request_creates_no_payment_and_charges_nothing(
        self, world, request_changes, error
    ):
        with pytest.raises(error):
            await pay(a_request(**request_changes), world.deps)

        assert_nothing_was_paid(world)

    @pytest.mark.parametrize(
        ("order_status", "reservation_status", "minutes_later", "error"),
        [
            ("cancelled", "active", 0, OrderNotPayable),
            ("pending_payment", "released", 0, ReservationInactive),
            ("pending_payment", "active", 15, ReservationInactive),
        ],
        ids=["order-cancelled", "reservation-released", "reservation-expired"],
    )
    async def test_an_order_or_reservation_in_the_wrong_state_is_rejected(
        self, world, order_status, reservation_status, minutes_later, error
    ):
        world.orders.add(Order("ord_1", "cus_1", USD_40, order_status))
        expires_at = NOW + timedelta(minutes=15)
        world.reservations.add(
            Reservation("res_1", "ord_1", "cus_1", reservation_status, expires_at)
        )
        world.clock.advance(minutes_later * 60)

        with pytest.raises(error):
            await pay(a_request(), world.deps)

        assert_nothing_was_paid(world)


def assert_nothing_was_paid(world: FakeWorld) -> None:
    assert world.payments.payments == {}
    assert world.gateway.calls == []
    assert world.payments.outbox == []


class TestAnotherProcessRacing:
    """What a second process (a peer worker, a shard during a restart) can leave behind."""

    async def test_a_pending_payment_that_fails_meanwhile_is_passed_over(self, world):
        world.gateway.unavailable_next()
        with pytest.raises(GatewayUnavailable):
            await pay(a_request(), world.deps)
        (pending,) = await world.payments.list_for_order("ord_1")
        real_begin = world.payments.begin

        async def begin_seeing_it_fail(payment):
            begun = await real_begin(payment)
            if not begun.created:  # the other process settles it as we read it back
                failed = begun.payment.fail("card_declined", "declined", begun.payment.created_at)
                world.payments.payments[failed.payment_id] = failed
                return type(begun)(failed, created=False)
            return begun

        world.payments.begin = begin_seeing_it_fail
        outcome = await pay(a_request(), world.deps)
        assert outcome.payment.status is PaymentStatus.SUCCEEDED
        assert outcome.payment.payment_id != pending.payment_id
