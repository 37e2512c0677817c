"""The composition root: the one place that builds adapters and the workflow's
dependencies from the typed settings.

Actors and the ingress build what they use here, in their ``__init__`` (nothing
connects at import: Ray imports these modules in other processes), and each actor
takes one config object. Tests build through the same functions, with fakeredis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis.asyncio as aioredis

from raypay.adapters.batch_store import RedisBatches
from raypay.adapters.gateway_sim import (
    GatewaySimulator,
    RedisChargeLedger,
    RedisRefundLedger,
    SimulatorConfig,
)
from raypay.adapters.idempotency_store import RedisIdempotency
from raypay.adapters.kafka_sink import KafkaSink
from raypay.adapters.key_store import Keyring
from raypay.adapters.keys import Keys
from raypay.adapters.outbox import OutboxRelay
from raypay.adapters.rate_limiter import RateLimiter
from raypay.adapters.redis_client import Replicas, connect
from raypay.adapters.redis_store import RedisOrders, RedisPayments, RedisReservations
from raypay.adapters.refund_store import RedisRefunds
from raypay.domain.events import EventType
from raypay.domain.ports import Gateway
from raypay.domain.workflow import Deps
from raypay.settings import Settings


class UtcClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def redis_client(
    settings: Settings,
    on_error: Callable[[], None] | None = None,
    *,
    pipelined: bool = True,
    timeout_s: float | None = None,
) -> aioredis.Redis:
    """The Redis client of a component: bounded waits, concurrent commands pipelined,
    every failed command reported to ``on_error`` (the component's error counter)."""
    timeout = timeout_s or settings.redis_timeout_s
    return connect(settings.redis_url, timeout, pipelined, on_error, settings.redis_cluster)


def keys_of(settings: Settings) -> Keys:
    """The key names of this deployment (one outbox on one Redis, one per vshard on a
    cluster: keys.py)."""
    return Keys(settings.key_prefix, settings.redis_cluster)


def replicas(settings: Settings) -> Replicas:
    """What a durable step waits for (settings: redis_wait_replicas)."""
    return Replicas(settings.wait_replicas(), settings.redis_wait_timeout_ms)


@dataclass(frozen=True, slots=True)
class Stores:
    """The Redis stores of the payment workflow, on one client."""

    orders: RedisOrders
    reservations: RedisReservations
    payments: RedisPayments
    refunds: RedisRefunds
    idempotency: RedisIdempotency


def stores(settings: Settings, redis: aioredis.Redis) -> Stores:
    keys, durable = keys_of(settings), replicas(settings)
    return Stores(
        RedisOrders(redis, keys),
        RedisReservations(redis, keys),
        RedisPayments(redis, keys, durable),
        RedisRefunds(redis, keys, durable),
        RedisIdempotency(redis, keys, settings.idempotency_ttl_s),
    )


def workflow_deps(built: Stores, gateway: Gateway) -> Deps:
    """What ``pay`` needs: the stores, the gateway port and the clock."""
    return Deps(
        orders=built.orders,
        reservations=built.reservations,
        payments=built.payments,
        refunds=built.refunds,
        gateway=gateway,
        clock=UtcClock(),
    )


def batch_store(settings: Settings, redis: aioredis.Redis) -> RedisBatches:
    """Refund batches in Redis."""
    return RedisBatches(redis, keys_of(settings), replicas(settings))


def simulator(
    settings: Settings, redis: aioredis.Redis, config: SimulatorConfig
) -> GatewaySimulator:
    """The gateway simulator, its charge and refund ledgers in Redis."""
    keys, durable = keys_of(settings), replicas(settings)
    charges = RedisChargeLedger(redis, keys, durable)
    return GatewaySimulator(charges, config, RedisRefundLedger(redis, keys, durable))


def topics(settings: Settings) -> dict[str, str]:
    """Event type -> Kafka topic."""
    return {
        EventType.PAYMENT_SUCCEEDED: settings.topic_succeeded,
        EventType.PAYMENT_FAILED: settings.topic_failed,
        EventType.REFUND_SUCCEEDED: settings.topic_refund_succeeded,
        EventType.REFUND_FAILED: settings.topic_refund_failed,
    }


def marker_topic(settings: Settings) -> str:
    """The topic that marks a broker as holding what this deployment's relay delivered."""
    return "raypay-relay-marker." + re.sub(r"[^A-Za-z0-9._-]", "_", settings.key_prefix)


def relay(settings: Settings, redis: aioredis.Redis) -> OutboxRelay:
    """The outbox relay with its Kafka sink."""
    sink = KafkaSink(
        settings.kafka_bootstrap_servers,
        topics(settings),
        settings.kafka_idempotence,
        marker_topic(settings),
    )
    batch = 64 if settings.redis_cluster else 500  # per stream: 256 of them on a cluster
    return OutboxRelay(
        redis, keys_of(settings), sink, batch, retention_s=settings.event_retention_s
    )


def keyring(settings: Settings, redis: aioredis.Redis) -> Keyring:
    return Keyring(settings, redis)


def rate_limiter(settings: Settings, redis: aioredis.Redis) -> RateLimiter:
    return RateLimiter(settings, redis)


@dataclass(frozen=True, slots=True)
class TopologyConfig:
    """The actors of one raypay app (serve_config.yaml ``args``)."""

    shards: int = 2
    gateway_pool: int = 1
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    sweep_after_s: float = 60.0
    batch_window_s: float = 0.01  # while a batch is out, calls wait up to this for companions
    batch_hold_s: float = 0.5  # a batch answers after at most this; slower items follow


@dataclass(frozen=True, slots=True)
class ShardConfig:
    """One PaymentActor shard: which of how many, and its settings."""

    index: int
    settings: Settings
    topology: TopologyConfig


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """One gateway simulator actor."""

    settings: Settings
    simulator: SimulatorConfig
    batch_hold_s: float
