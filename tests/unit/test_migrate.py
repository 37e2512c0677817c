"""``raypay migrate-keys`` on fakeredis: data written under the names before vshards is
found by today's stores after the rename, and nothing is renamed while the old version
still has events to deliver or payments pending."""

from __future__ import annotations

import fakeredis
import pytest

from raypay.adapters.keys import Keys
from raypay.adapters.redis_store import RedisOrders, RedisPayments, RedisReservations
from raypay.adapters.refund_store import RedisRefunds
from raypay.domain.sharding import VSHARDS, vshard_of
from raypay.tools.migrate import NotDrained, migrate

pytestmark = pytest.mark.unit

PAYMENT = {
    "paymentId": "pay_0a1b", "orderId": "ord_1", "customerId": "cus_1", "reservationId": "res_1",
    "amountMinor": "4000", "currency": "USD", "paymentMethod": "pm_card_visa",
    "status": "succeeded", "transactionId": "txn_1", "errorCode": "", "errorMessage": "",
    "createdAt": "2026-05-01T12:00:00.000Z", "processedAt": "2026-05-01T12:00:01.000Z",
    "isSimulated": "1", "amountRefundedMinor": "0",
}  # fmt: skip


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def old(server) -> fakeredis.FakeRedis:
    """A Redis as the version before vshards left it: one paid order, its charge counted."""
    r = fakeredis.FakeRedis(server=server, decode_responses=True)
    order = {"customerId": "cus_1", "amountMinor": "4000", "currency": "USD",
             "status": "pending_payment"}  # fmt: skip
    r.hset("raypay:order:ord_1", mapping=order)
    r.hset("raypay:reservation:res_1", mapping={"orderId": "ord_1", "customerId": "cus_1",
           "status": "active", "expiresAt": "2026-05-01T12:15:00.000Z"})  # fmt: skip
    r.hset("raypay:payment:pay_0a1b", mapping=PAYMENT)
    r.rpush("raypay:order:ord_1:payments", "pay_0a1b")
    r.set("raypay:order:ord_1:succeeded", "pay_0a1b")
    r.set("raypay:gw:charge:pay_0a1b", '{"approved": true}')
    r.hset("raypay:gw:charges", mapping={"ord_1": 1, "ord_2": 2})
    r.set("raypay:gw:charges:total", 3)
    r.hset("raypay:refund-batch:b1", mapping={"batchId": "b1"})
    r.sadd("raypay:refund-batches:open", "b1")
    r.hset("raypay:rl:key:k1", mapping={"tokens": "1", "at": "0"})
    r.set("raypay:idem:key-1", "{}")
    r.hset("raypay:apikey:abc", mapping={"role": "admin"})
    r.xadd("raypay:outbox:delivered", {"eventId": "evt_1", "kind": "k", "key": "ord_1"})
    r.zadd("raypay:pending", {"pay_gone": 1})
    r.zrem("raypay:pending", "pay_gone")  # settled: an empty set is no key
    return r


async def test_the_old_data_is_found_by_todays_stores(old, server):
    done = migrate(old, "raypay")

    assert done == {"renamed": 8, "deleted": 3, "counts split": 2}
    keys, redis = Keys("raypay"), fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
    assert (await RedisOrders(redis, keys).get("ord_1")).customer_id == "cus_1"
    assert (await RedisReservations(redis, keys).get("res_1", "ord_1")).status == "active"
    payments = RedisPayments(redis, keys)
    assert (await payments.succeeded_for("ord_1")).payment_id == "pay_0a1b"
    assert [p.payment_id for p in await payments.list_for_order("ord_1")] == ["pay_0a1b"]
    assert await RedisRefunds(redis, keys).list_for_payment("pay_0a1b") == []
    assert old.hget(keys.charge_counts(vshard_of("ord_2")), "ord_2") == "2"
    totals = sum(int(old.get(keys.charge_total(v)) or 0) for v in range(VSHARDS))
    assert totals == 3
    assert old.sismember(keys.open_batches, "b1") and old.exists(keys.batch("b1"))
    assert old.get("raypay:idem:key-1") == "{}" and old.exists("raypay:apikey:abc")
    assert not old.exists("raypay:rl:key:k1", "raypay:outbox:delivered", "raypay:gw:charges")
    assert migrate(old, "raypay") == {"renamed": 0, "deleted": 0, "counts split": 0}


def test_a_dry_run_changes_nothing(old):
    before = sorted(old.keys("*"))
    assert migrate(old, "raypay", dry_run=True)["renamed"] == 8
    assert sorted(old.keys("*")) == before


@pytest.mark.parametrize("waiting", ["outbox", "pending", "refunds:pending"])
def test_nothing_is_renamed_while_the_old_version_has_work_left(old, waiting):
    if waiting == "outbox":
        old.xadd("raypay:outbox", {"eventId": "evt_2"})
    else:
        old.zadd(f"raypay:{waiting}", {"pay_x": 1})
    with pytest.raises(NotDrained, match=waiting):
        migrate(old, "raypay")
    assert old.exists("raypay:order:ord_1")
