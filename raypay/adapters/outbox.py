"""The outbox relay: moves events from the Redis stream to Kafka, at least once.

The payment shard XADDs an event in the same atomic step that records the outcome.
The relay reads the stream through a consumer group, publishes, and only after the
broker acknowledged the batch does it XACK+XDEL the entries and append them, whole, to
the delivery log (``outbox:delivered``). A crash or an absent broker leaves entries
pending; they are re-sent first, in stream order, so one order's events stay in order.

The delivery log is also the retention: it keeps every delivered event for
``retention_s`` (trimmed by entry id, i.e. time, at each acknowledgement). When the
broker no longer has the relay's marker (kafka_sink.py: a restarted embedded broker
forgot everything, its topics made again by `raypay up`), the relay delivers every
retained event again, oldest first, then marks the broker, and only then goes on
with the outbox: at least once, and one order's events still in order. Every publish
learns about the marker in the metadata round trip it makes anyway; an idle relay asks
once every ``idle_check_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from raypay.adapters.kafka_sink import KafkaSink, MarkerMissing, OutgoingEvent, SinkUnavailable
from raypay.adapters.keys import Keys
from raypay.adapters.redis_client import translated
from raypay.domain.errors import StoreUnavailable

log = logging.getLogger("raypay.outbox")

GROUP = "relay"
CONSUMER = "relay-1"
DAY_S = 24 * 3600


def outgoing(fields: dict[str, str]) -> OutgoingEvent:
    """The event of an outbox or delivery-log entry."""
    return OutgoingEvent(
        fields["eventId"],
        fields["kind"],
        fields["key"],
        fields["value"].encode(),
        fields.get("requestId") or None,
    )


class OutboxRelay:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        sink: KafkaSink,
        batch: int = 500,
        retention_s: float = DAY_S,
        idle_check_s: float = 1.0,
        replay_batch: int = 2000,
    ) -> None:
        self.redis, self.keys, self.sink, self.batch = redis, keys, sink, batch
        self.retention_s, self.idle_check_s = retention_s, idle_check_s
        self.replay_batch = replay_batch
        self.delivered_log = keys.delivered_log
        self._checked = time.monotonic()  # the last time the broker was asked about the marker
        # Running totals, read by the producer actor for its status and its metrics.
        self.published = 0
        self.published_by_kind: Counter[str] = Counter()
        self.failures = 0  # times the relay had to wait (Redis or the broker away)
        self.publish_failures = 0  # batches the broker did not take
        self.broker_errors = 0  # the broker refused or was unreachable (start or publish)
        self.last_error: str | None = None
        self.replays = 0  # times the broker had forgotten and retained events went again
        self.replayed = 0  # events delivered again, in all

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
            await self._check_when_idle()
            return 0
        events = [outgoing(fields) for _, fields in entries]
        try:
            try:
                await self.sink.publish(events)
            except MarkerMissing:
                await self.replay()
                await self.sink.publish(events)
        except SinkUnavailable:
            self.publish_failures += 1
            raise
        self._checked = time.monotonic()
        ids = [entry_id for entry_id, _ in entries]
        async with translated():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.keys.outbox, GROUP, *ids)
                pipe.xdel(self.keys.outbox, *ids)
                for _, fields in entries:
                    pipe.xadd(self.delivered_log, fields)
                pipe.xtrim(self.delivered_log, minid=self._retained_from(), approximate=True)
                await pipe.execute()
        self.published += len(events)
        self.published_by_kind.update(event.kind for event in events)
        return len(events)

    def _retained_from(self) -> str:
        """The oldest delivery-log entry id still within the retention window."""
        return f"{max(0, int((time.time() - self.retention_s) * 1000))}-0"

    async def _check_when_idle(self) -> None:
        if time.monotonic() - self._checked < self.idle_check_s:
            return
        if not await self.sink.remembers():
            await self.replay()
        self._checked = time.monotonic()

    async def replay(self) -> int:
        """Deliver every retained event again, oldest first, then mark the broker; how
        many went. Interrupted (broker or Redis away), it starts over next time: the
        marker is only made once all went through."""
        start, sent = self._retained_from(), 0
        while True:
            async with translated():
                entries = await self.redis.xrange(
                    self.delivered_log, min=start, max="+", count=self.replay_batch
                )
            # Entries logged before events were retained whole carry no value: skipped.
            events = [outgoing(fields) for _, fields in entries if "value" in fields]
            if events:
                await self.sink.publish(events, replaying=True)
                sent += len(events)
            if len(entries) < self.replay_batch:
                break
            start = "(" + entries[-1][0]
        await self.sink.mark()
        self.replays += 1
        self.replayed += sent
        log.warning("the broker had forgotten its events: delivered %d retained ones again", sent)
        return sent

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
