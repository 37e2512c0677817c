"""``raypay fulfill``: the reference consumer of raypay's events, for a ticketing platform.

A Kafka consumer group on ``payment-succeeded`` and ``refund-succeeded`` that issues one
ticket per succeeded payment and voids it once the payment is fully refunded
(``paymentRefunded: true``), keeping tickets in Redis (adapters/ticket_store.py). It shows
the downstream contract:

* at least once: an event can come again (a relay retry, a consumer restart before its
  commit); de-duplicate on ``eventId``, and make each effect idempotent (one ticket per
  paymentId);
* order holds only within one topic's partition: a refund event can arrive before its
  payment's event, which is on another topic; a void that finds no ticket leaves a void
  one, which the late payment event finds and does not issue;
* offsets are committed after the events they cover are handled.

    raypay fulfill [--group raypay-fulfill] [--idle-exit SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from raypay.adapters.ticket_store import RedisTickets
from raypay.domain.model import iso

log = logging.getLogger("raypay.fulfill")
GROUP = "raypay-fulfill"


class Fulfiller:
    """Handles raypay's events into tickets; counts what it did (``outcomes``)."""

    def __init__(self, tickets: RedisTickets) -> None:
        self.tickets = tickets
        self.outcomes: Counter[str] = Counter()

    async def handle(self, event: dict[str, Any]) -> str:
        """One event's effect: ``issued``, ``voided``, ``voided_first``, ``duplicate``, ...
        or ``ignored`` (an event that changes no ticket)."""
        now = iso(datetime.now(UTC))
        kind = event.get("eventType")
        if kind == "payment-succeeded":
            outcome = await self.tickets.issue(
                event["eventId"], event["orderId"], event["paymentId"], now
            )
        elif kind == "refund-succeeded" and event.get("paymentRefunded"):
            outcome = await self.tickets.void(
                event["eventId"], event["orderId"], event["paymentId"], event["refundId"], now
            )
        else:
            outcome = "ignored"  # a failure, or a partial refund: the ticket stays
        self.outcomes[outcome] += 1
        return outcome


async def consume(
    fulfiller: Fulfiller,
    bootstrap: str,
    topics: list[str],
    group: str = GROUP,
    stop: asyncio.Event | None = None,
    idle_exit_s: float | None = None,
) -> None:
    """Consume ``topics`` in ``group`` until ``stop`` is set (or nothing came for
    ``idle_exit_s``), committing offsets after each handled batch."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    stop = stop or asyncio.Event()
    idle = 0.0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            for messages in batch.values():
                for message in messages:
                    await fulfiller.handle(json.loads(message.value))
            if batch:
                await consumer.commit()
                idle = 0.0
            else:
                idle += 0.5
                if idle_exit_s is not None and idle >= idle_exit_s:
                    return
    finally:
        await consumer.stop()


def _where(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """Redis and Kafka: the options, else the environment, else the running stack's."""
    import os
    from pathlib import Path

    from raypay.settings import Settings
    from raypay.tools.up import find_stack

    state = find_stack(Path(args.data_dir or Settings().data_dir).resolve()) or {}
    redis_url = (
        args.redis_url
        or os.environ.get("RAYPAY_REDIS_URL")
        or os.environ.get("REDIS_URL")
        or state.get("redis_url")
    )
    kafka = (
        args.kafka
        or os.environ.get("RAYPAY_KAFKA_BOOTSTRAP_SERVERS")
        or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or state.get("kafka_bootstrap_servers")
    )
    return redis_url, kafka


def cmd_fulfill(args: argparse.Namespace) -> int:
    import redis.asyncio as aioredis

    from raypay.adapters.keys import Keys
    from raypay.settings import Settings

    redis_url, kafka = _where(args)
    if not (redis_url and kafka):
        print(
            "no raypay found: start `raypay up`, or give --redis-url and --kafka", file=sys.stderr
        )
        return 2
    settings = Settings()
    prefix = args.key_prefix or settings.key_prefix
    topics = [settings.topic_succeeded, settings.topic_refund_succeeded]

    async def run() -> Counter[str]:
        redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        fulfiller = Fulfiller(RedisTickets(redis, Keys(prefix)))
        try:
            await consume(fulfiller, kafka, topics, args.group, idle_exit_s=args.idle_exit)
        finally:
            await redis.aclose()
        return fulfiller.outcomes

    print(f"fulfilling from {', '.join(topics)} at {kafka} (group {args.group})")
    try:
        outcomes = asyncio.run(run())
    except KeyboardInterrupt:
        return 0
    print(json.dumps(dict(outcomes)))
    return 0


def add_fulfill_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "fulfill",
        help="the reference consumer: a ticket per succeeded payment, void on full refund",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--group", default=GROUP, help=f"consumer group ({GROUP})")
    parser.add_argument("--redis-url", help="where tickets are kept (default: the stack's)")
    parser.add_argument("--kafka", help="bootstrap servers (default: the stack's)")
    parser.add_argument("--key-prefix", help="Redis key prefix (default: RAYPAY_KEY_PREFIX)")
    parser.add_argument(
        "--idle-exit", type=float, metavar="SECONDS", help="stop after this long without events"
    )
    parser.set_defaults(func=cmd_fulfill)
