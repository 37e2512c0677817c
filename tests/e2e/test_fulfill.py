"""``raypay fulfill`` as a real Kafka consumer group on the session's broker: pay -> ticket
issued -> refund -> ticket void, with every event delivered again (the same messages
produced a second time), and a consumer of the group restarted after its commits."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from raystack import eventually

from raypay.adapters.keys import Keys
from raypay.adapters.ticket_store import RedisTickets
from raypay.tools.fulfill import Fulfiller, consume

pytestmark = pytest.mark.e2e


async def test_pay_issues_a_ticket_and_the_full_refund_voids_it_once(service, broker, events):
    settings = service.settings
    topics = [settings.topic_succeeded, settings.topic_refund_succeeded]
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    fulfiller = Recording(RedisTickets(redis, Keys(settings.key_prefix)))
    stop, group = asyncio.Event(), f"fulfill-{uuid.uuid4().hex[:8]}"
    consumer = asyncio.ensure_future(consume(fulfiller, broker.url, topics, group, stop))
    try:
        payment = (await service.pay(service.seed(amount="30.00"))).json()
        ticket = await eventually(
            lambda: fulfiller.tickets.get(payment["paymentId"]), lambda t: t is not None
        )
        assert (ticket.status, ticket.order_id) == ("issued", payment["orderId"])

        partial = await service.refund(payment["paymentId"], amount="10.00")
        rest = await service.refund(payment["paymentId"])
        assert (partial.status_code, rest.status_code) == (201, 201)
        await eventually(
            lambda: fulfiller.tickets.get(payment["paymentId"]), lambda t: t.status == "void"
        )

        # Every event of the order delivered again: the same messages, produced anew.
        mine = await events.wait_for(payment["orderId"], 3)
        wanted = [m for m in mine if m["topic"] in topics]
        assert len(wanted) == 3  # payment-succeeded, two refund-succeeded
        await produce_again(broker.url, wanted)
        ids = [m["value"]["eventId"] for m in wanted]
        handled = await eventually(
            lambda: [fulfiller.seen[i] for i in ids], lambda seen: all(len(o) == 2 for o in seen)
        )
        # Each effect once: the partial refund's event changes no ticket either time.
        expected = [
            ["issued", "duplicate"]
            if m["value"]["eventType"] == "payment-succeeded"
            else ["voided", "duplicate"]
            if m["value"]["paymentRefunded"]
            else ["ignored", "ignored"]
            for m in wanted
        ]
        assert handled == expected and sorted(map(tuple, expected)) == [
            ("ignored", "ignored"), ("issued", "duplicate"), ("voided", "duplicate"),
        ]  # fmt: skip
        assert (await fulfiller.tickets.get(payment["paymentId"])).status == "void"
    finally:
        stop.set()
        await consumer
    # A consumer of the same group starts after the committed offsets: none of them again.
    again = Recording(fulfiller.tickets)
    await consume(again, broker.url, topics, group, idle_exit_s=2.0)
    assert not set(ids) & set(again.seen)
    await redis.aclose()


class Recording(Fulfiller):
    """A Fulfiller that notes each event's outcomes, by eventId."""

    def __init__(self, tickets: RedisTickets) -> None:
        super().__init__(tickets)
        self.seen: dict[str, list[str]] = defaultdict(list)

    async def handle(self, event: dict) -> str:
        outcome = await super().handle(event)
        self.seen[event["eventId"]].append(outcome)
        return outcome


async def produce_again(bootstrap: str, messages: list[dict]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(
                message["topic"],
                json.dumps(message["value"]).encode(),
                key=message["key"].encode(),
            )
    finally:
        await producer.stop()
