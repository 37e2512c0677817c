"""raypay's metrics, read from Ray's real Prometheus endpoint after real payments.

The payments go to an app of this module's own (``/metered``, its own key prefix, so
its series carry their own ``app`` tag and count only this module's payments), on its
own redis-server and broker, which the last tests stop to make errors happen.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from ray import serve
from raystack import LocalRay, Service, eventually

from actors import metrics as m
from actors.topology import kill_actors
from deployments.app import AppArgs, PaymentIngress, SimulatorArgs
from raypay.domain.sharding import shard_of_order
from raypay.settings import Settings
from raypay.tools.stack import Server, create_topics, free_port, start_broker, start_redis

pytestmark = pytest.mark.integration

ROUTE = "/metered"


@dataclass
class Metered:
    service: Service
    metrics_url: str
    redis_dir: Path
    broker_dir: Path
    redis_port: int
    broker_port: int
    shards: int = 2
    topics: tuple[str, str] = ("payment-succeeded", "payment-failed")
    redis_server: Server | None = None
    broker: Server | None = None

    @property
    def app(self) -> str:
        return self.service.settings.key_prefix

    def start_broker(self) -> None:
        self.broker = start_broker(self.broker_port, self.broker_dir)
        # The embedded broker keeps topics in memory: a restart needs them made again.
        create_topics(self.broker.url, self.topics)

    def stop_broker(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def stop_redis(self) -> None:
        if self.redis_server is not None:
            self.redis_server.stop()
            self.redis_server = None


@pytest.fixture(scope="module")
async def metered(
    service: Service, ray_local: LocalRay, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Metered]:
    """Depends on ``service`` so that Serve runs; adds the ``/metered`` app beside it."""
    stack = Metered(
        service=None,  # type: ignore[arg-type]
        metrics_url=ray_local.metrics_url,
        redis_dir=tmp_path_factory.mktemp("metered-redis"),
        broker_dir=tmp_path_factory.mktemp("metered-broker"),
        redis_port=free_port(),
        broker_port=free_port(),
    )
    stack.redis_server = start_redis(stack.redis_dir, stack.redis_port)
    settings = Settings(
        redis_url=stack.redis_server.url,
        kafka_bootstrap_servers=f"127.0.0.1:{stack.broker_port}",
        kafka_idempotence=False,
        key_prefix=f"m{uuid.uuid4().hex[:8]}",
        gateway_timeout_s=3.0,
    )
    args = AppArgs(
        shards=stack.shards,
        gateway_pool=1,
        # pm_card_timeout holds its charge 4 s, past the 3 s gateway timeout; no sweep runs.
        simulator=SimulatorArgs(timeout_hold_s=4.0),
        sweep_after_s=3600,
    )
    stack.topics = tuple(settings.topics())
    try:
        stack.start_broker()
        serve.run(PaymentIngress.bind(args, settings), name="raypay-metered", route_prefix=ROUTE)
        stack.service = Service(
            service.base_url + ROUTE,
            settings,
            redis.Redis.from_url(settings.redis_url, decode_responses=True),
        )
        stack.service.http = httpx.AsyncClient(base_url=stack.service.base_url, timeout=30)
        await eventually(lambda: stack.service.http.get("/readyz"), lambda r: r.status_code == 200)
        yield stack
    finally:
        if stack.service is not None:
            await stack.service.http.aclose()
        serve.delete("raypay-metered")
        kill_actors(settings, args.shards, args.gateway_pool)
        stack.stop_broker()
        stack.stop_redis()


# --- reading Ray's endpoint ---------------------------------------------------------


class Scrape:
    """One read of the Prometheus endpoint: samples of every process, summed on demand."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def series(self, name: str, **labels: str) -> list[float]:
        return [
            value
            for found, have, value in self.samples
            if found == name and all(have.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(self.series(name, **labels))


Check = Callable[[Scrape], list[str]]


def exactly(expected: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> Check:
    """Each (name, labels) sums to its value; a missing series is a complaint too."""

    def check(scrape: Scrape) -> list[str]:
        complaints = []
        for (name, labels), value in expected.items():
            found = scrape.series(name, **dict(labels))
            if not found or sum(found) != value:
                complaints.append(f"{name}{dict(labels)} = {sum(found) if found else None}")
        return complaints

    return check


async def until_metrics(url: str, *checks: Check, within: float = 30.0) -> Scrape:
    """Scrape until no check complains (Ray reports every second), or fail saying what."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            scrape = Scrape((await http.get(url)).text)
            complaints = [c for check in checks for c in check(scrape)]
            if not complaints:
                return scrape
            if time.monotonic() > deadline:
                raise AssertionError(f"metrics not as expected within {within}s: {complaints}")
            await asyncio.sleep(0.25)


def key(spec: m.Spec, app: str, suffix: str = "", **labels: str) -> tuple[str, tuple]:
    name = spec.exported + suffix
    return name, tuple(sorted({"app": app, **labels}.items()))


def absent(spec: m.Spec, app: str, **labels: str) -> Check:
    def check(scrape: Scrape) -> list[str]:
        found = scrape.series(spec.exported, app=app, **labels)
        return [f"{spec.exported}{labels} = {sum(found)}, expected none"] if found else []

    return check


def at_least(spec: m.Spec, app: str, minimum: float, **labels: str) -> Check:
    def check(scrape: Scrape) -> list[str]:
        value = scrape.value(spec.exported, app=app, **labels)
        return [] if value >= minimum else [f"{spec.exported}{labels} = {value} < {minimum}"]

    return check


# --- the tests -------------------------------------------------------------------------


async def test_payments_latencies_events_and_gauges_have_the_right_counts(metered):
    svc, app = metered.service, metered.app
    paid = [svc.seed() for _ in range(3)]
    answers = [await svc.pay(order) for order in paid]
    answers.append(await svc.pay(paid[0]))  # replayed
    answers.append(
        await svc.pay(svc.seed(), paymentMethod="pm_card_chargeDeclinedInsufficientFunds")
    )
    answers.append(await svc.pay({**svc.seed(), "orderId": f"ord_missing_{uuid.uuid4().hex}"}))
    answers.append(await svc.pay(svc.seed(), paymentMethod="pm_card_error"))
    # Refused before the route runs: a body that fails validation, a call without a key.
    answers.append(await svc.pay(svc.seed(), amount="-1.00"))
    answers.append(
        await svc.http.post("/v1/payments", json=svc.seed(), headers={"Authorization": ""})
    )
    answers.append(await svc.http.get(f"/v1/payments/pay_{uuid.uuid4().hex}"))  # not a payment
    codes = [a.status_code for a in answers]
    assert codes == [201, 201, 201, 200, 402, 404, 503, 422, 401, 404], answers[-1].text

    topics = svc.settings.topic_succeeded, svc.settings.topic_failed
    await until_metrics(
        metered.metrics_url,
        exactly(
            {
                key(m.PAYMENTS, app, outcome="succeeded", code=""): 3,
                key(m.PAYMENTS, app, outcome="replayed", code=""): 1,
                key(m.PAYMENTS, app, outcome="declined", code="insufficient_funds"): 1,
                key(m.PAYMENTS, app, outcome="rejected", code="order_not_found"): 1,
                key(m.PAYMENTS, app, outcome="rejected", code="validation_error"): 1,
                key(m.PAYMENTS, app, outcome="rejected", code="unauthorized"): 1,
                key(m.PAYMENTS, app, outcome="unavailable", code="gateway"): 1,
                key(m.PAYMENT_LATENCY, app, "_count", outcome="succeeded"): 3,
                key(m.PAYMENT_LATENCY, app, "_count", outcome="replayed"): 1,
                key(m.PAYMENT_LATENCY, app, "_count", outcome="declined"): 1,
                key(m.PAYMENT_LATENCY, app, "_count", outcome="rejected"): 1,
                key(m.PAYMENT_LATENCY, app, "_count", outcome="unavailable"): 1,
                key(m.PAYMENT_LATENCY, app, "_bucket", outcome="succeeded", le="+Inf"): 3,
                key(m.GATEWAY_LATENCY, app, "_count", outcome="approved"): 3,
                key(m.GATEWAY_LATENCY, app, "_count", outcome="declined"): 1,
                key(m.GATEWAY_LATENCY, app, "_count", outcome="error"): 1,
                key(m.EVENTS_PUBLISHED, app, topic=topics[0]): 3,
                key(m.EVENTS_PUBLISHED, app, topic=topics[1]): 1,
                key(m.OUTBOX_DEPTH, app): 0,
                key(m.OUTBOX_OLDEST_AGE, app): 0,
                key(m.SHARD_IN_FLIGHT, app, shard="0"): 0,
                key(m.SHARD_IN_FLIGHT, app, shard="1"): 0,
            }
        ),
        absent(m.PAYMENTS, app, code="payment_not_found"),  # a GET is not a payment
    )


async def test_an_order_being_paid_is_in_flight_on_its_shard(metered):
    svc, app = metered.service, metered.app
    order = svc.seed()
    shard = str(shard_of_order(order["orderId"], metered.shards))
    paying = asyncio.ensure_future(svc.pay(order, paymentMethod="pm_card_timeout"))
    await until_metrics(
        metered.metrics_url, exactly({key(m.SHARD_IN_FLIGHT, app, shard=shard): 1}), within=3
    )
    assert (await paying).status_code == 503  # the gateway did not answer within 3 s
    await until_metrics(
        metered.metrics_url,
        exactly(
            {
                key(m.SHARD_IN_FLIGHT, app, shard=shard): 0,
                key(m.PAYMENTS, app, outcome="unavailable", code="gateway"): 2,
            }
        ),
    )


async def test_while_the_broker_is_away_events_wait_and_failures_are_counted(metered):
    svc, app = metered.service, metered.app
    metered.stop_broker()
    try:
        assert (await svc.pay(svc.seed())).status_code == 201
        scrape = await until_metrics(
            metered.metrics_url,
            exactly({key(m.OUTBOX_DEPTH, app): 1}),
            at_least(m.OUTBOX_OLDEST_AGE, app, 0.5),
            at_least(m.PUBLISH_FAILURES, app, 1),
            at_least(m.BROKER_ERRORS, app, 1, component="producer"),
        )
    finally:
        metered.start_broker()
    succeeded = svc.settings.topic_succeeded
    assert scrape.value(m.EVENTS_PUBLISHED.exported, app=app, topic=succeeded) == 3
    await until_metrics(
        metered.metrics_url,
        exactly(
            {
                key(m.OUTBOX_DEPTH, app): 0,
                key(m.EVENTS_PUBLISHED, app, topic=succeeded): 4,
            }
        ),
    )


async def test_redis_errors_are_counted_by_component(metered):
    svc, app = metered.service, metered.app
    order = svc.seed()
    metered.stop_redis()
    response = await svc.pay(order)
    assert response.status_code == 503, response.text
    await until_metrics(
        metered.metrics_url,
        at_least(m.REDIS_ERRORS, app, 1, component="ingress"),
        at_least(m.REDIS_ERRORS, app, 1, component="producer"),
        at_least(m.PAYMENTS, app, 1, outcome="unavailable", code="redis"),
    )
