"""The outbox relay on fakeredis with a fake sink: at-least-once delivery, in stream order,
and the retained events delivered again to a broker that forgot them."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import pytest

from raypay.adapters.event_payload import to_payload
from raypay.adapters.kafka_sink import MarkerMissing, OutgoingEvent, SinkUnavailable
from raypay.adapters.keys import Keys
from raypay.adapters.outbox import GROUP, OutboxRelay
from raypay.adapters.redis_store import RedisPayments
from raypay.domain.events import event_for
from raypay.domain.model import Payment, PaymentRequest
from raypay.domain.money import Money
from raypay.domain.sharding import scoped_id, vshard_of

pytestmark = pytest.mark.unit

KEYS = Keys("raypay")
OUTBOX = KEYS.outbox(vshard_of("ord_1"))  # the stream of ord_1's vshard
DELIVERED = KEYS.delivered_log(vshard_of("ord_1"))  # and its delivery log


class FakeSink:
    """KafkaSink's API: ``publish`` takes a batch or raises SinkUnavailable; the broker
    keeps the relay's marker until ``forget()`` (a restart of the embedded broker)."""

    def __init__(self) -> None:
        self.batches: list[list[OutgoingEvent]] = []
        self.replayed: list[list[OutgoingEvent]] = []
        self.started = False
        self.marked = True
        self.marks = 0
        self.delivered = asyncio.Event()
        self._failures = 0

    def fail_next(self, times: int = 1) -> None:
        self._failures = times

    def forget(self) -> None:
        self.marked = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def remembers(self) -> bool:
        return self.marked

    async def mark(self) -> None:
        self.marked = True
        self.marks += 1

    async def publish(self, events: list[OutgoingEvent], replaying: bool = False) -> None:
        if self._failures:
            self._failures -= 1
            raise SinkUnavailable("broker away")
        if not self.marked and not replaying:
            raise MarkerMissing("no marker")
        (self.replayed if replaying else self.batches).append(list(events))
        self.delivered.set()

    @property
    def published_ids(self) -> list[str]:
        return [event.event_id for batch in self.batches for event in batch]

    @property
    def replayed_ids(self) -> list[str]:
        return [event.event_id for batch in self.replayed for event in batch]


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
async def relay(redis, keys, sink) -> OutboxRelay:
    relay = OutboxRelay(redis, keys, sink)
    await relay.ensure_group()
    return relay


async def queue(
    redis, event_id: str, order_id: str = "ord_1", entry_id: str = "*", stream: str | None = None
) -> str:
    """XADD an event the way RedisPayments.settle does."""
    value = json.dumps({"eventId": event_id, "orderId": order_id})
    fields = {"eventId": event_id, "kind": "payment-succeeded", "key": order_id, "value": value}
    return await redis.xadd(stream or KEYS.outbox(vshard_of(order_id)), fields, id=entry_id)


async def delivered_ids(redis) -> list[str]:
    delivered = KEYS.delivered_log(vshard_of("ord_1"))
    return [fields["eventId"] for _, fields in await redis.xrange(delivered)]


