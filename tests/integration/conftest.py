"""A stack of its own for fault injection: its own redis-server and broker, which the
tests stop and start, and a second Serve app (``/faults``) on the session's Ray whose
simulated gateway takes 300 ms, so a charge is in flight long enough to kill it."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import ray
import redis
from ray import serve
from raystack import Service, eventually

from actors.topology import NAMESPACE, kill_actors
from deployments.app import AppArgs, PaymentIngress, SimulatorArgs
from raypay.domain.sharding import shard_of_order
from raypay.settings import Settings
from raypay.tools.stack import (
    Server,
    StackError,
    create_topics,
    free_port,
    start_broker,
    start_redis,
)

ROUTE = "/faults"


@dataclass
class FaultStack:
    service: Service
    args: AppArgs
    redis_dir: Path
    broker_dir: Path
    redis_port: int
    broker_port: int
    redis_server: Server | None = None
    broker: Server | None = None

    def start_redis(self) -> None:
        self.redis_server = start_redis(self.redis_dir, self.redis_port)

    def stop_redis(self) -> None:
        if self.redis_server is not None:
            self.redis_server.stop()
            self.redis_server = None

    def start_broker(self, with_topics: bool = True) -> None:
        self.broker = start_broker(self.broker_port, self.broker_dir)
        if with_topics:
            self.create_topics()

    def create_topics(self) -> None:
        # The embedded broker keeps topics in memory: a restart needs them made again.
        settings = self.service.settings
        create_topics(self.broker.url, settings.topics())

    def stop_broker(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def kill_broker(self) -> None:
        """SIGKILL the broker by its PID: it keeps nothing (memory storage)."""
        if self.broker is not None:
            os.kill(self.broker.pid, signal.SIGKILL)
            self.broker.stop()  # reaps it
            self.broker = None

    def restart_broker(self, attempts: int = 10) -> None:
        """Start it again on its port with the topics, as `raypay up`'s supervisor does
        (the port may be held for a moment by the dead one's connections)."""
        for attempt in range(attempts):
            try:
                self.start_broker()
                return
            except StackError:
                if attempt == attempts - 1:
                    raise
                time.sleep(1.0)

    def shard_of(self, order_id: str) -> ray.actor.ActorHandle:
        index = shard_of_order(order_id, self.args.shards)
        name = f"{self.service.settings.key_prefix}-shard-{index}"
        return ray.get_actor(name, namespace=NAMESPACE)

    def actor(self, role: str) -> ray.actor.ActorHandle:
        return ray.get_actor(f"{self.service.settings.key_prefix}-{role}", namespace=NAMESPACE)


@pytest.fixture(scope="session")
async def faults(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FaultStack]:
    """Depends on ``service`` so Serve is started; adds the ``/faults`` app beside it."""
    stack = FaultStack(
        service=None,  # type: ignore[arg-type]
        args=AppArgs(
            shards=2, gateway_pool=2, simulator=SimulatorArgs(latency_ms=300), sweep_after_s=3
        ),
        redis_dir=tmp_path_factory.mktemp("fault-redis"),
        broker_dir=tmp_path_factory.mktemp("fault-broker"),
        redis_port=free_port(),
        broker_port=free_port(),
    )
    stack.start_redis()
    stack.broker = start_broker(stack.broker_port, stack.broker_dir)
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{stack.redis_port}/0",
        kafka_bootstrap_servers=f"127.0.0.1:{stack.broker_port}",
        kafka_idempotence=False,
        key_prefix=f"f{uuid.uuid4().hex[:8]}",
        redis_timeout_s=1.0,
        gateway_timeout_s=2.0,
        shard_timeout_s=5.0,
        refund_batch_rate=10,  # a batch of 30 takes ~3 s: time to kill actors under it
    )
    create_topics(stack.broker.url, settings.topics())
    serve.run(PaymentIngress.bind(stack.args, settings), name="raypay-faults", route_prefix=ROUTE)
    stack.service = Service(
        service.base_url + ROUTE,
        settings,
        redis.Redis.from_url(settings.redis_url, decode_responses=True),
    )
    stack.service.http = httpx.AsyncClient(base_url=stack.service.base_url, timeout=30)
    try:
        await eventually(lambda: stack.service.http.get("/readyz"), lambda r: r.status_code == 200)
        yield stack
    finally:
        await stack.service.http.aclose()
        serve.delete("raypay-faults")
        kill_actors(settings, stack.args.shards, stack.args.gateway_pool)
        stack.stop_broker()
        stack.stop_redis()
