"""Faults injected for real: killed actors, a stopped broker, a stopped Redis.

The promise: every order is charged at most once, every recorded outcome reaches
Kafka at least once, and a client that retries a 5xx ends with the right answer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
import ray
from raystack import EventLog, after_a_later_event, consuming, eventually, json_lines_with

pytestmark = pytest.mark.integration


async def statuses(service, order_id: str) -> list[str]:
    listed = (await service.http.get(f"/v1/orders/{order_id}/payments")).json()
    return [p["status"] for p in listed["payments"]]


def delivered_log(service) -> Counter:
    """How often the outbox relay logged each eventId as delivered."""
    return Counter(fields["eventId"] for _, fields in service.delivered_entries())


def topics(service) -> list[str]:
    return [service.settings.topic_succeeded, service.settings.topic_failed]


async def events_after_restart(faults, payment_ids: set[str]) -> EventLog:
    """Every message on the restarted broker, once the events of these payments came."""
    async with consuming(faults.broker.url, topics(faults.service)) as log:
        # The relay backs off (up to 5 s) while the broker is away, and the producer
        # needs a metadata refresh once it is back: a generous but finite deadline.
        try:
            await eventually(
                lambda: {m["value"]["paymentId"] for m in log.messages},
                lambda seen: payment_ids <= seen,
                within=90,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nrelay: {await relay_state(faults.service)}") from None
    return log


async def relay_state(service) -> dict:
    """What the outbox and the relay say, for a failure message."""
    ready = await service.http.get("/readyz")
    return {
        "outbox": len(service.outbox_entries()),
        "delivered": len(service.delivered_entries()),
        "readyz": ready.json(),
    }


async def until_pending(service, order_id: str) -> None:
    """Until the order's payment is pending in Redis: its charge is then in flight (the
    simulated gateway takes 300 ms). A fixed sleep sometimes killed before it had begun."""
    await eventually(
        lambda: statuses(service, order_id), lambda found: found == ["pending"], within=5
    )


async def producer_status(faults) -> dict:
    return await faults.actor("producer").status.remote()


async def pay_until_final(service, order, **overrides):
    """A client that retries 5xx, as the contract tells it to."""
    return await eventually(
        lambda: service.pay(order, **overrides), lambda r: r.status_code < 500, within=30
    )


async def test_shard_killed_mid_charge_then_retry_charges_once(faults, ray_local):
    service = faults.service
    order = service.seed()
    request_id = f"req-{uuid.uuid4().hex}"
    in_flight = asyncio.ensure_future(service.pay(order, headers={"X-Request-ID": request_id}))
    await until_pending(service, order["orderId"])
    ray.kill(faults.shard_of(order["orderId"]), no_restart=False)
    first = await in_flight
    assert first.status_code == 503, first.text
    assert first.json()["code"] == "unavailable"
    # The shard died with the request: the ingress writes its outcome line.
    [line] = await eventually(
        lambda: [
            found
            for found in json_lines_with(ray_local.logs_dir, request_id)
            if found.get("outcome") == "unavailable"
        ],
        bool,
        within=20,
    )
    assert (line["orderId"], line["customerId"], line["code"]) == (
        order["orderId"],
        order["customerId"],
        "shard",
    )
    final = await pay_until_final(service, order)
    assert final.status_code in (200, 201), final.text
    assert service.charges(order["orderId"]) == 1
    assert await statuses(service, order["orderId"]) == ["succeeded"]
    async with consuming(faults.broker.url, topics(service)) as log:
        [event] = await log.wait_for(order["orderId"], 1)
        delivered = await after_a_later_event(service, log)
        assert log.for_order(order["orderId"]) == [event]
        assert [
            (e["eventId"], e["kind"], e["key"]) for e in delivered if e["key"] == order["orderId"]
        ] == [(event["value"]["eventId"], "payment-succeeded", event["key"])]


async def test_gateway_killed_mid_charge_then_retry_charges_once(faults):
    service = faults.service
    order = service.seed()
    in_flight = asyncio.ensure_future(service.pay(order))
    await until_pending(service, order["orderId"])
    for index in range(faults.args.gateway_pool):
        ray.kill(faults.actor(f"gateway-{index}"), no_restart=False)
    assert (await in_flight).status_code == 503
    final = await pay_until_final(service, order)
    assert final.status_code in (200, 201), final.text
    assert service.charges(order["orderId"]) == 1
    assert await statuses(service, order["orderId"]) == ["succeeded"]


async def test_payment_abandoned_by_a_killed_shard_is_settled_by_the_sweep(faults):
    service = faults.service
    order = service.seed()
    in_flight = asyncio.ensure_future(service.pay(order))
    await until_pending(service, order["orderId"])
    ray.kill(faults.shard_of(order["orderId"]), no_restart=False)
    assert (await in_flight).status_code == 503
    # No retry: the restarted shard's sweep settles it (sweep_after_s=3 in this app).
    settled = await eventually(
        lambda: statuses(service, order["orderId"]), lambda found: "pending" not in found
    )
    charged = service.charges(order["orderId"])
    assert settled == (["succeeded"] if charged else ["failed"])
    assert charged <= 1


async def test_payments_complete_while_broker_is_down_and_events_follow(faults):
    service = faults.service
    orders = [service.seed() for _ in range(100)]
    faults.stop_broker()
    try:
        responses = await asyncio.gather(*(service.pay(order) for order in orders))
        assert [r.status_code for r in responses] == [201] * 100
        ready = await service.http.get("/readyz")
        assert ready.status_code == 503
        assert "broker" in ready.json()["down"]
        assert ready.json()["checks"]["outbox"]["depth"] >= 100
    finally:
        faults.start_broker()
    ids = {r.json()["paymentId"] for r in responses}
    log = await events_after_restart(faults, ids)
    delivered = delivered_log(service)
    event_ids = {m["value"]["eventId"] for m in log.messages if m["value"]["paymentId"] in ids}
    assert len(event_ids) == 100
    assert all(delivered[event_id] == 1 for event_id in event_ids)
    ready = await eventually(lambda: service.http.get("/readyz"), lambda r: r.status_code == 200)
    assert ready.json()["checks"]["outbox"]["depth"] == 0


async def test_a_broker_back_without_its_topics_gets_no_event_until_they_exist(faults):
    # A send to a missing topic auto-creates it on the embedded broker, which then
    # acknowledged events no consumer ever saw: the relay must wait for the topics.
    service = faults.service
    orders = [service.seed() for _ in range(20)]
    faults.stop_broker()
    try:
        responses = await asyncio.gather(*(service.pay(order) for order in orders))
        assert {r.status_code for r in responses} == {201}
    finally:
        faults.start_broker(with_topics=False)
    ready = await eventually(
        lambda: service.http.get("/readyz"),
        lambda r: (r.json()["checks"]["broker"]["error"] or "").startswith("topics missing"),
    )
    assert ready.status_code == 503
    # Until the relay has tried since the broker came back (it backs off up to 5 s) and was
    # refused; then a fresh answer: every one of these events still waits, none went out.
    await eventually(
        lambda: producer_status(faults),
        lambda status: (status["lastError"] or "").startswith("topics missing"),
        within=15,
    )
    ready = await service.http.get("/readyz")
    assert (ready.status_code, ready.json()["down"]) == (503, ["broker"]), ready.text
    assert ready.json()["checks"]["broker"]["error"].startswith("topics missing")
    waiting = Counter(fields["key"] for _, fields in service.outbox_entries())
    assert ready.json()["checks"]["outbox"]["depth"] == waiting.total()
    order_ids = [order["orderId"] for order in orders]
    assert [waiting[order_id] for order_id in order_ids] == [1] * 20
    sent = {fields["key"] for _, fields in service.delivered_entries()}
    assert sent.isdisjoint(order_ids)
    faults.create_topics()
    ids = {r.json()["paymentId"] for r in responses}
    log = await events_after_restart(faults, ids)
    delivered = delivered_log(service)
    event_ids = {m["value"]["eventId"] for m in log.messages if m["value"]["paymentId"] in ids}
    assert len(event_ids) == 20 and all(delivered[e] == 1 for e in event_ids)


async def test_producer_killed_while_events_wait_delivers_them_after_restart(faults):
    service = faults.service
    orders = [service.seed() for _ in range(10)]
    faults.stop_broker()
    try:
        responses = await asyncio.gather(*(service.pay(order) for order in orders))
        assert {r.status_code for r in responses} == {201}
        ray.kill(faults.actor("producer"), no_restart=False)
    finally:
        faults.start_broker()
    ids = {r.json()["paymentId"] for r in responses}
    await events_after_restart(faults, ids)


async def test_redis_outage_answers_503_quickly_and_recovers(faults):
    service = faults.service
    before = [service.seed() for _ in range(5)]
    paid = [(await service.pay(order)).json()["paymentId"] for order in before]
    waiting = service.seed()
    faults.stop_redis()
    try:
        started = time.monotonic()
        response = await service.pay(waiting)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "unavailable"
        assert int(response.headers["Retry-After"]) >= 1
        assert elapsed < service.settings.shard_timeout_s
        ready = await service.http.get("/readyz")
        assert ready.status_code == 503 and "redis" in ready.json()["down"]
    finally:
        faults.start_redis()
    recovered = await pay_until_final(service, waiting)
    assert recovered.status_code == 201
    for payment_id in paid:
        fetched = await service.http.get(f"/v1/payments/{payment_id}")
        assert fetched.json()["status"] == "succeeded"


async def test_broker_killed_mid_burst_loses_no_event_of_the_burst_or_before_it(faults):
    # The embedded broker keeps everything in memory: SIGKILLed and started again (as
    # `raypay up`'s supervisor does, topics made again) it holds nothing. The relay
    # notices its marker is gone and delivers every retained event again.
    service = faults.service
    prefix = service.settings.key_prefix
    before = [service.seed() for _ in range(20)]
    paid_before = await asyncio.gather(*(pay_until_final(service, o) for o in before))
    async with consuming(faults.broker.url, topics(service)) as log:
        await log.wait_for_payments({r.json()["paymentId"] for r in paid_before})
    replays = (await producer_status(faults))["replays"]
    burst = [service.seed() for _ in range(200)]

    async def pay_at(index: int, order: dict):
        await asyncio.sleep(index * 0.02)  # ~50 orders/s for 4 s
        return await pay_until_final(service, order)

    in_flight = asyncio.gather(*(pay_at(i, order) for i, order in enumerate(burst)))
    burst_ids = {order["orderId"] for order in burst}
    await eventually(  # mid-burst: some of its events are delivered, most are to come
        lambda: (
            burst_ids & {f["key"] for _, f in service.redis.xrange(f"{prefix}:outbox:delivered")}
        ),
        lambda delivered: len(delivered) >= 20,
    )
    delivered_before_kill = {
        f["eventId"] for _, f in service.redis.xrange(f"{prefix}:outbox:delivered")
    }
    faults.kill_broker()
    try:
        await asyncio.sleep(1.0)
    finally:
        faults.restart_broker()
    responses = await in_flight
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses][:3]
    log_of_burst = await eventually(  # the relay caught up: each burst event delivered
        lambda: {
            f["key"]: f["eventId"]
            for _, f in service.redis.xrange(f"{prefix}:outbox:delivered")
            if f["key"] in burst_ids
        },
        lambda logged: logged.keys() == burst_ids,
        within=60,
    )
    wanted = delivered_before_kill | set(log_of_burst.values())
    assert len(wanted) >= len(before) + len(burst)
    async with consuming(faults.broker.url, topics(service) + refund_topics(service)) as log:
        await eventually(
            lambda: wanted - {m["value"]["eventId"] for m in log.messages},
            lambda missing: not missing,
            within=90,
        )
        seen = Counter(m["value"]["eventId"] for m in log.messages)
    assert {m for m in seen if m in wanted} == wanted
    burst_paid = {r.json()["paymentId"] for r in responses}
    assert burst_paid <= {m["value"]["paymentId"] for m in log.messages}
    status = await producer_status(faults)
    assert status["replays"] > replays and status["replayed"] >= len(delivered_before_kill)


def refund_topics(service) -> list[str]:
    return [service.settings.topic_refund_succeeded, service.settings.topic_refund_failed]