class TestRelayOnce:
    async def test_it_publishes_every_vshards_events_and_each_order_in_order(
        self, redis, relay, sink
    ):
        assert vshard_of("ord_1") != vshard_of("ord_2")
        for event_id, order_id in [("evt_1", "ord_1"), ("evt_2", "ord_2"), ("evt_3", "ord_1")]:
            await queue(redis, event_id, order_id)

        assert await relay.relay_once(block_ms=10) == 3

        (batch,) = sink.batches
        sent = [(e.event_id, e.key) for e in batch]
        assert sorted(sent) == [("evt_1", "ord_1"), ("evt_2", "ord_2"), ("evt_3", "ord_1")]
        assert [e for e, key in sent if key == "ord_1"] == ["evt_1", "evt_3"]
        assert all(e.kind == "payment-succeeded" for e in batch)
        assert json.loads(batch[0].value) == {"eventId": "evt_1", "orderId": "ord_1"}

    async def test_delivered_entries_are_acked_deleted_and_logged(self, redis, relay):
        await queue(redis, "evt_1")
        await queue(redis, "evt_2")

        await relay.relay_once(block_ms=10)

        assert await redis.xlen(OUTBOX) == 0
        assert (await redis.xpending(OUTBOX, GROUP))["pending"] == 0
        assert await delivered_ids(redis) == ["evt_1", "evt_2"]
        ((_, logged), _) = await redis.xrange(DELIVERED)
        value = json.dumps({"eventId": "evt_1", "orderId": "ord_1"})
        assert logged == {  # the whole event: retained, to be delivered again if need be
            "eventId": "evt_1", "kind": "payment-succeeded", "key": "ord_1", "value": value,
        }  # fmt: skip
        assert relay.published == 2

    async def test_an_empty_outbox_publishes_nothing(self, relay, sink):
        assert await relay.relay_once(block_ms=10) == 0
        assert sink.batches == []

    async def test_a_batch_is_at_most_the_batch_size(self, redis, keys, sink):
        relay = OutboxRelay(redis, keys, sink, batch=2)
        await relay.ensure_group()
        for n in range(5):
            await queue(redis, f"evt_{n}")

        sizes = [await relay.relay_once(block_ms=10) for _ in range(4)]

        assert sizes == [2, 2, 1, 0]
        assert sink.published_ids == [f"evt_{n}" for n in range(5)]

    async def test_ensure_group_may_run_again_and_keeps_the_groups_place(self, redis, relay, sink):
        await queue(redis, "evt_1")
        sink.fail_next()
        with pytest.raises(SinkUnavailable):
            await relay.relay_once(block_ms=10)  # evt_1 is now read and pending
        (group,) = await redis.xinfo_groups(OUTBOX)

        await relay.ensure_group()

        assert await redis.xinfo_groups(OUTBOX) == [group]
        assert (group["name"], group["pending"]) == (GROUP, 1)
        await queue(redis, "evt_2")
        # The pending entry is re-sent alone first, then the new one; each exactly once.
        assert [await relay.relay_once(block_ms=10) for _ in range(3)] == [1, 1, 0]
        assert sink.published_ids == ["evt_1", "evt_2"]
        assert await delivered_ids(redis) == ["evt_1", "evt_2"]

    async def test_a_settled_payment_reaches_the_sink_with_its_event(
        self, redis, keys, relay, sink
    ):
        now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        request = PaymentRequest("ord_1", "cus_1", Money(4000, "USD"), "pm_card_visa")
        payment = Payment.start(request, scoped_id("pay", vshard_of("ord_1"), "1"), now)
        payments = RedisPayments(redis, keys)
        await payments.begin(payment)
        paid = payment.succeed("txn_1", now, simulated=True)
        event = event_for(paid, "evt_1", now)
        await payments.settle(paid, event)

        await relay.relay_once(block_ms=10)

        ((sent,),) = sink.batches
        assert (sent.event_id, sent.kind, sent.key) == ("evt_1", "payment-succeeded", "ord_1")
        assert json.loads(sent.value) == {**to_payload(event), "sequence": 1}


