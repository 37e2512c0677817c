"""Where a load run meets the stack's stores: seed its orders, then read back what
happened to them from Redis and from the broker.

Keys read (raypay/adapters/keys.py): an order's payments, each payment's hash, the
simulator's charge counts and the outbox streams of the orders' vshards. The stores may
be one Redis or a Redis Cluster (``Target.redis_cluster``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raypay.adapters.keys import Keys
from raypay.domain.sharding import vshard_of
from raypay.tools.loadgen.invariants import EventFact, Evidence, PaymentFact
from raypay.tools.loadgen.plan import OrderPlan

CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Target:
    """A running raypay (or anything with its HTTP contract and Redis/Kafka layout)."""

    base_url: str
    redis_url: str
    kafka: str
    key_prefix: str = "raypay"
    topics: tuple[str, ...] = ("payment-succeeded", "payment-failed")
    api_key: str | None = None
    refund_topics: tuple[str, ...] = ("refund-succeeded", "refund-failed")
    fulfil_topics: tuple[str, ...] = ("payment-succeeded", "refund-succeeded")
    redis_cluster: bool = False

    def redis(self) -> Any:
        """An asyncio client of the target's Redis (or Redis Cluster)."""
        from raypay.adapters.redis_client import connect

        return connect(self.redis_url, 10.0, cluster=self.redis_cluster)

    def redis_sync(self) -> Any:
        from raypay.adapters.redis_client import connect_sync

        return connect_sync(self.redis_url, self.redis_cluster)


def seed_orders(target: Target, plans: list[OrderPlan], id_prefix: str) -> list[dict[str, str]]:
    """One order per plan (with a reservation where planned), in plan order."""
    from raypay.adapters.seeding import seed

    reserved = sum(1 for p in plans if p.reservation)
    client = target.redis_sync()
    try:
        options = {"id_prefix": id_prefix, "reservation_ttl_s": 24 * 3600}
        with_reservation = iter(
            seed(client, target.key_prefix, count=reserved, reservation=True, **options)
        )
        plain = iter(seed(client, target.key_prefix, count=len(plans) - reserved, **options))
    finally:
        client.close()
    return [next(with_reservation) if p.reservation else next(plain) for p in plans]


def _chunks(items: list[str], size: int = CHUNK) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def outbox_depth(redis, prefix: str, order_ids: set[str], cluster: bool = False) -> int:
    """Events of these orders still waiting in the outbox streams (their vshards')."""
    keys = Keys(prefix, cluster)
    streams = sorted({keys.outbox(vshard_of(order_id)) for order_id in order_ids})
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(stream)
        lengths = await pipe.execute()
    waiting = 0
    for stream in (s for s, n in zip(streams, lengths, strict=True) if n):
        start = "-"
        while True:
            entries = await redis.xrange(stream, min=start, max="+", count=CHUNK)
            waiting += sum(1 for _, fields in entries if fields.get("key") in order_ids)
            if len(entries) < CHUNK:
                break
            start = "(" + entries[-1][0]
    return waiting


async def wait_for_outbox(
    redis, prefix: str, order_ids: set[str], deadline: float, cluster: bool = False
) -> int:
    """Poll until none of these orders' events wait in the outbox, or the deadline."""
    while True:
        depth = await outbox_depth(redis, prefix, order_ids, cluster)
        if not depth or time.monotonic() >= deadline:
            return depth
        await asyncio.sleep(0.2)


