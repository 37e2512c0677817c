"""Redis adapters on fakeredis (Lua scripts run through lupa): the upstream order and
reservation hashes, and the payment store's begin/settle guards with its outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from raypay.adapters.event_payload import to_payload
from raypay.adapters.keys import Keys
from raypay.adapters.redis_client import translated
from raypay.adapters.redis_store import RedisOrders, RedisPayments, RedisReservations
from raypay.domain.errors import StoreUnavailable
from raypay.domain.events import event_for
from raypay.domain.model import Order, Payment, PaymentRequest, PaymentStatus, Reservation
from raypay.domain.money import Money
from raypay.domain.sharding import VSHARDS, vshard_of

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


def a_payment(payment_id: str = "pay_1", order_id: str = "ord_1", at: datetime = NOW) -> Payment:
    request = PaymentRequest(order_id, "cus_1", Money(4000, "USD"), "pm_card_visa", "res_1")
    return Payment.start(request, payment_id, at)


def succeeded(payment: Payment) -> Payment:
    return payment.succeed("txn_1", NOW + timedelta(seconds=1), simulated=True)


def failed(payment: Payment) -> Payment:
    return payment.fail("card_declined", "Your card was declined.", NOW + timedelta(seconds=1))


KEYS = Keys("raypay")


def pending_index() -> str:
    """ord_1's pending set (its vshard's)."""
    return KEYS.pending_index(vshard_of("ord_1"))


def outbox() -> str:
    return KEYS.outbox(vshard_of("ord_1"))


@pytest.fixture
def payments(redis, keys) -> RedisPayments:
    return RedisPayments(redis, keys)


async def settle(payments: RedisPayments, payment: Payment, event_id: str = "evt_1") -> Payment:
    return await payments.settle(payment, event_for(payment, event_id, NOW))


class TestUpstreamRecords:
    async def test_an_order_hash_becomes_an_order(self, redis, keys):
        await redis.hset(
            keys.order("ord_1"),
            mapping={
                "customerId": "cus_1",
                "amountMinor": "4000",
                "currency": "USD",
                "status": "pending_payment",
            },
        )
        order = await RedisOrders(redis, keys).get("ord_1")
        assert order == Order("ord_1", "cus_1", Money(4000, "USD"), "pending_payment")

    async def test_a_missing_order_is_none(self, redis, keys):
        assert await RedisOrders(redis, keys).get("ord_missing") is None

    @pytest.mark.parametrize("expires", ["2026-05-01T12:15:00Z", "2026-05-01T12:15:00+00:00"])
    async def test_a_reservation_hash_becomes_a_reservation(self, redis, keys, expires):
        await redis.hset(
            keys.reservation("res_1", "ord_1"),
            mapping={
                "orderId": "ord_1",
                "customerId": "cus_1",
                "status": "active",
                "expiresAt": expires,
            },
        )
        reservation = await RedisReservations(redis, keys).get("res_1", "ord_1")
        assert reservation == Reservation(
            "res_1", "ord_1", "cus_1", "active", datetime(2026, 5, 1, 12, 15, tzinfo=UTC)
        )

    async def test_a_missing_reservation_is_none(self, redis, keys):
        assert await RedisReservations(redis, keys).get("res_missing", "ord_1") is None

    async def test_the_key_prefix_is_configurable(self, redis):
        await redis.hset(
            Keys("shop").order("ord_1"),
            mapping={"customerId": "c", "amountMinor": "5", "currency": "JPY", "status": "paid"},
        )
        assert await RedisOrders(redis, Keys("shop")).get("ord_1") is not None
        assert await RedisOrders(redis, Keys("raypay")).get("ord_1") is None


class TestBegin:
    async def test_it_records_a_pending_payment_and_its_indexes(self, redis, payments):
        payment = a_payment()

        begun = await payments.begin(payment)

        assert (begun.payment, begun.created) == (payment, True)
        assert await payments.get("pay_1") == payment
        assert await redis.get(KEYS.pending("ord_1")) == "pay_1"
        assert await redis.lrange(KEYS.order_payments("ord_1"), 0, -1) == ["pay_1"]
        assert await redis.zscore(pending_index(), "pay_1") == NOW.timestamp() * 1000
        assert await redis.get(KEYS.succeeded("ord_1")) is None

    async def test_the_stored_hash_has_the_camelcase_fields_and_minor_units(self, redis, payments):
        await payments.begin(a_payment())

        stored = await redis.hgetall(KEYS.payment("pay_1"))
        assert stored["amountMinor"] == "4000"
        assert "amount" not in stored
        assert (stored["status"], stored["currency"], stored["isSimulated"]) == (
            "pending",
            "USD",
            "1",
        )
        assert stored["createdAt"] == "2026-05-01T12:00:00.250Z"

    async def test_a_second_begin_for_the_order_returns_the_pending_one(self, redis, payments):
        first = a_payment("pay_1")
        await payments.begin(first)

        begun = await payments.begin(a_payment("pay_2"))

        assert (begun.payment, begun.created) == (first, False)
        assert await payments.get("pay_2") is None
        assert await redis.lrange(KEYS.order_payments("ord_1"), 0, -1) == ["pay_1"]

    async def test_after_success_begin_returns_the_succeeded_payment(self, payments):
        first = a_payment("pay_1")
        await payments.begin(first)
        paid = await settle(payments, succeeded(first))

        begun = await payments.begin(a_payment("pay_2"))

        assert (begun.payment, begun.created) == (paid, False)
        assert await payments.succeeded_for("ord_1") == paid

    async def test_after_a_failure_a_new_attempt_may_begin(self, payments):
        first = a_payment("pay_1")
        await payments.begin(first)
        await settle(payments, failed(first))

        begun = await payments.begin(a_payment("pay_2"))

        assert (begun.payment.payment_id, begun.created) == ("pay_2", True)
        assert await payments.succeeded_for("ord_1") is None

    async def test_other_orders_are_not_blocked(self, payments):
        await payments.begin(a_payment("pay_1", "ord_1"))
        assert (await payments.begin(a_payment("pay_2", "ord_2"))).created


class TestSettle:
    async def test_success_records_the_outcome_and_queues_one_event(self, redis, payments):
        payment = a_payment()
        await payments.begin(payment)
        paid = succeeded(payment)
        event = event_for(paid, "evt_1", NOW)

        assert await payments.settle(paid, event) == paid

        assert await payments.get("pay_1") == paid
        assert await redis.get(KEYS.succeeded("ord_1")) == "pay_1"
        assert await redis.get(KEYS.pending("ord_1")) is None
        assert await redis.zscore(pending_index(), "pay_1") is None
        ((_, fields),) = await redis.xrange(outbox())
        assert fields["eventId"] == "evt_1"
        assert (fields["kind"], fields["key"]) == ("payment-succeeded", "ord_1")
        assert json.loads(fields["value"]) == {**to_payload(event), "sequence": 1}
        assert await redis.get(KEYS.order_sequence("ord_1")) == "1"

    async def test_each_event_of_an_order_gets_the_next_sequence_number(self, redis, payments):
        first = a_payment("pay_1", "ord_1")
        await payments.begin(first)
        await settle(payments, failed(first), "evt_1")
        other = a_payment("pay_9", "ord_9")
        await payments.begin(other)
        await settle(payments, succeeded(other), "evt_9")
        second = a_payment("pay_2", "ord_1")
        await payments.begin(second)
        await settle(payments, succeeded(second), "evt_2")

        numbered = [
            (fields["key"], json.loads(fields["value"])["sequence"])
            for _, fields in await redis.xrange(outbox())
        ]
        assert numbered == [("ord_1", 1), ("ord_9", 1), ("ord_1", 2)]

    async def test_a_failure_frees_the_order_and_queues_a_failed_event(self, redis, payments):
        payment = a_payment()
        await payments.begin(payment)

        stored = await settle(payments, failed(payment))

        assert stored.status is PaymentStatus.FAILED
        assert await redis.get(KEYS.pending("ord_1")) is None
        assert await redis.get(KEYS.succeeded("ord_1")) is None
        ((_, fields),) = await redis.xrange(outbox())
        assert fields["kind"] == "payment-failed"

    async def test_settling_twice_keeps_the_first_outcome_and_one_event(self, redis, payments):
        payment = a_payment()
        await payments.begin(payment)
        paid = await settle(payments, succeeded(payment), "evt_1")

        again = await settle(payments, failed(payment), "evt_2")

        assert again == paid
        assert await payments.get("pay_1") == paid
        assert await redis.xlen(outbox()) == 1
        assert await redis.get(KEYS.order_sequence("ord_1")) == "1"  # no number spent

    async def test_the_stored_payment_round_trips_every_field(self, payments):
        payment = Payment.start(
            PaymentRequest("ord_1", "cus_1", Money(1234, "KWD"), "pm_card_amex"), "pay_1", NOW
        )
        await payments.begin(payment)
        declined = payment.fail("expired_card", "Expired.", NOW, simulated=False)
        await settle(payments, declined)

        assert await payments.get("pay_1") == declined

    async def test_a_missing_payment_cannot_be_settled(self, payments):
        with pytest.raises(StoreUnavailable):
            await settle(payments, succeeded(a_payment("pay_ghost")))


class TestQueries:
    async def test_list_for_order_returns_attempts_oldest_first(self, payments):
        for n, outcome in enumerate([failed, failed, succeeded], start=1):
            payment = a_payment(f"pay_{n}", at=NOW + timedelta(seconds=n))
            assert (await payments.begin(payment)).created
            await settle(payments, outcome(payment), f"evt_{n}")

        history = await payments.list_for_order("ord_1")

        assert [p.payment_id for p in history] == ["pay_1", "pay_2", "pay_3"]
        assert [p.status for p in history] == ["failed", "failed", "succeeded"]

    async def test_an_order_without_payments_has_an_empty_list(self, payments):
        assert await payments.list_for_order("ord_none") == []

    async def test_pending_older_than_finds_the_old_pending_ones_oldest_first(self, payments):
        for n, age in [(1, 60), (2, 300), (3, 5), (4, 120)]:
            await payments.begin(a_payment(f"pay_{n}", f"ord_{n}", NOW - timedelta(seconds=age)))
        await settle(payments, succeeded(a_payment("pay_4", "ord_4", NOW - timedelta(minutes=2))))

        old = await payments.pending_older_than(NOW - timedelta(seconds=30), range(VSHARDS))

        assert [p.payment_id for p in old] == ["pay_2", "pay_1"]
        assert all(p.status is PaymentStatus.PENDING for p in old)

    async def test_pending_older_than_honours_the_limit(self, payments):
        for n in range(5):
            await payments.begin(a_payment(f"pay_{n}", f"ord_{n}", NOW - timedelta(minutes=n)))

        old = await payments.pending_older_than(NOW, range(VSHARDS), limit=2)

        assert [p.payment_id for p in old] == ["pay_4", "pay_3"]


class TestRedisTrouble:
    @pytest.fixture
    async def refused(self):
        # Loopback port 1: the connection is refused at once; no retries, to stay fast.
        client = aioredis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
        yield client
        await client.aclose()

    async def test_reads_become_store_unavailable(self, refused, keys):
        with pytest.raises(StoreUnavailable):
            await RedisOrders(refused, keys).get("ord_1")
        with pytest.raises(StoreUnavailable):
            await RedisReservations(refused, keys).get("res_1", "ord_1")
        with pytest.raises(StoreUnavailable):
            await RedisPayments(refused, keys).succeeded_for("ord_1")

    async def test_writes_become_store_unavailable(self, refused, keys):
        payment = a_payment()
        with pytest.raises(StoreUnavailable):
            await RedisPayments(refused, keys).begin(payment)
        with pytest.raises(StoreUnavailable):
            await settle(RedisPayments(refused, keys), succeeded(payment))

    @pytest.mark.parametrize(
        "error", [RedisTimeoutError("slow"), ResponseError("OOM"), ConnectionResetError()]
    )
    async def test_timeouts_and_server_errors_become_store_unavailable(self, error):
        with pytest.raises(StoreUnavailable) as raised:
            async with translated():
                raise error
        assert raised.value.__cause__ is error
        assert raised.value.retriable
