"""The one shared KafkaProducer actor: relays the Redis outbox to Kafka."""

from __future__ import annotations

import asyncio
import logging

import ray

from actors.metrics import ProducerMetrics, tick_forever
from raypay import bootstrap
from raypay.adapters.kafka_sink import SinkUnavailable
from raypay.domain.errors import StoreUnavailable
from raypay.settings import Settings

log = logging.getLogger("raypay.producer")


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=100)
class KafkaProducerActor:
    """Owns the aiokafka producer and the relay loop; starts it when the actor starts
    (again after a restart), so pending outbox entries are always picked up."""

    async def __init__(self, settings: Settings) -> None:
        self.metrics = ProducerMetrics(settings.key_prefix, bootstrap.topics(settings))
        # The relay blocks on XREADGROUP: a plain client (a blocking command must not
        # share a pipeline) with a longer socket timeout.
        redis = bootstrap.redis_client(
            settings,
            self.metrics.redis_error,
            pipelined=False,
            timeout_s=max(settings.redis_timeout_s, 2.0),
        )
        self.relay = bootstrap.relay(settings, redis)
        self.sink = self.relay.sink
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self.relay.run(self._stop))
        self._metrics_task = loop.create_task(tick_forever(self._measure))

    async def _measure(self) -> None:
        """Once a second: the relay's totals, then the outbox's depth and oldest age."""
        relay = self.relay
        self.metrics.relayed(relay.published_by_kind, relay.publish_failures, relay.broker_errors)
        try:
            self.metrics.outbox(*await relay.depth())
        except StoreUnavailable:
            pass  # counted as a Redis error; the gauges keep their last value

    async def status(self) -> dict:
        """Broker reachability, outbox depth and relay counters, for readyz and metrics."""
        broker_error = broker_public = redis_error = None
        depth, oldest_age_s = 0, 0.0
        try:
            await self.sink.ping()
        except SinkUnavailable as exc:
            broker_error, broker_public = str(exc), exc.public
            self.metrics.broker_error()
        try:
            depth, oldest_age_s = await self.relay.depth()
        except StoreUnavailable as exc:
            redis_error = str(exc)
        return {
            "broker": broker_error is None,
            "brokerError": broker_error,
            "brokerPublicError": broker_public,  # safe for a response: no host names
            "redis": redis_error is None,
            "redisError": redis_error,
            "outboxDepth": depth,
            "outboxOldestAgeSeconds": round(oldest_age_s, 3),
            "published": self.relay.published,
            "replays": self.relay.replays,  # times the broker had forgotten its events
            "replayed": self.relay.replayed,  # retained events delivered again, in all
            "publishFailures": self.relay.failures,
            "lastError": self.relay.last_error,
        }

    async def stop(self) -> None:
        """Stop relaying and close the producer (used on shutdown)."""
        self._stop.set()
        self._metrics_task.cancel()
        await self._task
        await self.sink.stop()
