"""raypay's metrics, through Ray's metrics API (``ray.util.metrics``).

Ray exports them on every node's metrics endpoint (Prometheus text, the names with a
``ray_`` prefix, counters with ``_total``), and the Ray dashboard's metrics view and
Grafana read them from there. ``METRICS`` is the one list of what raypay exports;
docs and the Grafana dashboard's test read it. Every series carries ``app``, the
deployment's key prefix, so two raypay apps on one Ray cluster stay apart.

Metric objects are made in an actor's or replica's ``__init__`` (the classes below),
never at import. Recording sits on the path of every payment, so it is kept cheap:
tag dicts are built once per distinct value, the ingress counts outcomes in a plain dict
and hands them to Ray once a second, gauges are sampled once a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ray.util import metrics as ray_metrics

from raypay.domain.outcomes import OutcomeKind

log = logging.getLogger("raypay.metrics")

EXPORT_PREFIX = "ray_"  # Ray's prefix on every application metric it exports
TICK_S = 1.0  # how often counts are handed to Ray and gauges sampled


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    kind: str  # counter | gauge | histogram
    description: str
    tags: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()

    @property
    def exported(self) -> str:
        """The name on Ray's Prometheus endpoint (a histogram adds _bucket/_sum/_count)."""
        return EXPORT_PREFIX + self.name + ("_total" if self.kind == "counter" else "")

    def series(self) -> set[str]:
        if self.kind == "histogram":
            return {self.exported + suffix for suffix in ("_bucket", "_sum", "_count")}
        return {self.exported}


LATENCY_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
GATEWAY_LATENCY_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

PAYMENTS = Spec(
    "raypay_payments",
    "counter",
    "Payment requests by outcome (succeeded, replayed, declined, rejected, unavailable, "
    "error) and code (decline code, problem code, or the dependency that was away)",
    ("outcome", "code"),
)
PAYMENT_LATENCY = Spec(
    "raypay_payment_latency_seconds",
    "histogram",
    "POST /v1/payments inside the ingress, from the route to the answer, by outcome",
    ("outcome",),
    LATENCY_S,
)
GATEWAY_LATENCY = Spec(
    "raypay_gateway_latency_seconds",
    "histogram",
    "One charge inside the gateway actor, by outcome (approved, declined, error)",
    ("outcome",),
    GATEWAY_LATENCY_S,
)
SHARD_IN_FLIGHT = Spec(
    "raypay_shard_in_flight_orders",
    "gauge",
    "Orders a PaymentActor shard is paying right now (or that wait for their order's lock)",
    ("shard",),
)
OUTBOX_DEPTH = Spec("raypay_outbox_depth", "gauge", "Events in the Redis outbox, not yet in Kafka")
OUTBOX_OLDEST_AGE = Spec(
    "raypay_outbox_oldest_age_seconds", "gauge", "Age of the oldest event waiting in the outbox"
)
EVENTS_PUBLISHED = Spec(
    "raypay_events_published", "counter", "Events the broker acknowledged, by topic", ("topic",)
)
PUBLISH_FAILURES = Spec(
    "raypay_event_publish_failures",
    "counter",
    "Batches of events the broker did not take (they stay in the outbox and are re-sent)",
)
REDIS_ERRORS = Spec(
    "raypay_redis_errors",
    "counter",
    "Redis commands that failed for want of Redis (refused, lost, timed out), by component",
    ("component",),
)
BROKER_ERRORS = Spec(
    "raypay_broker_errors",
    "counter",
    "Broker calls that failed (start, publish, readiness ping), by component",
    ("component",),
)
METRICS = (
    PAYMENTS,
    PAYMENT_LATENCY,
    GATEWAY_LATENCY,
    SHARD_IN_FLIGHT,
    OUTBOX_DEPTH,
    OUTBOX_OLDEST_AGE,
    EVENTS_PUBLISHED,
    PUBLISH_FAILURES,
    REDIS_ERRORS,
    BROKER_ERRORS,
)


def make(spec: Spec, app: str, **tags: str) -> Any:
    """The Ray metric for ``spec``, with ``app`` (and ``tags``) as default tags."""
    keys = ("app", *spec.tags)
    if spec.kind == "counter":
        metric = ray_metrics.Counter(spec.name, spec.description, keys)
    elif spec.kind == "gauge":
        metric = ray_metrics.Gauge(spec.name, spec.description, keys)
    else:
        metric = ray_metrics.Histogram(spec.name, spec.description, list(spec.boundaries), keys)
    return metric.set_default_tags({"app": app, **tags})


