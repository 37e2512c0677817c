"""The outbox relay: moves events from the Redis streams to Kafka, at least once.

The payment shard XADDs an event in the same atomic step that records the outcome, to
the outbox (on a Redis Cluster the stream of the order's vshard, so that step touches
one hash slot; on one Redis one stream: keys.py). The relay reads every stream through
a consumer group,
publishes, and only after the broker acknowledged the batch does it XACK+XDEL the
entries and append them, whole, to the stream's delivery log (one script per stream).
A crash or an absent broker leaves entries pending; they are re-sent first, in stream
order, so one order's events stay in order (an order's events share one stream).

The delivery logs are also the retention: they keep every delivered event for
``retention_s`` (trimmed by entry id, i.e. time, at each acknowledgement). When the
broker no longer has the relay's marker (kafka_sink.py: a restarted embedded broker
forgot everything, its topics made again by `raypay up`), the relay delivers every
retained event again, oldest first in each log, then marks the broker, and only then
goes on with the outbox: at least once, and one order's events still in order. Every
publish learns about the marker in the metadata round trip it makes anyway; an idle
relay asks once every ``idle_check_s``.

Reading every stream: on one Redis, one blocking XREADGROUP. On Redis Cluster one
command cannot span slots, so the relay polls: a
pipeline of non-blocking XREADGROUPs, one per stream (redis-py sends each master its
own at once), again at once after a full batch, after ``busy_s`` after a partial one,
and backing off to ``idle_s`` while the outbox stays empty.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from typing import Any

import redis.asyncio as aioredis

from raypay.adapters.kafka_sink import KafkaSink, MarkerMissing, OutgoingEvent, SinkUnavailable
from raypay.adapters.keys import Keys
from raypay.adapters.redis_client import is_cluster, translated
from raypay.adapters.script_batch import BatchedScript
from raypay.domain.errors import StoreUnavailable

log = logging.getLogger("raypay.outbox")

GROUP = "relay"
CONSUMER = "relay-1"
DAY_S = 24 * 3600

# KEYS: outbox, outbox:delivered. ARGV: group, n, n entry ids, n (eventId, kind, key,
# value, requestId or ''), the oldest delivery-log id to keep (the retention window).
_ACK = """
local n = tonumber(ARGV[2])
for i = 3, 2 + n do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
local pos = 3 + n
for i = 1, n do
  local entry = {'eventId', ARGV[pos], 'kind', ARGV[pos + 1], 'key', ARGV[pos + 2],
                 'value', ARGV[pos + 3]}
  if ARGV[pos + 4] ~= '' then
    entry[#entry + 1] = 'requestId'
    entry[#entry + 1] = ARGV[pos + 4]
  end
  redis.call('XADD', KEYS[2], '*', unpack(entry))
  pos = pos + 5
end
redis.call('XTRIM', KEYS[2], 'MINID', '~', ARGV[#ARGV])
return n
"""


def outgoing(fields: dict[str, str]) -> OutgoingEvent:
    """The event of an outbox or delivery-log entry."""
    return OutgoingEvent(
        fields["eventId"],
        fields["kind"],
        fields["key"],
        fields["value"].encode(),
        fields.get("requestId") or None,
    )


Entries = list[tuple[str, str, dict[str, str]]]  # (stream, entry id, fields)


class OutboxRelay:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        sink: KafkaSink,
        batch: int = 500,
        busy_s: float = 0.02,
        idle_s: float = 0.2,
        retention_s: float = DAY_S,
        idle_check_s: float = 1.0,
        replay_batch: int = 2000,
    ):
        self.redis, self.keys, self.sink = redis, keys, sink
        self.retention_s, self.idle_check_s = retention_s, idle_check_s
        self.replay_batch = replay_batch
        self._checked = time.monotonic()  # the last time the broker was asked about the marker
        self.busy_s, self.idle_s = busy_s, idle_s
        self.streams = keys.outboxes()
        # At most ``batch`` entries a read from each stream (bootstrap.relay gives a
        # cluster's 256 streams 64 each: a backlog after a long broker outage comes in
        # batches of at most 16,384, not all at once).
        self.batch = batch
        self._delivered = dict(zip(self.streams, keys.delivered_logs(), strict=True))
        self._cluster = is_cluster(redis)
        self._ack = BatchedScript(redis, _ACK)
        self._own_first = True  # read own pending entries first (at start, after a failure)
        self._idle = 0.0
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
        """The consumer group on every vshard's stream (made with the stream)."""
        async with translated():
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream in self.streams:
                    pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)
                replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                async with translated():
                    raise reply

    async def _read(self, block_ms: int) -> Entries:
        if self._own_first:  # a failed or interrupted batch: its entries, in order
            entries = await self._read_from("0", None)
            if entries:
                return entries
            self._own_first = False
        return await self._read_from(">", block_ms)

    async def _read_from(self, start: str, block_ms: int | None) -> Entries:
        async with translated():
            if not self._cluster:
                streams = {stream: start for stream in self.streams}
                reply = await self.redis.xreadgroup(
                    GROUP, CONSUMER, streams, count=self.batch, block=block_ms
                )
                return [(s, i, f) for s, entries in reply or [] for i, f in entries]
            client: Any = self.redis
            async with client.pipeline(transaction=False) as pipe:
                for stream in self.streams:
                    # Routed by the stream's slot here: left to redis-py, each XREADGROUP
                    # (its keys are "movable") would cost a COMMAND GETKEYS round trip.
                    node = client.nodes_manager.get_node_from_slot(client.keyslot(stream))
                    pipe.execute_command(
                        "XREADGROUP", "GROUP", GROUP, CONSUMER, "COUNT", self.batch,
                        "STREAMS", stream, start, target_nodes=node,
                    )  # fmt: skip
                replies = await pipe.execute()
        read = [entries for reply in replies for _, entries in reply or []]
        if block_ms is not None:
            await self._pace(len(read), any(len(e) >= self.batch for e in read), block_ms)
        return [(s, i, f) for reply in replies for s, entries in reply or [] for i, f in entries]

    async def _pace(self, found: int, full: bool, block_ms: int) -> None:
        """Polling (a cluster): a stream with a full batch asks again at once, a partial
        read shortly, an empty outbox ever more slowly, up to ``idle_s`` (or ``block_ms``)."""
        if full:
            self._idle = 0.0
            return
        if found:
            self._idle = 0.0
            await asyncio.sleep(self.busy_s)
            return
        self._idle = min(max(self._idle * 2, self.busy_s * 2), self.idle_s, block_ms / 1000)
        await asyncio.sleep(self._idle)

    async def relay_once(self, block_ms: int = 200) -> int:
        """Publish one batch; returns how many events the broker acknowledged."""
        entries = await self._read(block_ms)
        if not entries:
            await self._check_when_idle()
            return 0
        events = [outgoing(fields) for _, _, fields in entries]
        try:
            try:
                await self.sink.publish(events)
            except MarkerMissing:
                await self.replay()
                await self.sink.publish(events)
        except SinkUnavailable:
            self.publish_failures += 1
            self._own_first = True
            raise
        self._checked = time.monotonic()
        await self._acknowledge(entries)
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
        sent = 0
        for log_key in dict.fromkeys(self._delivered.values()):  # one log a stream
            start = self._retained_from()
            while True:
                async with translated():
                    entries = await self.redis.xrange(
                        log_key, min=start, max="+", count=self.replay_batch
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
                self._own_first = True
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

    async def _acknowledge(self, entries: Entries) -> None:
        """Per stream, one atomic step: XACK + XDEL the entries, log them delivered (whole),
        and trim the delivery log to the retention window."""
        by_stream: dict[str, list[tuple[str, dict[str, str]]]] = defaultdict(list)
        for stream, entry_id, fields in entries:
            by_stream[stream].append((entry_id, fields))
        calls, retained_from = [], self._retained_from()
        for stream, acked in by_stream.items():
            args: list[Any] = [GROUP, len(acked), *(entry_id for entry_id, _ in acked)]
            for _, f in acked:
                args += [f["eventId"], f["kind"], f["key"], f["value"], f.get("requestId", "")]
            delivered = self._delivered[stream]
            calls.append(self._ack(keys=[stream, delivered], args=[*args, retained_from]))
        async with translated():
            await asyncio.gather(*calls)

    async def depth(self) -> tuple[int, float]:
        """Events waiting (count) and the age in seconds of the oldest one."""
        async with translated():
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream in self.streams:
                    pipe.xlen(stream)
                lengths = await pipe.execute()
            waiting = [s for s, n in zip(self.streams, lengths, strict=True) if n]
            if not waiting:
                return 0, 0.0
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream in waiting:
                    pipe.xrange(stream, count=1)
                firsts = await pipe.execute()
        starts = [int(first[0][0].split("-")[0]) for first in firsts if first]
        if not starts:  # delivered meanwhile
            return sum(lengths), 0.0
        return sum(lengths), max(0.0, time.time() - min(starts) / 1000)
