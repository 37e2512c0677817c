"""Session fixtures for the Ray layer: a local Ray, the Serve app on the real
embedded Redis and broker (``redis_server`` / ``broker`` from tests/conftest.py),
a sync Redis client for seeding and counting, and a Kafka consumer that collects
every event the service publishes.

Every app the session starts knows ``ADMIN_KEY`` (configured by hash through
RAYPAY_API_KEYS, which also reaches apps whose Settings read the environment), and
every ``Service.http`` client presents it: tests that are not about keys never see them.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import ray
import redis
from aiokafka import AIOKafkaConsumer
from ray import serve

from actors.topology import kill_actors
from deployments.app import AppArgs, PaymentIngress, SimulatorArgs
from raypay.adapters import key_store, seeding
from raypay.adapters.keys import Keys
from raypay.domain import auth
from raypay.domain.sharding import vshard_of
from raypay.settings import Settings
from raypay.tools.launch import EDGE_ENV, SERVE_LOG_ENV, fast_ingress_env, logging_config
from raypay.tools.stack import free_port

SHARDS, GATEWAYS = 2, 2
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "events"
ADMIN_KEY = auth.new_key()  # this session's admin key; only its hash is configured


@dataclass(frozen=True)
class LocalRay:
    metrics_url: str  # this Ray node's Prometheus endpoint (application metrics included)
    logs_dir: Path  # this session's log files (not /tmp/ray/session_latest: another Ray's)


# Serve's logs (access lines with request_id, the ingress's own) as JSON, as in serve_config.yaml.
SERVE_LOGGING = {"encoding": "JSON"}


@pytest.fixture(scope="session")
def ray_local() -> Iterator[LocalRay]:
    # The same Serve ingress as `raypay up` runs: HAProxy, throughput-optimized, with the
    # header checks of deployments/edge.py in front of Serve's own. HAProxy's
    # own listeners on ports nobody prefers: a stack running beside the tests may hold
    # the preferred 9101 and 8404, or take them between the check and HAProxy's bind.
    os.environ.setdefault("RAY_SERVE_HAPROXY_METRICS_PORT", str(free_port()))
    os.environ.setdefault("RAY_SERVE_HAPROXY_STATS_PORT", str(free_port()))
    for name, value in {**EDGE_ENV, **fast_ingress_env(), **SERVE_LOG_ENV}.items():
        os.environ.setdefault(name, value)
    # Throughput mode buffers 1,000 access-log lines; tests read the log, so no buffer.
    os.environ.setdefault("RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE", "1")
    metrics_port = free_port()
    context = ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_config=logging_config(),  # JSON actor logs, as `raypay up` runs them
        _metrics_export_port=metrics_port,
        # Metrics reach the endpoint within ~1 s instead of Ray's default 10 s.
        _system_config={"metrics_report_interval_ms": 1000},
    )
    try:
        yield LocalRay(
            f"http://127.0.0.1:{metrics_port}/metrics",
            Path(context.address_info["session_dir"]) / "logs",
        )
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def app_settings(redis_server: Any, broker: Any) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAYPAY_API_KEYS", f"{auth.hash_key(ADMIN_KEY)}:admin")
        yield Settings(
            redis_url=redis_server.url,
            kafka_bootstrap_servers=broker.url,
            kafka_idempotence=False,
            key_prefix=f"t{uuid.uuid4().hex[:8]}",
            gateway_timeout_s=2.0,
        )


def payment_body(order: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """POST /v1/payments for a seeded order with pm_card_visa; ``overrides`` replace
    fields, and a field set to None is left out."""
    body = {
        "orderId": order["orderId"],
        "customerId": order["customerId"],
        "amount": order["amount"],
        "currency": order["currency"],
        "paymentMethod": "pm_card_visa",
        "reservationId": order.get("reservationId"),
        **overrides,
    }
    return {name: value for name, value in body.items() if value is not None}


@dataclass
class Service:
    """The running app, as a client sees it, plus the store to seed and count with."""

    base_url: str
    settings: Settings
    redis: redis.Redis
    api_key: str = ADMIN_KEY
    _http: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    @property
    def http(self) -> httpx.AsyncClient:
        """The test's HTTP client; it presents ``api_key`` unless told another header."""
        assert self._http is not None, "Service.http is set by its fixture"
        return self._http

    @http.setter
    def http(self, client: httpx.AsyncClient) -> None:
        client.headers.setdefault("Authorization", f"Bearer {self.api_key}")
        self._http = client

    def caller(self, key: str | None) -> httpx.AsyncClient:
        """A client of its own that presents ``key`` (None: no Authorization header)."""
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return httpx.AsyncClient(base_url=self.base_url, timeout=30, headers=headers)

    def create_key(self, role: str, **options: Any) -> str:
        """A new key stored in Redis (as ``raypay keys create`` does); returns the key."""
        return key_store.create_key(self.redis, self.settings.key_prefix, role, **options)[0]

    def seed(self, **options: Any) -> dict[str, str]:
        options.setdefault("customer_id", f"cus_{uuid.uuid4().hex[:10]}")
        return seeding.seed(self.redis, self.settings.key_prefix, **options)[0]

    @property
    def keys(self) -> Keys:
        return Keys(self.settings.key_prefix, self.settings.redis_cluster)

    def charges(self, order_id: str) -> int:
        """Charge attempts the gateway simulator made for an order."""
        return int(self.redis.hget(self.keys.charge_counts(vshard_of(order_id)), order_id) or 0)

    async def pay(self, order: dict[str, str], **overrides: Any) -> httpx.Response:
        headers = overrides.pop("headers", None)
        return await self.http.post("/v1/payments", json=payment_body(order, **overrides),
                                    headers=headers)  # fmt: skip

    def refunds_made(self, order_id: str) -> int:
        """Refunds the gateway simulator made for an order."""
        return int(self.redis.hget(self.keys.refund_counts(vshard_of(order_id)), order_id) or 0)

    def outbox_entries(self) -> list[tuple[str, dict[str, str]]]:
        """Every vshard's outbox entries (waiting for the broker), oldest first."""
        return _merged(self.redis, self.keys.outboxes())

    def delivered_entries(self) -> list[tuple[str, dict[str, str]]]:
        """Every vshard's delivery log entries, oldest first."""
        return _merged(self.redis, self.keys.delivered_logs())

    async def refund(
        self, payment_id: str, reason: str = "requested_by_customer", **body: Any
    ) -> httpx.Response:
        """POST /v1/payments/{payment_id}/refunds; ``headers=`` goes with the request."""
        headers = body.pop("headers", None)
        return await self.http.post(f"/v1/payments/{payment_id}/refunds",
                                    json={"reason": reason, **body}, headers=headers)  # fmt: skip


