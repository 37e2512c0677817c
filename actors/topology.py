"""Named, detached actors: created once, found again by every ingress replica.

Detached so that they outlive the replica that happened to create them; named so
that a restart of the ingress finds the same shards instead of making new ones.

Placement on a cluster: every actor is scheduled ``SPREAD`` with a small logical CPU
share. SPREAD puts the shards and gateway actors on different nodes as far as it can,
and it is a preference, not a pin: an actor whose node is lost restarts
(``max_restarts=-1``) on whichever nodes remain, and the same code runs unchanged on
one node. Node affinity would pin each actor to a node id that a lost node takes with
it (soft affinity falls back, but then nothing spreads again), and a placement group
adds a second lifetime to manage for what SPREAD already gives. The CPU share is
logical (Ray does not measure it): it lets Ray's resource view show where the actors
are and keeps a node from taking more actors than its ``--num-cpus`` allows; small, so
that the test session's local Ray of 2 CPUs holds its three apps' actors at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import ray

from actors.gateway import GatewaySimulatorActor
from actors.payment_shard import PaymentActor
from actors.producer import KafkaProducerActor
from actors.refund_batches import RefundBatchActor
from raypay.bootstrap import GatewayConfig, ShardConfig, TopologyConfig
from raypay.settings import Settings

NAMESPACE = "raypay"
ACTOR_CPUS = 0.05  # logical: a shard, a gateway actor, the producer, the batch runner


@dataclass
class Topology:
    shards: list[ray.actor.ActorHandle]
    gateways: list[ray.actor.ActorHandle]
    producer: ray.actor.ActorHandle
    batches: ray.actor.ActorHandle


def _named(actor_class, name: str, *args):
    return actor_class.options(
        name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=ACTOR_CPUS, scheduling_strategy="SPREAD",
    ).remote(*args)  # fmt: skip


def ensure_actors(settings: Settings, topology: TopologyConfig) -> Topology:
    """Get or create the gateway pool, the producer, the shards and the batch runner."""
    prefix = settings.key_prefix
    gateway = GatewayConfig(settings, topology.simulator, topology.batch_hold_s)
    pool = [
        _named(GatewaySimulatorActor, f"{prefix}-gateway-{i}", gateway)
        for i in range(topology.gateway_pool)
    ]
    producer = _named(KafkaProducerActor, f"{prefix}-producer", settings)
    shards = [
        _named(PaymentActor, f"{prefix}-shard-{i}", ShardConfig(i, settings, topology), pool)
        for i in range(topology.shards)
    ]
    batches = _named(RefundBatchActor, f"{prefix}-refund-batches", settings, shards)
    return Topology(shards, pool, producer, batches)


def kill_actors(settings: Settings, shards: int, gateways: int) -> None:
    """Remove the detached actors (tests, and `raypay up` on shutdown)."""
    prefix = settings.key_prefix
    names = [f"{prefix}-shard-{i}" for i in range(shards)]
    names += [f"{prefix}-gateway-{i}" for i in range(gateways)] + [f"{prefix}-producer"]
    names.append(f"{prefix}-refund-batches")
    for name in names:
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
        except ValueError:
            pass