class TestSinkUnavailable:
    async def test_a_failed_batch_stays_in_the_stream(self, redis, relay, sink):
        await queue(redis, "evt_1")
        await queue(redis, "evt_2")
        sink.fail_next()

        with pytest.raises(SinkUnavailable):
            await relay.relay_once(block_ms=10)

        assert await redis.xlen(OUTBOX) == 2
        assert await delivered_ids(redis) == []
        assert relay.published == 0

    async def test_the_failed_batch_is_resent_first_and_in_order(self, redis, relay, sink):
        await queue(redis, "evt_1")
        await queue(redis, "evt_2")
        sink.fail_next()
        with pytest.raises(SinkUnavailable):
            await relay.relay_once(block_ms=10)
        await queue(redis, "evt_3")

        await relay.relay_once(block_ms=10)
        await relay.relay_once(block_ms=10)

        assert [[e.event_id for e in batch] for batch in sink.batches] == [
            ["evt_1", "evt_2"],
            ["evt_3"],
        ]
        assert await redis.xlen(OUTBOX) == 0
        assert await delivered_ids(redis) == ["evt_1", "evt_2", "evt_3"]

    async def test_repeated_failures_lose_nothing(self, redis, relay, sink):
        await queue(redis, "evt_1")
        sink.fail_next(times=3)
        for _ in range(3):
            with pytest.raises(SinkUnavailable):
                await relay.relay_once(block_ms=10)

        assert await relay.relay_once(block_ms=10) == 1
        assert sink.published_ids == ["evt_1"]


class TestRun:
    async def test_it_starts_the_sink_and_keeps_retrying_until_delivered(self, redis, relay, sink):
        await queue(redis, "evt_1")
        sink.fail_next()
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop))
        try:
            await asyncio.wait_for(sink.delivered.wait(), timeout=3)
        finally:
            stop.set()
            await asyncio.wait_for(running, timeout=2)

        assert sink.started
        assert sink.published_ids == ["evt_1"]
        assert relay.failures == 1
        assert relay.last_error is None


class TestDepth:
    async def test_an_empty_outbox_has_no_depth(self, relay):
        assert await relay.depth() == (0, 0.0)

    async def test_depth_counts_the_waiting_events_and_ages_the_oldest(self, redis, relay):
        minute_ago_ms = int((time.time() - 60) * 1000)
        await queue(redis, "evt_1", entry_id=f"{minute_ago_ms}-0")
        await queue(redis, "evt_2")

        count, age_s = await relay.depth()

        assert count == 2
        assert 59 <= age_s < 70

    async def test_delivered_events_leave_the_depth(self, redis, relay):
        await queue(redis, "evt_1")
        await relay.relay_once(block_ms=10)

        assert await relay.depth() == (0, 0.0)


class TestCounts:
    """The running totals the producer actor turns into metrics."""

    async def test_published_events_are_counted_by_kind(self, redis, relay):
        await queue(redis, "evt_1")
        await queue(redis, "evt_2")
        await relay.relay_once(block_ms=10)
        assert relay.published_by_kind == {"payment-succeeded": 2}

    async def test_a_batch_the_broker_refused_is_a_publish_failure_and_a_broker_error(
        self, redis, relay, sink
    ):
        await queue(redis, "evt_1")
        sink.fail_next(times=2)
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop))
        try:
            await asyncio.wait_for(sink.delivered.wait(), timeout=5)
        finally:
            stop.set()
            await asyncio.wait_for(running, timeout=2)

        assert (relay.publish_failures, relay.broker_errors) == (2, 2)
        assert relay.published_by_kind == {"payment-succeeded": 1}


