"""The Redis RefundStore on fakeredis (its Lua scripts through lupa): refunds set their
amount aside on the payment atomically, so however they interleave, a payment's refunds
never sum above its charge; settling moves the amount and queues the event once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from raypay.adapters.keys import Keys
from raypay.adapters.redis_store import RedisPayments
from raypay.adapters.refund_store import RedisRefunds
from raypay.domain.errors import PaymentNotFound, PaymentNotRefundable, RefundExceedsPayment
from raypay.domain.events import event_for, refund_event_for
from raypay.domain.model import Payment, PaymentRequest
from raypay.domain.money import Money
from raypay.domain.refunds import Refund, RefundReason, RefundRequest, RefundStatus
from raypay.domain.sharding import VSHARDS, vshard_in

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
KEYS = Keys("raypay")
REQUEST = RefundRequest("pay_1", RefundReason.EVENT_CANCELLED, metadata={"event": "ev_9"})


@pytest.fixture
def payments(redis, keys) -> RedisPayments:
    return RedisPayments(redis, keys)


@pytest.fixture
def refunds(redis, keys) -> RedisRefunds:
    return RedisRefunds(redis, keys)


async def a_paid_payment(payments: RedisPayments, minor: int = 4000) -> Payment:
    request = PaymentRequest("ord_1", "cus_1", Money(minor, "USD"), "pm_card_visa", None)
    pending = Payment.start(request, "pay_1", NOW)
    await payments.begin(pending)
    paid = pending.succeed("txn_1", NOW, True)
    return await payments.settle(paid, event_for(paid, "evt_pay", NOW))


def a_refund(payment: Payment, refund_id: str, minor: int, at: datetime = NOW) -> Refund:
    return Refund.start(REQUEST, payment, refund_id, Money(minor, "USD"), at)


async def settle(refunds: RedisRefunds, payment: Payment, refund: Refund, ok: bool = True):
    done = refund.succeed("gre_1", NOW) if ok else refund.fail("declined", "no", NOW)
    return await refunds.settle(
        done, refund_event_for(done, payment, f"evt_{refund.refund_id}", NOW)
    )


async def outbox(redis) -> list[tuple[str, dict[str, str]]]:
    """Every vshard's outbox entries, oldest first."""
    entries = [e for stream in KEYS.outboxes() for e in await redis.xrange(stream)]
    return sorted(entries, key=lambda entry: tuple(map(int, entry[0].split("-"))))


async def amounts(redis) -> tuple[str | None, str | None]:
    return tuple(
        await redis.hmget(KEYS.payment("pay_1"), "amountRefundedMinor", "amountRefundingMinor")
    )


class TestBegin:
    async def test_it_records_the_pending_refund_and_sets_its_amount_aside(
        self, payments, refunds, redis
    ):
        paid = await a_paid_payment(payments)
        refund = a_refund(paid, "re_1", 1500)

        begun = await refunds.begin(refund)

        assert begun.created and begun.refund == refund
        assert await refunds.get("re_1") == refund
        assert await refunds.list_for_payment("pay_1") == [refund]
        assert await amounts(redis) == ("0", "1500")
        assert await redis.zscore(KEYS.refunds_pending(vshard_in("re_1")), "re_1") == int(
            NOW.timestamp() * 1000
        )

    async def test_the_same_refund_id_again_writes_nothing(self, payments, refunds, redis):
        paid = await a_paid_payment(payments)
        first = a_refund(paid, "re_1", 1500)
        await refunds.begin(first)

        again = await refunds.begin(a_refund(paid, "re_1", 999))

        assert (again.created, again.refund) == (False, first)
        assert await amounts(redis) == ("0", "1500")

    async def test_more_than_is_left_is_refused_naming_what_is_left(self, payments, refunds):
        paid = await a_paid_payment(payments)
        await refunds.begin(a_refund(paid, "re_1", 3000))

        with pytest.raises(RefundExceedsPayment) as refused:
            await refunds.begin(a_refund(paid, "re_2", 1001))

        assert refused.value.extra == {"amountRefundable": "10.00", "currency": "USD"}
        assert await refunds.list_for_payment("pay_1") == [a_refund(paid, "re_1", 3000)]

    async def test_a_payment_that_did_not_succeed_is_not_refundable(self, payments, refunds):
        request = PaymentRequest("ord_1", "cus_1", Money(4000, "USD"), "pm_card_visa", None)
        pending = Payment.start(request, "pay_1", NOW)
        await payments.begin(pending)
        with pytest.raises(PaymentNotRefundable):
            await refunds.begin(a_refund(pending, "re_1", 100))

    async def test_an_unknown_payment_is_not_found(self, refunds):
        request = PaymentRequest("ord_1", "cus_1", Money(4000, "USD"), "pm_card_visa", None)
        with pytest.raises(PaymentNotFound):
            await refunds.begin(a_refund(Payment.start(request, "pay_1", NOW), "re_1", 100))

    async def test_twenty_concurrent_partial_refunds_never_sum_above_the_charge(
        self, payments, refunds, redis
    ):
        paid = await a_paid_payment(payments)  # 40.00; 20 x 3.00 = 60.00 asked at once
        attempts = [refunds.begin(a_refund(paid, f"re_{n}", 300)) for n in range(20)]

        results = await asyncio.gather(*attempts, return_exceptions=True)

        begun = [r for r in results if not isinstance(r, Exception)]
        refused = [r for r in results if isinstance(r, RefundExceedsPayment)]
        assert (len(begun), len(refused)) == (13, 7)  # 13 x 3.00 = 39.00; 1.00 is left
        for result in begun:
            await settle(refunds, paid, result.refund)
        assert await amounts(redis) == ("3900", "0")


