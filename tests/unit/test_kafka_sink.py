"""KafkaSink without a broker: a producer that never answers, and concurrent starts."""

from __future__ import annotations

import asyncio

import pytest

from raypay.adapters.kafka_sink import KafkaSink, MarkerMissing, OutgoingEvent, SinkUnavailable

pytestmark = pytest.mark.unit


class Cluster:
    def __init__(self, topics: set[str]) -> None:
        self._topics = topics

    def topics(self) -> set[str]:
        return self._topics


class Client:
    def __init__(self, topics: set[str]) -> None:
        self.cluster = Cluster(topics)

    async def fetch_all_metadata(self) -> Cluster:
        return self.cluster


class SilentProducer:
    """AIOKafkaProducer's surface; ``send`` queues, and the broker never acknowledges."""

    def __init__(self, topics: frozenset[str] = frozenset({"payment-succeeded"})) -> None:
        self.client = Client(set(topics))
        self.sent: list[str] = []
        self.stopped = False

    async def send(self, topic: str, **_: object) -> asyncio.Future:
        self.sent.append(topic)
        return asyncio.get_running_loop().create_future()  # never resolved

    async def stop(self) -> None:
        self.stopped = True


EVENT = OutgoingEvent("evt_1", "payment-succeeded", "order-1", b"{}", "req-1")


def sink_with(producers: list[SilentProducer], made: list[SilentProducer]) -> KafkaSink:
    sink = KafkaSink("127.0.0.1:1", {"payment-succeeded": "payment-succeeded"}, False)

    async def new_producer() -> SilentProducer:
        await asyncio.sleep(0.01)  # a connect takes a moment: room for a second caller
        producer = producers.pop(0)
        made.append(producer)
        return producer

    sink._new_producer = new_producer  # type: ignore[method-assign]
    return sink


async def test_a_publish_the_broker_never_answers_fails_in_bounded_time_and_drops_the_producer():
    made: list[SilentProducer] = []
    sink = sink_with([SilentProducer(), SilentProducer()], made)
    sink.publish_timeout_s = 0.2
    with pytest.raises(SinkUnavailable, match="TimeoutError"):
        await asyncio.wait_for(sink.publish([EVENT]), 5)
    assert made[0].sent == ["payment-succeeded"] and made[0].stopped
    assert not sink.started  # the next publish starts a fresh producer
    with pytest.raises(SinkUnavailable):
        await sink.publish([EVENT])
    assert len(made) == 2 and made[1].sent == ["payment-succeeded"]


async def test_concurrent_starts_make_one_producer():
    made: list[SilentProducer] = []
    sink = sink_with([SilentProducer(), SilentProducer()], made)
    await asyncio.gather(sink.start(), sink.start(), sink.start())
    assert len(made) == 1 and sink.started


async def test_nothing_is_sent_while_the_broker_lacks_a_topic():
    # A restarted embedded broker has lost its topics; a send would auto-create them,
    # and there it acknowledged events that no consumer saw.
    made: list[SilentProducer] = []
    sink = sink_with([SilentProducer(topics=frozenset())], made)
    with pytest.raises(SinkUnavailable, match="topics missing on the broker: payment-succeeded"):
        await sink.publish([EVENT])
    assert made[0].sent == []
    with pytest.raises(SinkUnavailable, match="topics missing"):
        await sink.ping()  # and readyz says so
    made[0].client.cluster._topics.add("payment-succeeded")  # the topics are back
    sink.publish_timeout_s = 0.1
    with pytest.raises(SinkUnavailable, match="TimeoutError"):
        await sink.publish([EVENT])
    assert made[0].sent == ["payment-succeeded"]


async def test_a_broker_without_the_relays_marker_gets_nothing_but_a_replay():
    # The embedded broker restarted: `raypay up` made its topics again, but not the
    # marker the relay made, so the relay must deliver its retained events first.
    made: list[SilentProducer] = []
    sink = sink_with([SilentProducer()], made)
    sink.marker_topic = "raypay-relay-marker.raypay"
    with pytest.raises(MarkerMissing):
        await sink.publish([EVENT])
    assert made[0].sent == [] and sink.started
    assert await sink.remembers() is False
    await sink.ping()  # readyz: the broker is up and has the event topics
    sink.publish_timeout_s = 0.1
    with pytest.raises(SinkUnavailable, match="TimeoutError"):
        await sink.publish([EVENT], replaying=True)
    assert made[0].sent == ["payment-succeeded"]


async def test_a_broker_with_the_marker_is_remembered():
    made: list[SilentProducer] = []
    marker = "raypay-relay-marker.raypay"
    sink = sink_with([SilentProducer(frozenset({"payment-succeeded", marker}))], made)
    sink.marker_topic = marker
    assert await sink.remembers() is True