async def read_payments(
    redis, prefix: str, order_ids: list[str]
) -> tuple[dict[str, list[PaymentFact]], dict[str, int]]:
    """Every payment of these orders, and the simulator's charge count per order."""
    keys = Keys(prefix)
    payment_ids: dict[str, list[str]] = {}
    charges: dict[str, int] = {}
    for chunk in _chunks(order_ids):
        by_vshard: dict[int, list[str]] = {}
        for order_id in chunk:
            by_vshard.setdefault(vshard_of(order_id), []).append(order_id)
        async with redis.pipeline(transaction=False) as pipe:
            for order_id in chunk:
                pipe.lrange(keys.order_payments(order_id), 0, -1)
            for vshard, orders in by_vshard.items():
                pipe.hmget(keys.charge_counts(vshard), orders)
            replies = await pipe.execute()
        lists, counts = replies[: len(chunk)], replies[len(chunk) :]
        payment_ids.update(zip(chunk, lists, strict=True))
        for orders, found in zip(by_vshard.values(), counts, strict=True):
            charges.update((o, int(c or 0)) for o, c in zip(orders, found, strict=True))
    every = [(o, p) for o, ids in payment_ids.items() for p in ids]
    payments: dict[str, list[PaymentFact]] = {order_id: [] for order_id in order_ids}
    for start in range(0, len(every), CHUNK):
        part = every[start : start + CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            for _, payment_id in part:
                pipe.hmget(keys.payment(payment_id), ["status", "errorCode"])
            rows = await pipe.execute()
        for (order_id, payment_id), (status, error_code) in zip(part, rows, strict=True):
            fact = PaymentFact(payment_id, order_id, status or "missing", error_code or None)
            payments[order_id].append(fact)
    return payments, charges


async def read_facts(
    kafka: str,
    topics: tuple[str, ...],
    order_ids: set[str],
    wanted: set[str],
    deadline: float,
    fact_of: Callable[[str, dict[str, Any]], tuple[Any, str]],
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """Every message of these orders on ``topics``, read from the beginning (no consumer
    group), turned into facts by ``fact_of(orderId, value) -> (fact, id)``, until every
    ``wanted`` id has one and the consumer has caught up, or the deadline."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=kafka,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    facts: list[Any] = []
    seen: set[str] = set()
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for messages in batch.values():
                for message in messages:
                    key = message.key.decode() if message.key else ""
                    if key not in order_ids:
                        continue
                    fact, fact_id = fact_of(key, json.loads(message.value))
                    facts.append(fact)
                    seen.add(fact_id)
            if on_progress is not None:
                on_progress(len(seen & wanted), len(wanted))
            if not batch and wanted <= seen:
                break  # caught up: later duplicates, if any, would already be here
    finally:
        await consumer.stop()
    return facts


async def read_events(
    target: Target,
    order_ids: set[str],
    wanted: set[str],
    deadline: float,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[EventFact]:
    """This run's payment events on both topics, until every ``wanted`` paymentId has one."""

    def fact_of(key: str, value: dict[str, Any]) -> tuple[EventFact, str]:
        event = EventFact(value["eventId"], value["paymentId"], key, value["eventType"])
        return event, value["paymentId"]

    return await read_facts(
        target.kafka, target.topics, order_ids, wanted, deadline, fact_of, on_progress
    )


async def gather_evidence(
    target: Target,
    order_ids: list[str],
    answered: dict[str, set[str]],
    drain_timeout_s: float = 60.0,
    on_progress: Callable[[str], None] | None = None,
) -> Evidence:
    """Wait (bounded) for the outbox to drain, then read payments, charges and events."""
    say = on_progress or (lambda _: None)
    deadline = time.monotonic() + drain_timeout_s
    client = target.redis()
    wanted_orders = set(order_ids)
    try:
        say("waiting for the outbox to drain")
        depth = await wait_for_outbox(
            client, target.key_prefix, wanted_orders, deadline, target.redis_cluster
        )
        say("reading payments and charges from Redis")
        payments, charges = await read_payments(client, target.key_prefix, order_ids)
    finally:
        await client.aclose()
    settled = {p.payment_id for ps in payments.values() for p in ps if p.status != "pending"}
    say(f"reading events of {len(settled)} settled payments from the broker")
    events = await read_events(
        target,
        wanted_orders,
        settled,
        max(deadline, time.monotonic() + 10.0),
        lambda found, wanted: say(f"events: {found}/{wanted} payments announced"),
    )
    return Evidence(order_ids, payments, charges, events, answered, depth)