class TestSettle:
    async def test_a_success_moves_the_amount_to_refunded_and_queues_its_event(
        self, payments, refunds, redis
    ):
        paid = await a_paid_payment(payments)
        refund = a_refund(paid, "re_1", 4000)
        await refunds.begin(refund)

        settled = await settle(refunds, paid, refund)

        assert settled.status is RefundStatus.SUCCEEDED
        assert await refunds.get("re_1") == settled
        assert await amounts(redis) == ("4000", "0")
        assert await redis.zcard(KEYS.refunds_pending(vshard_in("re_1"))) == 0
        stored = await payments.get("pay_1")
        assert stored.refunded and stored.amount_refunded_minor == 4000
        [(_, fields)] = (await outbox(redis))[1:]  # after the payment's
        assert (fields["kind"], fields["key"], fields["eventId"]) == (
            "refund-succeeded", "ord_1", "evt_re_1",
        )  # fmt: skip
        value = json.loads(fields["value"])
        assert (value["refundId"], value["paymentAmountRefunded"], value["paymentRefunded"]) == (
            "re_1", "40.00", True,
        )  # fmt: skip
        assert value["sequence"] == 2  # the order's payment event was 1

    async def test_a_failure_gives_the_amount_back(self, payments, refunds, redis):
        paid = await a_paid_payment(payments)
        refund = a_refund(paid, "re_1", 4000)
        await refunds.begin(refund)

        settled = await settle(refunds, paid, refund, ok=False)

        assert (settled.status, settled.error_code) == (RefundStatus.FAILED, "declined")
        assert await amounts(redis) == ("0", "0")
        (_, fields) = (await outbox(redis))[-1]
        assert fields["kind"] == "refund-failed"
        assert (await refunds.begin(a_refund(paid, "re_2", 4000))).created

    async def test_settling_twice_writes_once(self, payments, refunds, redis):
        paid = await a_paid_payment(payments)
        refund = a_refund(paid, "re_1", 1000)
        await refunds.begin(refund)
        first = await settle(refunds, paid, refund)

        again = await settle(refunds, paid, refund, ok=False)

        assert again == first
        assert await amounts(redis) == ("1000", "0")
        assert len(await outbox(redis)) == 2  # the payment's event and this one
        assert await redis.get(KEYS.order_sequence("ord_1")) == "2"


async def test_pending_refunds_older_than_a_cutoff_oldest_first(payments, refunds):
    paid = await a_paid_payment(payments)
    old, older = (
        a_refund(paid, "re_old", 100, NOW),
        a_refund(paid, "re_older", 100, NOW - timedelta(minutes=5)),
    )
    new = a_refund(paid, "re_new", 100, NOW + timedelta(minutes=5))
    for refund in (old, older, new):
        await refunds.begin(refund)
    await settle(refunds, paid, old)

    found = await refunds.pending_older_than(NOW + timedelta(minutes=1), range(VSHARDS))

    assert [r.refund_id for r in found] == ["re_older"]


@pytest.mark.parametrize("release", [True, False])
async def test_a_refund_releases_its_order_only_when_told(payments, refunds, release):
    paid = await a_paid_payment(payments)
    await refunds.begin(a_refund(paid, "re_1", 4000), release_order=release)
    assert (await payments.succeeded_for("ord_1") is None) is release
