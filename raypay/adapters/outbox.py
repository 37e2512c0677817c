"""The outbox relay: moves events from the Redis stream to Kafka, at least once.

The payment shard XADDs an event in the same atomic step that records the outcome.
The relay reads the stream through a consumer group, publishes, and only after the
broker acknowledged the batch does it XACK+XDEL the entries and append them to the
delivery log. A crash or an absent broker leaves entries pending; they are re-sent
first, in stream order, so one order's events stay in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from raypay.adapters.kafka_sink import KafkaSink, OutgoingEvent, SinkUnavailable
from raypay.adapters.keys import Keys
from raypay.adapters.redis_client import translated
from raypay.domain.errors import StoreUnavailable

log = logging.getLogger("raypay.outbox")

GROUP = "relay"
CONSUMER = "relay-1"
DELIVERED_MAXLEN = 1_000_000


class OutboxRelay:
    def __init__(self, redis: aioredis.Redis, keys: Keys, sink: KafkaSink, batch: int = 500):
        self.redis, self.keys, self.sink, self.batch = redis, keys, sink, batch
        self.delivered_log = keys.delivered_log
        # Running totals, read by the producer actor for its status and its metrics.
        self.published = 0
        self.published_by_kind: Counter[str] = Counter()
        self.failures = 0  # times the relay had to wait (Redis or the broker away)
        self.publish_failures = 0  # batches the broker did not take
        self.broker_errors = 0  # the broker refused or was unreachable (start or publish)
        self.last_error: str | None = None

    async def ensure_group(self) -> None:
        async with translated():
            try:
                await self.redis.xgroup_create(self.keys.outbox, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _read(self, block_ms: int) -> list[tuple[str, dict[str, str]]]:
        async with translated():
            # Own pending entries first (a failed or interrupted batch), then new ones.
            for start, block in (("0", None), (">", block_ms)):
                reply = await self.redis.xreadgroup(
                    GROUP, CONSUMER, {self.keys.outbox: start}, count=self.batch, block=block
                )
                entries = reply[0][1] if reply else []
                if entries:
                    return entries
        return []

    async def relay_once(self, block_ms: int = 200) -> int:
        """Publish one batch; returns how many events the broker acknowledged."""
        entries = await self._read(block_ms)
        if not entries:
            return 0
        events = [
            OutgoingEvent(
                f["eventId"], f["kind"], f["key"], f["value"].encode(), f.get("requestId") or None
            )
            for _, f in entries
        ]
        try:
            await self.sink.publish(events)
        except SinkUnavailable:
            self.publish_failures += 1
            raise
        ids = [entry_id for entry_id, _ in entries]
        async with translated():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.keys.outbox, GROUP, *ids)
                pipe.xdel(self.keys.outbox, *ids)
                for event in events:
                    pipe.xadd(
                        self.delivered_log,
                        {"eventId": event.event_id, "kind": event.kind, "key": event.key},
                        maxlen=DELIVERED_MAXLEN,
                        approximate=True,
                    )
                await pipe.execute()
        self.published += len(events)
        self.published_by_kind.update(event.kind for event in events)
        return len(events)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; back off (up to 5 s) while Redis or Kafka is away."""
        backoff = 0.1
        while not stop.is_set():
            try:
                await self.ensure_group()
                if not self.sink.started:
                    await self.sink.start()
                while not stop.is_set():
                    await self.relay_once()
                    backoff = 0.1
                    self.last_error = None
            except (SinkUnavailable, StoreUnavailable) as exc:
                self.failures += 1
                if isinstance(exc, SinkUnavailable):
                    self.broker_errors += 1
                self.last_error = str(exc)
                log.warning("outbox relay waiting: %s", exc)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)

    async def depth(self) -> tuple[int, float]:
        """Events waiting (count) and the age in seconds of the oldest one."""
        async with translated():
            count = await self.redis.xlen(self.keys.outbox)
            first = await self.redis.xrange(self.keys.outbox, count=1)
        if not first:
            return count, 0.0
        oldest_ms = int(first[0][0].split("-")[0])
        return count, max(0.0, time.time() - oldest_ms / 1000)
