"""The outbox relay (tests/unit/test_outbox.py) on a real 3-master Redis Cluster: the
outbox streams of the vshards lie on every master, and the relay reads them all (and
replays every vshard's delivery log to a broker that forgot)."""

from __future__ import annotations

import asyncio

import pytest
from unit.test_outbox import (  # noqa: F401
    FakeSink,
    TestCounts,
    TestDepth,
    TestRelayOnce,
    TestReplay,
    TestRun,
    TestSinkUnavailable,
    queue,
    relay,
    sink,
)

from raypay.adapters.keys import Keys
from raypay.adapters.outbox import OutboxRelay
from raypay.domain.sharding import VSHARDS, vshard_of

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def per_vshard_outboxes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit tests queue into their ``KEYS``' outbox: a cluster's, one per vshard."""
    import unit.test_outbox as unit

    monkeypatch.setattr(unit, "KEYS", Keys("raypay", cluster=True))
    monkeypatch.setattr(unit, "OUTBOX", unit.KEYS.outbox(vshard_of("ord_1")))


async def test_events_of_orders_on_every_master_are_relayed_each_once(redis, redis_cluster):
    keys, fake = Keys("raypay", cluster=True), FakeSink()
    poller = OutboxRelay(redis, keys, fake)
    await poller.ensure_group()
    orders = [f"ord_{n}" for n in range(300)]
    slots = {redis.keyslot(keys.outbox(vshard_of(o))) for o in orders}
    nodes = {redis.nodes_manager.get_node_from_slot(slot).name for slot in slots}
    assert len(nodes) == 3  # the orders' streams lie on every master
    for n, order_id in enumerate(orders):
        await queue(redis, f"evt_{n}", order_id)

    while len(fake.published_ids) < len(orders):
        assert await poller.relay_once(block_ms=50) > 0

    assert sorted(fake.published_ids) == sorted(f"evt_{n}" for n in range(300))
    assert await poller.depth() == (0, 0.0)
    delivered = 0
    for vshard in range(VSHARDS):
        delivered += await redis.xlen(keys.delivered_log(vshard))
    assert delivered == len(orders)


async def test_an_idle_relay_polls_ever_more_slowly(redis):
    poller = OutboxRelay(redis, Keys("raypay", cluster=True), FakeSink(), idle_s=0.05)
    await poller.ensure_group()
    started = asyncio.get_running_loop().time()
    for _ in range(6):
        assert await poller.relay_once(block_ms=200) == 0
    # 10, 20, 40, 50, 50, 50 ms: backed off up to idle_s.
    assert asyncio.get_running_loop().time() - started >= 0.2