@pytest.fixture(scope="session")
def app_args() -> AppArgs:
    return AppArgs(shards=SHARDS, gateway_pool=GATEWAYS, simulator=SimulatorArgs(seed=7))


@pytest.fixture(scope="session")
async def service(
    ray_local: LocalRay, app_settings: Settings, app_args: AppArgs
) -> AsyncIterator[Service]:
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=SERVE_LOGGING)
    serve.run(
        PaymentIngress.bind(app_args, app_settings),
        name="raypay",
        route_prefix="/",
        logging_config=SERVE_LOGGING,
    )
    svc = Service(
        f"http://127.0.0.1:{port}",
        app_settings,
        redis.Redis.from_url(app_settings.redis_url, decode_responses=True),
    )
    svc.http = httpx.AsyncClient(base_url=svc.base_url, timeout=30)
    try:
        await eventually(lambda: svc.http.get("/readyz"), lambda r: r.status_code == 200)
        yield svc
    finally:
        await svc.http.aclose()
        serve.shutdown()
        kill_actors(app_settings, app_args.shards, app_args.gateway_pool)
        svc.redis.close()


PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with this status and stable code; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys(), body
    assert (body["status"], body["code"]) == (status, code), body
    return body


async def eventually(
    probe: Callable[[], Any], done: Callable[[Any], bool], within: float = 30.0
) -> Any:
    """Poll ``probe`` (sync or async) until ``done(result)``, or fail at the deadline."""
    deadline = time.monotonic() + within
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            try:
                result = await result
            except httpx.TransportError as exc:
                result = exc
        if not isinstance(result, Exception) and done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last: {result!r}")
        await asyncio.sleep(0.1)


