"""The sweep's step ``raypay.domain.workflow.settle_pending``: a payment its shard left pending is
settled through the gateway's idempotency key, never by charging anew."""

from __future__ import annotations

import pytest

from raypay.domain.errors import GatewayUnavailable
from raypay.domain.events import EventType
from raypay.domain.model import Payment, PaymentStatus
from raypay.domain.workflow import pay, settle_pending

from .fakes import NOW, FakeWorld, a_checkout, a_request

pytestmark = pytest.mark.unit


@pytest.fixture
def world() -> FakeWorld:
    return a_checkout()


class TestSettlePending:
    async def a_left_pending_payment(self, world) -> Payment:
        payment = Payment.start(a_request(), "pay_left", NOW)
        assert (await world.payments.begin(payment)).created
        return payment

    async def test_without_a_charge_it_fails_as_abandoned_and_charges_nothing(self, world):
        payment = await self.a_left_pending_payment(world)

        settled = await settle_pending(payment, world.deps)

        assert settled.status is PaymentStatus.FAILED
        assert settled.error_code == "abandoned"
        assert await world.payments.get("pay_left") == settled
        assert world.gateway.calls == []
        assert world.gateway.counted == []
        (event,) = world.payments.outbox
        assert (event.type, event.payment.error_code) == (EventType.PAYMENT_FAILED, "abandoned")

    async def test_after_an_abandoned_attempt_the_order_can_be_paid_again(self, world):
        await settle_pending(await self.a_left_pending_payment(world), world.deps)

        outcome = await pay(a_request(), world.deps)
        assert outcome.payment.status is PaymentStatus.SUCCEEDED
        assert outcome.payment.payment_id != "pay_left"

    async def test_with_an_earlier_charge_it_records_that_charge(self, world):
        world.gateway.unavailable_next(charged=True)
        with pytest.raises(GatewayUnavailable):
            await pay(a_request(), world.deps)
        (pending,) = await world.payments.list_for_order("ord_1")

        settled = await settle_pending(pending, world.deps)

        assert settled.status is PaymentStatus.SUCCEEDED
        assert settled.transaction_id == "txn_1"
        assert world.gateway.counted == [pending.payment_id]
        assert [e.type for e in world.payments.outbox] == [EventType.PAYMENT_SUCCEEDED]

    async def test_with_an_earlier_decline_it_records_that_decline(self, world):
        world.gateway.unavailable_next(charged=True)
        world.gateway.decline_next("expired_card")
        with pytest.raises(GatewayUnavailable):
            await pay(a_request(), world.deps)
        (pending,) = await world.payments.list_for_order("ord_1")

        settled = await settle_pending(pending, world.deps)

        assert (settled.status, settled.error_code) == (PaymentStatus.FAILED, "expired_card")

    async def test_a_stale_pending_copy_settled_meanwhile_returns_the_stored_outcome(self, world):
        world.gateway.unavailable_next()
        with pytest.raises(GatewayUnavailable):
            await pay(a_request(), world.deps)
        (stale,) = await world.payments.list_for_order("ord_1")
        outcome = await pay(a_request(), world.deps)  # a retry settled it

        settled = await settle_pending(stale, world.deps)

        assert settled == outcome.payment
        assert [e.type for e in world.payments.outbox] == [EventType.PAYMENT_SUCCEEDED]
