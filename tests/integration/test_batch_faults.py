"""A refund batch survives the death of its runner and of a shard (on the fault stack,
where batches run at 10 refunds a second and the gateway takes 300 ms): it finishes, and
every order is refunded exactly once."""

from __future__ import annotations

import asyncio

import pytest
import ray
from raystack import eventually

pytestmark = pytest.mark.integration


async def progress(service, batch_id: str) -> dict:
    return (await service.http.get(f"/v1/refund-batches/{batch_id}")).json()


async def test_a_batch_survives_its_runner_and_a_shard_dying(faults):
    service = faults.service
    orders = [service.seed(amount="5.00") for _ in range(30)]
    paid = await asyncio.gather(
        *(eventually(lambda o=o: service.pay(o), lambda r: r.status_code < 500) for o in orders)
    )
    assert {r.status_code for r in paid} == {201}
    created = await service.http.post(
        "/v1/refund-batches",
        json={"orderIds": [o["orderId"] for o in orders], "reason": "event_cancelled"},
    )
    assert created.status_code == 202, created.text
    batch_id = created.json()["batchId"]

    await eventually(lambda: progress(service, batch_id), lambda b: b["done"] >= 5)
    ray.kill(faults.actor("refund-batches"), no_restart=False)
    await eventually(lambda: progress(service, batch_id), lambda b: b["done"] >= 12, within=60)
    ray.kill(faults.shard_of(orders[-1]["orderId"]), no_restart=False)

    done = await eventually(
        lambda: progress(service, batch_id), lambda b: b["status"] == "done", within=120
    )
    assert (done["succeeded"], done["failed"], done["skipped"]) == (30, 0, 0)
    for order, payment in zip(orders, paid, strict=True):
        assert service.refunds_made(order["orderId"]) == 1
        listed = await service.http.get(f"/v1/payments/{payment.json()['paymentId']}/refunds")
        assert [r["status"] for r in listed.json()["refunds"]] == ["succeeded"]
