"""The Kafka event sink: an aiokafka producer with explicit start/stop.

It also keeps the relay's *marker* on the broker: a topic of its own (one per
deployment) that the relay creates once the broker holds every event it delivered.
A broker without it is not the one the relay delivered to, or lost what it held (the
embedded broker keeps everything in memory, and `raypay up` makes the event topics again
when it restarts it, so topics alone cannot tell): the relay then delivers its retained
events again before anything new (outbox.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

log = logging.getLogger("raypay.kafka")


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    event_id: str
    kind: str
    key: str
    value: bytes
    request_id: str | None = None  # sent as the ``requestId`` header


class SinkUnavailable(Exception):
    """The broker did not take the batch; nothing in it may be considered delivered."""

    public = "broker unreachable"  # what a response may say (the message names the host)


class TopicsMissing(SinkUnavailable):
    """The broker is up but lacks a topic we publish to."""

    @property
    def public(self) -> str:  # type: ignore[override]
        return str(self)


class MarkerMissing(SinkUnavailable):
    """The broker answers and has our topics, but not the relay's marker: it does not hold
    what the relay delivered before. Nothing was sent; the relay replays first."""

    public = "broker restarted: re-delivering retained events"


class KafkaSink:
    """Publishes outbox events; ``kind`` (payment-succeeded / -failed) maps to a topic."""

    # aiokafka fails a batch it cannot deliver after request_timeout_ms (10 s); this
    # bounds the whole publish, should the client ever leave a future unresolved.
    publish_timeout_s = 15.0

    def __init__(
        self,
        bootstrap: str,
        topics: dict[str, str],
        idempotence: bool,
        marker_topic: str | None = None,
    ) -> None:
        self.bootstrap, self.topics, self.idempotence = bootstrap, topics, idempotence
        self.marker_topic = marker_topic  # None: no marker kept (nothing is ever replayed)
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()  # the relay and readyz's ping may both start one

    async def start(self) -> None:
        """Start the producer, unless one runs (one at a time: no second, leaked one)."""
        async with self._starting:
            if self._producer is None:
                self._producer = await self._new_producer()

    async def _new_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            # Real Kafka: on. The embedded Tansu broker lacks InitProducerId: off, by setting.
            enable_idempotence=self.idempotence,
            linger_ms=2,
            request_timeout_ms=10_000,
            retry_backoff_ms=200,
            client_id="raypay-producer",
        )
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            raise SinkUnavailable(f"broker {self.bootstrap} unreachable: {exc!r}") from exc
        return producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def ping(self, timeout_s: float = 2.0) -> None:
        """A real metadata round trip to the broker, which must have our topics;
        SinkUnavailable if not."""
        if self._producer is None:
            await self.start()
        producer = self._producer
        assert producer is not None
        await self._check_topics(producer, timeout_s)

    async def _check_topics(self, producer: AIOKafkaProducer, timeout_s: float) -> bool:
        """The broker knows every topic we publish to (a metadata request for all topics
        creates none). Without this, a broker that lost its topics (the embedded one
        keeps them in memory: a restart loses them) auto-creates them on the first
        send, and it acknowledged events there that no consumer ever saw.
        Returns whether the broker has the relay's marker (the same answer says)."""
        try:
            cluster = await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise SinkUnavailable(f"broker {self.bootstrap} unreachable: {exc!r}") from exc
        known = cluster.topics()
        missing = sorted(set(self.topics.values()) - known)
        if missing:
            raise TopicsMissing(f"topics missing on the broker: {', '.join(missing)}")
        return self.marker_topic is None or self.marker_topic in known

    async def remembers(self) -> bool:
        """One metadata round trip: whether the broker still has the relay's marker
        (SinkUnavailable if it is away or lacks a topic)."""
        if self._producer is None:
            await self.start()
        producer = self._producer
        assert producer is not None
        return await self._check_topics(producer, timeout_s=2.0)

    async def mark(self) -> None:
        """Create the marker topic: this broker now holds what the relay delivered."""
        if self.marker_topic is None:
            return
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError, for_code

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=5000, client_id="raypay-relay"
        )
        try:
            await admin.start()
            response = await admin.create_topics([NewTopic(self.marker_topic, 1, 1)])
        except (KafkaError, OSError) as exc:
            raise SinkUnavailable(f"marking broker {self.bootstrap} failed: {exc!r}") from exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        for _, code, *_ in response.topic_errors:
            if code and for_code(code) is not TopicAlreadyExistsError:
                raise SinkUnavailable(f"marking the broker failed: {for_code(code).__name__}")

    async def publish(self, events: list[OutgoingEvent], replaying: bool = False) -> None:
        """Send a batch in order and wait until the broker acknowledged every event,
        at most ``publish_timeout_s``. First one metadata round trip (~0.4 ms here):
        the topics must exist, and unless ``replaying``, the marker too (MarkerMissing
        if not: nothing is sent)."""
        if self._producer is None:
            await self.start()
        producer = self._producer
        assert producer is not None
        if not await self._check_topics(producer, timeout_s=2.0) and not replaying:
            raise MarkerMissing(f"broker {self.bootstrap} lacks {self.marker_topic}")
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                futures = [
                    await producer.send(
                        self.topics[event.kind],
                        value=event.value,
                        key=event.key.encode(),
                        headers=headers_of(event),
                    )
                    for event in events
                ]
                await asyncio.gather(*futures)
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._discard()
            raise SinkUnavailable(f"publish failed: {exc!r}") from exc

    async def _discard(self) -> None:
        """Drop a producer whose publish failed; the next publish starts a fresh one.

        A client that lost its broker can hold on to stale metadata after the broker
        is back. Whatever the old one still held was not acknowledged in Redis, so it
        is sent again.
        """
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 2.0)


def headers_of(event: OutgoingEvent) -> list[tuple[str, bytes]]:
    """Message headers: the content type, the eventId and, when known, the requestId."""
    headers = [("content-type", b"application/json"), ("eventId", event.event_id.encode())]
    if event.request_id:
        headers.append(("requestId", event.request_id.encode()))
    return headers
