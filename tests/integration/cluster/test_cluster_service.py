"""The Serve app on a 3-master Redis Cluster (WAIT on): the HTTP contract as on one
Redis, and a master SIGKILLed during a paced burst of 1,000 orders."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from raystack import consuming, eventually

from raypay.domain.sharding import vshard_of
from raypay.tools.loadgen.evidence import Target
from raypay.tools.loadgen.plan import Scenario
from raypay.tools.loadgen.report import summary_lines
from raypay.tools.loadgen.runner import run_load

pytestmark = pytest.mark.integration


async def test_a_payment_its_reads_and_a_refund_on_the_cluster(cluster_service):
    service = cluster_service
    order = service.seed(reservation=True)
    settings = service.settings
    async with consuming(settings.kafka_bootstrap_servers, settings.topics()) as log:
        paid = await service.pay(order)
        assert paid.status_code == 201, paid.text
        payment_id = paid.json()["paymentId"]
        assert payment_id.startswith(f"pay_vs{vshard_of(order['orderId'])}_")
        again = await service.pay(order)
        assert again.status_code == 200 and again.json()["paymentId"] == payment_id

        found = await service.http.get(f"/v1/payments/{payment_id}")
        assert found.status_code == 200 and found.json()["status"] == "succeeded"
        listed = (await service.http.get(f"/v1/orders/{order['orderId']}/payments")).json()
        assert [p["paymentId"] for p in listed["payments"]] == [payment_id]

        refunded = await service.refund(payment_id, amount="5.00")
        assert refunded.status_code == 201, refunded.text
        assert refunded.json()["refundId"].startswith(f"re_vs{vshard_of(order['orderId'])}_")
        await log.wait_for(order["orderId"], 2)
    assert service.charges(order["orderId"]) == 1
    kinds = sorted(m["value"]["eventType"] for m in log.for_order(order["orderId"]))
    assert kinds == ["payment-succeeded", "refund-succeeded"]  # two topics: either first


def master_of(service, order_id: str) -> int:
    """The port of the master holding the order's vshard."""
    slot = service.redis.keyslot(service.keys.order(order_id))
    return service.redis.nodes_manager.get_node_from_slot(slot).port


@pytest.mark.timeout(300)
async def test_a_master_killed_during_a_burst_costs_503s_and_loses_nothing(
    cluster_service, redis_cluster
):
    service, settings = cluster_service, cluster_service.settings
    target = Target(
        base_url=service.base_url,
        redis_url=settings.redis_url,
        kafka=settings.kafka_bootstrap_servers,
        key_prefix=settings.key_prefix,
        topics=(settings.topic_succeeded, settings.topic_failed),
        api_key=service.api_key,
        redis_cluster=True,
    )
    scenario = Scenario(
        payments=1000, concurrency=40, arrival="rate", rate=150, duplicates=0.05, seed=11
    )
    victim = master_of(service, "ord-any")
    (replica,) = redis_cluster.masters()[victim]
    probes = [service.seed() for _ in range(60)]  # orders to ask while the master is gone
    on_victim = [o for o in probes if master_of(service, o["orderId"]) == victim]
    seen: dict[str, object] = {}

    async def fail_over() -> None:
        await asyncio.sleep(2.0)  # well into the burst
        redis_cluster.kill(victim)
        seen["killed_at"] = time.monotonic()
        answer = await service.pay(on_victim[0])
        seen["probe"] = (answer.status_code, answer.headers.get("retry-after"), answer.text)
        # Until the replica has taken over the dead master's slots.
        await eventually(
            lambda: redis_cluster.masters().get(replica) is not None, lambda up: up, 30
        )
        seen["promoted_after_s"] = time.monotonic() - seen["killed_at"]
        # What `raypay up` does with a dead server: start it again (same port and data);
        # it rejoins as the new master's replica, so WAIT is answered again.
        await asyncio.to_thread(redis_cluster.start_node, victim)
        await asyncio.to_thread(redis_cluster.wait_healthy, 3)
        seen["healthy_after_s"] = time.monotonic() - seen["killed_at"]

    task: asyncio.Task | None = None

    def firing() -> None:
        nonlocal task
        task = asyncio.get_running_loop().create_task(fail_over())

    result = await run_load(target, scenario, drain_timeout_s=60, on_firing=firing)
    assert task is not None
    await task

    assert result.ok, "\n".join(summary_lines(result))
    statuses = Counter(sample.status for sample in result.samples)
    assert statuses[503] > 0, statuses  # the dead master's orders answered 503 meanwhile
    assert set(statuses) <= {200, 201, 503}, statuses
    status, retry_after, text = seen["probe"]
    assert status == 503 and retry_after is not None, text
    # The probe orders, paid now that the cluster is whole again: each once.
    for order in on_victim:
        paid = await eventually(lambda o=order: service.pay(o), lambda r: r.status_code < 300)
        assert paid.status_code in (200, 201)
        assert service.charges(order["orderId"]) == 1
    print(
        f"\nfailover: {len(result.orders)} orders, {len(result.samples)} requests {dict(statuses)},"
        f" replica promoted after {seen['promoted_after_s']:.1f} s, whole again after"
        f" {seen['healthy_after_s']:.1f} s; checks: "
        + ", ".join(f"{c.name}: {c.detail}" for c in result.checks)
    )


async def test_the_cluster_answers_again_after_the_failover(cluster_service):
    order = cluster_service.seed()
    paid = await eventually(lambda: cluster_service.pay(order), lambda r: r.status_code == 201)
    assert paid.json()["status"] == "succeeded"