class EventLog:
    """Every message on raypay's topics (payments and refunds), as a real consumer reads it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def for_order(self, order_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["key"] == order_id]

    async def wait_for_payments(self, payment_ids: Any, within: float = 60.0) -> None:
        """Until an event of every one of these payments has arrived."""
        wanted = set(payment_ids)
        await eventually(
            lambda: wanted - {m["value"]["paymentId"] for m in self.messages},
            lambda missing: not missing,
            within,
        )

    async def wait_for_refunds(self, refund_ids: Any, within: float = 60.0) -> list[dict]:
        """Until an event of every one of these refunds has arrived; those events."""
        wanted = set(refund_ids)
        return await eventually(
            lambda: [m for m in self.messages if m["value"].get("refundId") in wanted],
            lambda found: {m["value"]["refundId"] for m in found} == wanted,
            within,
        )

    async def wait_for(self, order_id: str, count: int, within: float = 30.0) -> list[dict]:
        return await eventually(
            lambda: self.for_order(order_id), lambda found: len(found) >= count, within
        )


async def after_a_later_event(service: Service, log: EventLog) -> list[dict[str, str]]:
    """A barrier before asserting that an earlier order has no further event.

    Pays a fresh order, then waits until the relay has logged its event as delivered,
    every vshard's outbox is empty and ``log`` has that event. The relay deletes an entry
    only once the broker acknowledged it, so an event queued before that one is by then
    on the broker and in the delivery logs. Returns the delivery logs' entries
    ({eventId, kind, key}), oldest first.
    """
    later = service.seed()
    await eventually(lambda: service.pay(later), lambda r: r.status_code in (200, 201))
    await eventually(
        lambda: [fields["key"] for _, fields in service.delivered_entries()],
        lambda keys: later["orderId"] in keys,
    )
    await eventually(service.outbox_entries, lambda waiting: not waiting)
    await log.wait_for(later["orderId"], 1)
    return [fields for _, fields in service.delivered_entries()]


@asynccontextmanager
async def consuming(bootstrap: str, topics: list[str]) -> AsyncIterator[EventLog]:
    """Collect every message on ``topics`` from the beginning, while the block runs."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    log = EventLog()

    async def collect() -> None:
        async for message in consumer:
            log.messages.append(
                {
                    "topic": message.topic,
                    "key": message.key.decode() if message.key else None,
                    "value": json.loads(message.value),
                    "headers": dict(message.headers or ()),
                }
            )

    task = asyncio.get_running_loop().create_task(collect())
    try:
        yield log
    finally:
        task.cancel()
        await consumer.stop()


@pytest.fixture(scope="session")
async def events(broker: Any, app_settings: Settings) -> AsyncIterator[EventLog]:
    async with consuming(broker.url, app_settings.topics()) as log:
        yield log


def assert_valid(message: dict[str, Any]) -> None:
    """The event validates against the JSON Schema of its type and version."""
    event = message["value"]
    path = SCHEMAS / f"{event['eventType']}.v{event['schemaVersion']}.json"
    jsonschema.validate(event, json.loads(path.read_text()))


def json_lines_with(logs_dir: Path, text: str) -> list[dict[str, Any]]:
    """Every JSON log line of this Ray session that mentions ``text``."""
    found = []
    for path in sorted(logs_dir.rglob("*")):
        if not path.is_file():
            continue
        for line in path.read_bytes().decode("utf-8", "replace").splitlines():
            if text in line and line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
    return found


def _merged(client: Any, streams: list[str]) -> list[tuple[str, dict[str, str]]]:
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xrange(stream)
    entries = [entry for found in pipe.execute() for entry in found]
    return sorted(entries, key=lambda entry: tuple(map(int, entry[0].split("-"))))
