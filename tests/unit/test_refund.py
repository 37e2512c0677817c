"""The refund workflow ``raypay.domain.workflow.refund`` against in-memory fakes of its ports,
and the refundable-amount rule (``raypay.domain.refunds``)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from raypay.domain.errors import (
    GatewayUnavailable,
    IdempotencyKeyReused,
    InvalidRequest,
    PaymentDeclined,
    PaymentNotFound,
    PaymentNotRefundable,
    RefundDeclined,
    RefundExceedsPayment,
)
from raypay.domain.events import EventType
from raypay.domain.idempotency import pay_once, refund_once
from raypay.domain.model import PaymentStatus
from raypay.domain.money import Money
from raypay.domain.refunding import refund, settle_pending_refund
from raypay.domain.refunds import (
    Refund,
    RefundReason,
    RefundRequest,
    RefundStatus,
    refund_id_for,
)
from raypay.domain.workflow import pay

from .fakes import NOW, FakeWorld, a_checkout, a_request

pytestmark = pytest.mark.unit

CUSTOMER = RefundReason.REQUESTED_BY_CUSTOMER


@pytest.fixture
async def world() -> FakeWorld:
    """A checkout whose USD 40.00 payment succeeded (its id: ``world.paid``)."""
    world = a_checkout()
    outcome = await pay(a_request(), world.deps)
    world.paid = outcome.payment  # type: ignore[attr-defined]
    return world


def a_refund(world, amount: str | None = None, **changes) -> RefundRequest:
    decimal = None if amount is None else Decimal(amount)
    return RefundRequest(world.paid.payment_id, changes.pop("reason", CUSTOMER), decimal, **changes)


async def refunded_minor(world) -> int:
    return (await world.payments.get(world.paid.payment_id)).amount_refunded_minor


class TestRefund:
    async def test_all_that_is_left_when_no_amount_is_given(self, world):
        outcome = await refund(a_refund(world), world.deps)

        done = outcome.refund
        assert (done.status, str(done.amount), done.reason) == (
            RefundStatus.SUCCEEDED, "40.00", CUSTOMER,
        )  # fmt: skip
        assert (done.order_id, done.customer_id, done.processed_at) == ("ord_1", "cus_1", NOW)
        assert done.gateway_refund_id
        assert outcome.payment.refunded and outcome.payment.status is PaymentStatus.SUCCEEDED
        assert await refunded_minor(world) == 4000
        assert await world.refunds.get(done.refund_id) == done

    async def test_it_is_pending_when_the_gateway_is_called(self, world):
        seen = []
        original = world.gateway.refund

        async def spying(request):
            seen.append(await world.refunds.get(request.idempotency_key))
            return await original(request)

        world.gateway.refund = spying
        await refund(a_refund(world, "10.00"), world.deps)
        assert [r.status for r in seen] == [RefundStatus.PENDING]

    async def test_the_gateway_refunds_the_charge_keyed_by_the_refund_id(self, world):
        outcome = await refund(a_refund(world, "12.50"), world.deps)

        (call,) = world.gateway.refund_calls
        assert call.idempotency_key == outcome.refund.refund_id
        assert (call.charge_key, call.transaction_id) == (
            world.paid.payment_id, world.paid.transaction_id,
        )  # fmt: skip
        assert (str(call.amount), call.payment_method, call.reference) == (
            "12.50", "pm_card_visa", "ord_1",
        )  # fmt: skip

    async def test_it_queues_one_refund_succeeded_event_with_the_refunded_total(self, world):
        await refund(a_refund(world, "15.00"), world.deps)
        outcome = await refund(a_refund(world, "5.00"), world.deps)

        *_, first, second = world.payments.outbox
        assert (first.type, second.type) == (EventType.REFUND_SUCCEEDED,) * 2
        assert second.key == "ord_1" and second.refund == outcome.refund
        assert (first.payment.amount_refunded_minor, second.payment.amount_refunded_minor) == (
            1500, 2000,
        )  # fmt: skip


class TestPartialRefunds:
    async def test_several_add_up_to_the_charge_and_no_further(self, world):
        for amount in ("10.00", "20.00", "10.00"):
            await refund(a_refund(world, amount), world.deps)
        assert await refunded_minor(world) == 4000

        with pytest.raises(RefundExceedsPayment) as exceeded:
            await refund(a_refund(world, "0.01"), world.deps)
        assert exceeded.value.extra == {"amountRefundable": "0.00", "currency": "USD"}

    async def test_more_than_is_left_is_refused_and_refunds_nothing(self, world):
        await refund(a_refund(world, "30.00"), world.deps)

        with pytest.raises(RefundExceedsPayment) as exceeded:
            await refund(a_refund(world, "10.01"), world.deps)

        assert exceeded.value.extra["amountRefundable"] == "10.00"
        assert len(world.gateway.refunded) == 1
        assert await refunded_minor(world) == 3000

    async def test_the_rest_after_a_partial_refund(self, world):
        await refund(a_refund(world, "30.00"), world.deps)
        rest = await refund(a_refund(world), world.deps)
        assert str(rest.refund.amount) == "10.00"
        with pytest.raises(RefundExceedsPayment):
            await refund(a_refund(world), world.deps)

    async def test_a_failed_refund_leaves_its_amount_refundable(self, world):
        world.gateway.decline_next_refund()
        with pytest.raises(RefundDeclined):
            await refund(a_refund(world, "40.00"), world.deps)
        assert str((await refund(a_refund(world), world.deps)).refund.amount) == "40.00"

    async def test_a_pending_refund_sets_its_amount_aside_in_the_store(self, world):
        # Two shards at once (or a stale read) meet the store's guard, not the rule.
        payment = world.paid
        request = a_refund(world, "30.00")
        first = Refund.start(request, payment, "re_a", Money(3000, "USD"), NOW)
        assert (await world.refunds.begin(first)).created
        second = Refund.start(request, payment, "re_b", first.amount, NOW)
        with pytest.raises(RefundExceedsPayment):
            await world.refunds.begin(second)


class TestRefusals:
    async def test_an_unknown_payment_is_not_found(self, world):
        with pytest.raises(PaymentNotFound):
            await refund(RefundRequest("pay_nope", CUSTOMER), world.deps)

    async def test_a_failed_payment_is_not_refundable(self):
        world = a_checkout()
        world.gateway.decline_next()
        failed = (await pay_declined(world)).payment
        with pytest.raises(PaymentNotRefundable):
            await refund(RefundRequest(failed.payment_id, CUSTOMER), world.deps)
        assert world.gateway.refund_calls == []

    @pytest.mark.parametrize("amount", ["0", "-1", "1.001"])
    async def test_an_amount_that_is_not_money_in_the_currency_is_invalid(self, world, amount):
        with pytest.raises(InvalidRequest):
            await refund(a_refund(world, amount), world.deps)

    async def test_a_declined_refund_raises_with_the_failed_refund_and_queues_its_event(
        self, world
    ):
        world.gateway.decline_next_refund("expired_or_canceled_card", "Card closed")
        with pytest.raises(RefundDeclined) as declined:
            await refund(a_refund(world, "10.00"), world.deps)

        failed = declined.value.refund
        assert (failed.status, failed.error_code, failed.error_message) == (
            RefundStatus.FAILED, "expired_or_canceled_card", "Card closed",
        )  # fmt: skip
        assert world.payments.outbox[-1].type is EventType.REFUND_FAILED
        assert await refunded_minor(world) == 0


async def pay_declined(world):
    with pytest.raises(PaymentDeclined) as declined:
        await pay(a_request(), world.deps)
    return declined.value


class TestSilentGateway:
    async def test_it_stays_pending_with_its_amount_set_aside(self, world):
        world.gateway.refund_unavailable_next(refunded=True)
        with pytest.raises(GatewayUnavailable):
            await refund(a_refund(world, "40.00"), world.deps)

        (left,) = await world.refunds.list_for_payment(world.paid.payment_id)
        assert left.status is RefundStatus.PENDING
        with pytest.raises(RefundExceedsPayment):
            await world.refunds.begin(
                Refund.start(a_refund(world), world.paid, "re_x", left.amount, NOW)
            )

    async def test_the_retry_with_the_same_key_settles_that_refund_once(self, world):
        world.gateway.refund_unavailable_next(refunded=True)
        store = MemoryKeys()
        with pytest.raises(GatewayUnavailable):
            await refund_once(a_refund(world), world.deps, store, "key-1")

        again = await refund_once(a_refund(world), world.deps, store, "key-1")

        assert again.refund.status is RefundStatus.SUCCEEDED
        assert again.refund.refund_id == refund_id_for(world.paid.payment_id, "key-1")
        assert world.gateway.refunded == [again.refund.refund_id]
        assert len(await world.refunds.list_for_payment(world.paid.payment_id)) == 1
        assert await refunded_minor(world) == 4000

    async def test_a_retry_under_the_key_asking_for_another_amount_is_refused(self, world):
        world.gateway.refund_unavailable_next(refunded=False)
        store = MemoryKeys()
        with pytest.raises(GatewayUnavailable):
            await refund_once(a_refund(world, "10.00"), world.deps, store, "key-2")
        with pytest.raises(IdempotencyKeyReused):
            await refund_once(a_refund(world, "11.00"), world.deps, store, "key-2")
        assert store.stored == {}  # the key still belongs to the first request

    async def test_a_new_refund_first_settles_one_left_pending(self, world):
        world.gateway.refund_unavailable_next(refunded=False)
        with pytest.raises(GatewayUnavailable):
            await refund(a_refund(world, "25.00"), world.deps)

        rest = await refund(a_refund(world), world.deps)

        first, second = await world.refunds.list_for_payment(world.paid.payment_id)
        assert (first.status, second.status) == (RefundStatus.SUCCEEDED,) * 2
        assert (str(first.amount), str(rest.refund.amount)) == ("25.00", "15.00")
        assert rest.payment.refunded and await refunded_minor(world) == 4000

    async def test_the_sweep_asks_the_gateway_again_and_settles_it(self, world):
        world.gateway.refund_unavailable_next(refunded=False)
        with pytest.raises(GatewayUnavailable):
            await refund(a_refund(world, "40.00"), world.deps)
        (left,) = await world.refunds.list_for_payment(world.paid.payment_id)

        settled = await settle_pending_refund(left, world.deps)

        assert settled.status is RefundStatus.SUCCEEDED
        assert world.gateway.refunded == [left.refund_id]
        assert world.payments.outbox[-1].type is EventType.REFUND_SUCCEEDED


class TestIdempotencyKeys:
    async def test_a_refund_is_given_again_for_its_key_and_refunds_once(self, world):
        store = MemoryKeys()
        first = await refund_once(a_refund(world, "5.00"), world.deps, store, "k")
        again = await refund_once(a_refund(world, "5.00"), world.deps, store, "k")
        assert again.key_replay and again.refund == first.refund
        assert len(world.gateway.refund_calls) == 1

    async def test_a_payment_key_is_refused_for_a_refund(self, world):
        store = MemoryKeys()
        await pay_once(a_request(), world.deps, store, "shared")
        with pytest.raises(IdempotencyKeyReused):
            await refund_once(a_refund(world), world.deps, store, "shared")

    async def test_a_decline_is_final_for_its_key(self, world):
        store = MemoryKeys()
        world.gateway.decline_next_refund()
        first = await refund_once(a_refund(world), world.deps, store, "k")
        again = await refund_once(a_refund(world), world.deps, store, "k")
        assert isinstance(first.error, RefundDeclined) and first.refund is not None
        assert again.key_replay and again.refund == first.refund
        assert len(world.gateway.refund_calls) == 1


class MemoryKeys:
    """An IdempotencyStore in a dict (first write wins)."""

    def __init__(self) -> None:
        self.stored: dict = {}

    async def get(self, key):
        return self.stored.get(key)

    async def put(self, key, fingerprint, outcome):
        self.stored.setdefault(key, (fingerprint, outcome))
