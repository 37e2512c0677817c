"""The seat hold that expires (or is released) while the card is charged: the payment is
recorded succeeded, refunded at once (reason reservation_expired) and releases its
order; ``pay`` raises ReservationExpiredDuringPayment with both. Other refunds keep the
order paid."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from raypay.domain.errors import (
    GatewayUnavailable,
    ReservationExpiredDuringPayment,
    ReservationInactive,
)
from raypay.domain.events import EventType
from raypay.domain.idempotency import pay_once
from raypay.domain.model import PaymentStatus, Reservation
from raypay.domain.refunding import refund
from raypay.domain.refunds import RefundReason, RefundRequest, RefundStatus
from raypay.domain.workflow import pay, settle_pending

from .fakes import FakeWorld, a_checkout, a_request
from .test_refund import MemoryKeys

pytestmark = pytest.mark.unit


def hold_lost_during_the_charge(world: FakeWorld, how: str) -> None:
    """While the gateway makes its first charge, the hold is released, or its time runs out."""
    charge = world.gateway.charge

    async def slow_charge(request):
        held = world.reservations.reservations["res_1"]
        if world.gateway.counted:
            pass  # later charges are quick
        elif how == "released":
            world.reservations.add(replace(held, status="released"))
        else:
            world.clock.advance((held.expires_at - world.clock.now()).total_seconds())
        return await charge(request)

    world.gateway.charge = slow_charge


@pytest.fixture(params=["released", "expired"])
def world(request) -> FakeWorld:
    world = a_checkout()
    hold_lost_during_the_charge(world, request.param)
    return world


async def test_the_payment_succeeds_and_is_refunded_at_once(world):
    with pytest.raises(ReservationExpiredDuringPayment) as lost:
        await pay(a_request(), world.deps)

    payment, done = lost.value.payment, lost.value.refund
    assert (payment.status, payment.refunded) == (PaymentStatus.SUCCEEDED, True)
    assert (done.status, done.reason, done.amount) == (
        RefundStatus.SUCCEEDED, RefundReason.RESERVATION_EXPIRED, payment.amount,
    )  # fmt: skip
    assert await world.payments.get(payment.payment_id) == payment
    assert (len(world.gateway.counted), world.gateway.refunded) == (1, [done.refund_id])
    types = [event.type for event in world.payments.outbox]
    assert types == [EventType.PAYMENT_SUCCEEDED, EventType.REFUND_SUCCEEDED]


async def test_it_releases_the_order_which_can_be_paid_again_with_an_active_hold(world):
    with pytest.raises(ReservationExpiredDuringPayment) as lost:
        await pay(a_request(), world.deps)
    assert await world.payments.succeeded_for("ord_1") is None

    with pytest.raises(ReservationInactive):  # the lost hold itself is gone for good
        await pay(a_request(), world.deps)
    expires = world.clock.now() + timedelta(minutes=15)
    world.reservations.add(Reservation("res_2", "ord_1", "cus_1", "active", expires))
    again = await pay(a_request(reservation_id="res_2"), world.deps)

    assert again.payment.payment_id != lost.value.payment.payment_id
    assert await world.payments.succeeded_for("ord_1") == again.payment


async def test_a_declined_refund_is_in_the_answer_and_the_order_is_released(world):
    world.gateway.decline_next_refund("expired_or_canceled_card", "Closed")
    with pytest.raises(ReservationExpiredDuringPayment) as lost:
        await pay(a_request(), world.deps)
    assert lost.value.refund.status is RefundStatus.FAILED
    assert lost.value.payment.refunded is False
    assert await world.payments.succeeded_for("ord_1") is None


async def test_a_silent_gateway_leaves_the_refund_pending_for_the_sweep(world):
    world.gateway.refund_unavailable_next()
    with pytest.raises(GatewayUnavailable):
        await pay(a_request(), world.deps)
    [paid] = await world.payments.list_for_order("ord_1")
    [left] = await world.refunds.list_for_payment(paid.payment_id)
    assert (paid.status, left.status) == (PaymentStatus.SUCCEEDED, RefundStatus.PENDING)
    assert await world.payments.succeeded_for("ord_1") is None


async def test_its_idempotency_key_replays_both(world):
    keys = MemoryKeys()
    first = await pay_once(a_request(), world.deps, keys, "k")
    again = await pay_once(a_request(), world.deps, keys, "k")
    assert isinstance(first.error, ReservationExpiredDuringPayment)
    assert (first.payment, first.refund) == (first.error.payment, first.error.refund)
    assert again.key_replay and (again.payment, again.refund) == (first.payment, first.refund)
    assert len(world.gateway.counted) == 1 and len(world.gateway.refunded) == 1


class TestHoldKept:
    async def test_an_active_hold_is_read_again_and_nothing_is_refunded(self):
        world = a_checkout()
        reads = []
        get = world.reservations.get

        async def counting_get(reservation_id, order_id):
            reads.append(reservation_id)
            return await get(reservation_id, order_id)

        world.reservations.get = counting_get
        outcome = await pay(a_request(), world.deps)
        assert outcome.payment.status is PaymentStatus.SUCCEEDED
        assert reads == ["res_1", "res_1"]  # step 3, and beside the record (step 7)
        assert world.gateway.refund_calls == []

    async def test_without_a_reservation_nothing_is_read_again(self):
        world = a_checkout()
        world.reservations.get = None  # any read would fail
        outcome = await pay(a_request(reservation_id=None), world.deps)
        assert outcome.payment.status is PaymentStatus.SUCCEEDED

    async def test_other_refunds_keep_the_order_paid_and_its_replay_shows_them(self):
        world = a_checkout()
        paid = (await pay(a_request(), world.deps)).payment
        await refund(RefundRequest(paid.payment_id, RefundReason.EVENT_CANCELLED), world.deps)

        again = await pay(a_request(), world.deps)

        assert again.replayed and again.payment.payment_id == paid.payment_id
        assert again.payment.refunded and again.payment.amount_refunded == paid.amount


async def test_the_sweep_refunds_a_charge_it_finds_for_a_lost_hold():
    world = a_checkout()
    world.gateway.unavailable_next(charged=True)  # charged, but the answer is lost
    with pytest.raises(GatewayUnavailable):
        await pay(a_request(), world.deps)
    [left] = await world.payments.list_for_order("ord_1")
    world.reservations.add(replace(world.reservations.reservations["res_1"], status="expired"))

    settled = await settle_pending(left, world.deps)

    assert (settled.status, settled.refunded) == (PaymentStatus.SUCCEEDED, True)
    [done] = await world.refunds.list_for_payment(left.payment_id)
    assert (done.reason, done.status) == (RefundReason.RESERVATION_EXPIRED, RefundStatus.SUCCEEDED)
    assert await world.payments.succeeded_for("ord_1") is None
