"""Batched scripts (raypay/adapters/script_batch.py) on a real 3-master Redis Cluster:
the calls of one loop turn grouped by hash slot, one EVALSHA per slot; durable steps
answered only once a replica has them (WAIT), a 503 when none confirms."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from unit.test_script_batch import (  # noqa: F401
    BODY,
    test_calls_in_later_turns_go_in_later_batches,
    test_one_calls_error_is_its_own,
)

from raypay.adapters.keys import Keys
from raypay.adapters.redis_client import Replicas
from raypay.adapters.redis_store import RedisPayments
from raypay.adapters.script_batch import BatchedScript
from raypay.domain.errors import StoreUnavailable
from raypay.domain.model import Payment, PaymentRequest
from raypay.domain.money import Money
from raypay.domain.ports import new_id
from raypay.domain.sharding import vshard_of

pytestmark = pytest.mark.integration


async def evalsha_calls(redis) -> int:
    stats = await redis.info("commandstats", target_nodes=redis.PRIMARIES)
    return sum(
        node_stats.get("cmdstat_evalsha", {}).get("calls", 0) for node_stats in stats.values()
    )


async def test_the_calls_of_one_turn_go_as_one_evalsha_per_slot(redis):
    script = BatchedScript(redis, BODY)
    names = [f"{{vs{v}}}:k" for v in range(40)] * 3  # 40 slots, three calls each
    await asyncio.gather(*(script(keys=[name], args=["0"]) for name in names[:40]))  # loaded
    before = await evalsha_calls(redis)

    results = await asyncio.gather(
        *(script(keys=[name], args=[str(n)]) for n, name in enumerate(names))
    )

    assert [r[1] for r in results] == [str(n) for n in range(len(names))]
    assert await evalsha_calls(redis) - before == 40


def a_payment(order_id: str) -> Payment:
    request = PaymentRequest(order_id, "cus_1", Money(4000, "USD"), "pm_card_visa", None)
    return Payment.start(request, new_id("pay", vshard_of(order_id)), datetime.now(UTC))


async def test_a_durable_step_is_answered_once_a_replica_has_it(redis, redis_cluster):
    payments = RedisPayments(redis, Keys("raypay", cluster=True), Replicas(1, 500))
    begun = await asyncio.gather(*(payments.begin(a_payment(f"ord_{n}")) for n in range(50)))
    assert all(b.created for b in begun)


async def test_without_a_replica_to_confirm_it_a_durable_step_is_a_503_and_its_retry_is_safe(
    redis, redis_cluster
):
    keys = Keys("raypay", cluster=True)
    payments = RedisPayments(redis, keys, Replicas(1, 300))
    payment = a_payment("ord_lonely")
    slot = redis.keyslot(keys.payment(payment.payment_id))
    master = redis.nodes_manager.get_node_from_slot(slot).port
    (replica,) = redis_cluster.masters()[master]
    redis_cluster.kill(replica)
    try:
        with pytest.raises(StoreUnavailable, match="not confirmed by a replica"):
            await payments.begin(payment)
        # The write reached the master: the retry finds the same payment, begins nothing new.
        with pytest.raises(StoreUnavailable):
            await payments.begin(a_payment("ord_lonely"))
    finally:
        redis_cluster.start_node(replica)
        redis_cluster.wait_healthy(3)
    again = await payments.begin(a_payment("ord_lonely"))
    assert (again.created, again.payment.payment_id) == (False, payment.payment_id)


@pytest.fixture
def redis_with_replica(tmp_path):
    """One redis-server (not a cluster) with a replica: WAIT on one Redis."""
    from raypay.adapters.redis_client import connect_sync
    from raypay.tools.redis_cluster import free_cluster_ports
    from raypay.tools.stack import start_redis

    master_port, replica_port = free_cluster_ports(2)
    master = start_redis(tmp_path / "master", master_port)
    replica = start_redis(tmp_path / "replica", replica_port)
    connect_sync(replica.url).replicaof("127.0.0.1", master_port)
    deadline = time.monotonic() + 10
    while connect_sync(master.url).info("replication")["connected_slaves"] < 1:
        assert time.monotonic() < deadline, "the replica never connected"
        time.sleep(0.05)
    try:
        yield master, replica
    finally:
        replica.stop()
        master.stop()


async def test_on_one_redis_a_durable_step_waits_for_its_replica_too(redis_with_replica):
    from raypay.adapters.redis_client import connect

    master, replica = redis_with_replica
    client = connect(master.url, 2.0, pipelined=True)
    payments = RedisPayments(client, Keys("raypay"), Replicas(1, 300))
    try:
        begun = await asyncio.gather(*(payments.begin(a_payment(f"ord_{n}")) for n in range(20)))
        assert all(b.created for b in begun)
        replica.stop()
        with pytest.raises(StoreUnavailable, match="not confirmed by a replica"):
            await payments.begin(a_payment("ord_alone"))
    finally:
        await client.aclose()