class TestReplay:
    """A broker that lost the relay's marker gets every retained event again, first."""

    async def test_a_broker_that_forgot_gets_the_retained_events_before_new_ones(
        self, redis, relay, sink
    ):
        for n in range(3):
            await queue(redis, f"evt_{n}", order_id=f"ord_{n % 2}")
        await relay.relay_once(block_ms=10)
        sink.forget()  # the broker restarted with nothing
        await queue(redis, "evt_3", order_id="ord_1")

        assert await relay.relay_once(block_ms=10) == 1

        assert sink.replayed_ids == ["evt_0", "evt_1", "evt_2"]  # oldest first
        assert sink.published_ids == ["evt_0", "evt_1", "evt_2", "evt_3"]
        assert (sink.marked, sink.marks, relay.replays, relay.replayed) == (True, 1, 1, 3)
        # Delivered once each in the log: a replay delivers again, it logs nothing new.
        assert await delivered_ids(redis) == ["evt_0", "evt_1", "evt_2", "evt_3"]

    async def test_an_idle_relay_notices_and_replays_without_new_events(self, redis, keys, sink):
        relay = OutboxRelay(redis, keys, sink, idle_check_s=0)
        await relay.ensure_group()
        await queue(redis, "evt_1")
        await relay.relay_once(block_ms=10)
        sink.forget()

        assert await relay.relay_once(block_ms=10) == 0

        assert sink.replayed_ids == ["evt_1"] and sink.marked

    async def test_an_idle_relay_asks_at_most_once_per_interval(self, redis, keys, sink):
        relay = OutboxRelay(redis, keys, sink, idle_check_s=3600)
        await relay.ensure_group()
        await queue(redis, "evt_1")
        await relay.relay_once(block_ms=10)
        sink.forget()
        await relay.relay_once(block_ms=10)
        assert sink.replayed_ids == []  # asked too recently; the next publish would see it

    async def test_only_events_within_the_retention_are_replayed(self, redis, keys, sink):
        relay = OutboxRelay(redis, keys, sink, retention_s=3600)
        await relay.ensure_group()
        two_hours_ago_ms = int((time.time() - 7200) * 1000)
        await queue(redis, "evt_old", entry_id=f"{two_hours_ago_ms}-0", stream=DELIVERED)
        await queue(redis, "evt_1")
        await relay.relay_once(block_ms=10)
        sink.forget()

        await relay.replay()

        assert sink.replayed_ids == ["evt_1"]

    async def test_the_log_is_trimmed_to_the_retention(self, redis, keys, sink):
        relay = OutboxRelay(redis, keys, sink, retention_s=3600)
        await relay.ensure_group()
        old_ms = int((time.time() - 7200) * 1000)
        for n in range(3):
            await queue(redis, f"evt_old_{n}", entry_id=f"{old_ms}-{n}", stream=DELIVERED)
        await queue(redis, "evt_1")

        await relay.relay_once(block_ms=10)

        # Approximate trimming (whole nodes of the stream) on a real Redis; at most this.
        assert "evt_1" in await delivered_ids(redis)
        assert len(await delivered_ids(redis)) <= 4

    async def test_a_replay_cut_short_leaves_the_broker_unmarked_and_runs_again(
        self, redis, keys, sink
    ):
        relay = OutboxRelay(redis, keys, sink, replay_batch=2)
        await relay.ensure_group()
        for n in range(5):
            await queue(redis, f"evt_{n}")
        await relay.relay_once(block_ms=10)
        sink.forget()
        real_publish = sink.publish
        calls = 0

        async def second_batch_fails(events, replaying=False):
            nonlocal calls
            calls += 1
            if calls == 2:
                raise SinkUnavailable("broker gone again")
            await real_publish(events, replaying)

        sink.publish = second_batch_fails
        with pytest.raises(SinkUnavailable):
            await relay.replay()
        assert not sink.marked and sink.replayed_ids == ["evt_0", "evt_1"]

        assert await relay.replay() == 5

        assert sink.marked and sink.replayed_ids == [
            "evt_0",
            "evt_1",
            *(f"evt_{n}" for n in range(5)),
        ]

    async def test_the_run_loop_replays_and_goes_on(self, redis, relay, sink):
        await queue(redis, "evt_1")
        await relay.relay_once(block_ms=10)
        sink.forget()
        sink.delivered.clear()
        await queue(redis, "evt_2")
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop))
        try:
            await asyncio.wait_for(_until(lambda: "evt_2" in sink.published_ids), timeout=3)
        finally:
            stop.set()
            await asyncio.wait_for(running, timeout=2)
        assert sink.replayed_ids == ["evt_1"] and relay.replays == 1


async def _until(condition) -> None:
    while not condition():  # noqa: ASYNC110 (a fake's state, polled briefly)
        await asyncio.sleep(0.01)