class _ErrorCount:
    """``counter.inc()`` as a plain callable (a Redis client's ``on_error``)."""

    def __init__(self, spec: Spec, app: str, component: str) -> None:
        self.counter = make(spec, app, component=component)

    def __call__(self) -> None:
        self.counter.inc()


async def tick_forever(step: Callable[[], Awaitable[None] | None], every_s: float = TICK_S) -> None:
    """Run ``step`` every ``every_s`` until cancelled; a failing step is logged, not fatal."""
    while True:
        await asyncio.sleep(every_s)
        try:
            result = step()
            if result is not None:
                await result
        except Exception:  # metrics must never take an actor down
            log.warning("metrics step failed", exc_info=True)


class IngressMetrics:
    """The Serve ingress, where every payment request ends: its outcome (counted in a
    plain dict, handed to Ray by ``flush`` once a second) and its latency."""

    def __init__(self, app: str) -> None:
        self._latency = make(PAYMENT_LATENCY, app)
        self._latency_tags = {kind: {"outcome": kind.value} for kind in OutcomeKind}
        self._payments = make(PAYMENTS, app)
        self.redis_error = _ErrorCount(REDIS_ERRORS, app, "ingress")
        self._pending: Counter[tuple[str, str]] = Counter()
        self._tags: dict[tuple[str, str], dict[str, str]] = {}

    def count(self, kind: OutcomeKind, code: str) -> None:
        self._pending[(kind.value, code)] += 1

    def answered(self, kind: OutcomeKind, seconds: float) -> None:
        self._latency.observe(seconds, self._latency_tags[kind])

    def flush(self) -> None:
        pending, self._pending = self._pending, Counter()
        for key, count in pending.items():
            tags = self._tags.get(key)
            if tags is None:
                tags = self._tags[key] = {"outcome": key[0], "code": key[1]}
            self._payments.inc(count, tags)


class ShardMetrics:
    """A PaymentActor shard: its in-flight orders (the ingress counts the outcomes)."""

    def __init__(self, app: str, shard: int) -> None:
        self._in_flight = make(SHARD_IN_FLIGHT, app, shard=str(shard))
        self.redis_error = _ErrorCount(REDIS_ERRORS, app, "shard")

    def flush(self, in_flight_orders: int) -> None:
        self._in_flight.set(in_flight_orders)


class GatewayMetrics:
    """A gateway simulator actor: how long each charge took, by outcome."""

    def __init__(self, app: str) -> None:
        self._latency = make(GATEWAY_LATENCY, app)
        self._tags = {o: {"outcome": o} for o in ("approved", "declined", "error")}
        self.redis_error = _ErrorCount(REDIS_ERRORS, app, "gateway")

    def charged(self, outcome: str, seconds: float) -> None:
        self._latency.observe(seconds, self._tags[outcome])


class ProducerMetrics:
    """The Kafka producer actor: the outbox, and what the relay delivered or failed."""

    def __init__(self, app: str, topics: dict[str, str]) -> None:
        self.topics = topics  # event kind -> topic
        self._depth = make(OUTBOX_DEPTH, app)
        self._oldest_age = make(OUTBOX_OLDEST_AGE, app)
        self._published = make(EVENTS_PUBLISHED, app)
        self._publish_failures = make(PUBLISH_FAILURES, app)
        self._broker_errors = make(BROKER_ERRORS, app, component="producer")
        self.redis_error = _ErrorCount(REDIS_ERRORS, app, "producer")
        self._seen: dict[str, int] = {}

    def outbox(self, depth: int, oldest_age_s: float) -> None:
        self._depth.set(depth)
        self._oldest_age.set(oldest_age_s)

    def broker_error(self) -> None:
        self._broker_errors.inc()

    def relayed(self, published_by_kind: Counter[str], publish_failures: int, broker_errors: int):
        """Hand the relay's running totals to Ray (as increments since the last call)."""
        for kind, total in published_by_kind.items():
            if (new := self._new(f"published:{kind}", total)) > 0:
                self._published.inc(new, {"topic": self.topics.get(kind, kind)})
        if (new := self._new("publish_failures", publish_failures)) > 0:
            self._publish_failures.inc(new)
        if (new := self._new("broker_errors", broker_errors)) > 0:
            self._broker_errors.inc(new)

    def _new(self, name: str, total: int) -> int:
        new = total - self._seen.get(name, 0)
        self._seen[name] = total
        return new
