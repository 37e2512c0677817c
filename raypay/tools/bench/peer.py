"""The benchmark's peer: raypay's payment workflow written the way most teams would
write it without Ray. One FastAPI app under uvicorn, one worker process per core;
``redis.asyncio``, the gateway simulator in-process, the outbox relayed to Kafka by a
background task of one worker.

It runs raypay's own domain and adapters (``raypay.domain.idempotency.answer`` over ``pay``, the
Redis stores, ``GatewaySimulator`` with its Redis ledger, ``OutboxRelay`` +
``KafkaSink``) behind the ingress's own trust wiring (``deployments.security``: API key,
role, JSON body, size limit, rate limits; the amount cap), so both sides do the same
Redis steps and the same simulator logic; only the plumbing differs: no actor hops, a
per-order lock only within a worker (the atomic ``begin`` guard keeps two workers from
paying an order twice). Keys come from ``RAYPAY_API_KEYS`` (the benchmark sets one).

    RAYPAY_REDIS_URL=... RAYPAY_KAFKA_BOOTSTRAP_SERVERS=... RAYPAY_KEY_PREFIX=peer \\
    RAYPAY_PEER_RELAY_LOCK=/tmp/peer.lock uvicorn raypay.tools.bench.peer:app --workers 2

The relay runs in the worker that takes the ``RAYPAY_PEER_RELAY_LOCK`` file lock: the
outbox's consumer group has one consumer (``relay-1``), so one order's events stay in order.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.
import asyncio
import contextlib
import fcntl
import os
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from deployments import problems
from deployments.models import PaymentBody
from deployments.security import Checkout, Guard, GuardConfig, Keyring, RateLimiter
from raypay.adapters.gateway_sim import GatewaySimulator, RedisChargeLedger, SimulatorConfig
from raypay.adapters.kafka_sink import KafkaSink
from raypay.adapters.outbox import OutboxRelay
from raypay.adapters.redis_store import (
    Keys,
    RedisOrders,
    RedisPayments,
    RedisReplies,
    RedisReservations,
    connect,
)
from raypay.domain.cards import check_amount_cap
from raypay.domain.errors import GatewayUnavailable
from raypay.domain.events import FAILED, SUCCEEDED
from raypay.domain.idempotency import answer
from raypay.domain.ports import ChargeRequest, ChargeResult
from raypay.domain.workflow import Deps
from raypay.settings import Settings

RELAY_LOCK_ENV = "RAYPAY_PEER_RELAY_LOCK"


class UtcClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class TimedGateway:
    """The simulator, bounded like the actor pool's calls: too slow is GatewayUnavailable."""

    def __init__(self, simulator: GatewaySimulator, timeout_s: float) -> None:
        self.simulator, self.timeout_s = simulator, timeout_s

    async def _bounded(self, call: Any) -> ChargeResult:
        try:
            return await asyncio.wait_for(call, self.timeout_s)
        except TimeoutError as exc:
            raise GatewayUnavailable(f"gateway did not answer within {self.timeout_s}s") from exc

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        return await self._bounded(self.simulator.charge(request))

    async def resolve_charge(self, idempotency_key: str) -> ChargeResult:
        return await self._bounded(self.simulator.resolve_charge(idempotency_key))


def _take_relay_lock() -> Any:
    """The open lock file if this worker is the relay's, else None."""
    path = os.environ.get(RELAY_LOCK_ENV)
    if not path:
        return None
    handle = open(path, "a")  # noqa: SIM115 - held for the worker's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextlib.asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    settings = Settings()
    redis = connect(settings.redis_url, settings.redis_timeout_s)
    keys = Keys(settings.key_prefix)
    # The simulator as serve_config.yaml configures it for the benchmark: latency 0.
    simulator = GatewaySimulator(RedisChargeLedger(redis, settings.key_prefix), SimulatorConfig())
    api.state.settings = settings
    api.state.guard = GuardConfig(Keyring(settings, redis), settings.max_body_bytes)
    api.state.limiter = RateLimiter(settings, redis)
    api.state.replies = RedisReplies(redis, keys, settings.idempotency_ttl_s)
    api.state.payments = RedisPayments(redis, keys)
    api.state.deps = Deps(
        orders=RedisOrders(redis, keys),
        reservations=RedisReservations(redis, keys),
        payments=api.state.payments,
        gateway=TimedGateway(simulator, settings.gateway_timeout_s),
        clock=UtcClock(),
    )
    api.state.locks = weakref.WeakValueDictionary()
    api.state.redis = redis
    stop, relay_task, lock = asyncio.Event(), None, _take_relay_lock()
    if lock is not None:
        relay_redis = connect(settings.redis_url, max(settings.redis_timeout_s, 2.0))
        topics = {SUCCEEDED: settings.topic_succeeded, FAILED: settings.topic_failed}
        sink = KafkaSink(settings.kafka_bootstrap_servers, topics, settings.kafka_idempotence)
        relay = OutboxRelay(relay_redis, keys, sink)
        relay_task = asyncio.get_running_loop().create_task(relay.run(stop))
    try:
        yield
    finally:
        stop.set()
        if relay_task is not None:
            await relay_task
            await sink.stop()
            await relay_redis.aclose()
            lock.close()
        await redis.aclose()


app = FastAPI(title="raypay peer (FastAPI + uvicorn, no Ray)", lifespan=lifespan)
problems.install(app)
app.add_middleware(Guard)  # 413, 401, 415 before any route, as in deployments/app.py


def _lock(request: Request, order_id: str) -> asyncio.Lock:
    locks = request.app.state.locks
    lock = locks.get(order_id)
    if lock is None:
        lock = locks[order_id] = asyncio.Lock()
    return lock


@app.post("/v1/payments", status_code=201)
async def create_payment(
    request: Request,
    body: PaymentBody,
    principal: Checkout,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
    ] = None,
) -> JSONResponse:
    """Pay an order: the same contract and checks as raypay's ingress."""
    state, payment = request.app.state, body.to_domain()
    settings = state.settings
    check_amount_cap(payment.amount, settings.max_amount, settings.max_amount_by_currency)
    await state.limiter.admit(principal, payment.customer_id)
    async with _lock(request, body.order_id):
        reply = await answer(payment, state.deps, state.replies, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if reply.replayed else None
    media_type = problems.PROBLEM_JSON if reply.status >= 400 else "application/json"
    return JSONResponse(reply.body, reply.status, headers, media_type)


@app.get("/v1/orders/{order_id}/payments")
async def list_order_payments(request: Request, order_id: str) -> dict[str, Any]:
    payments = await request.app.state.payments.list_for_order(order_id)
    return {"orderId": order_id, "payments": [p.to_api() for p in payments]}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/readyz")
async def readyz(request: Request) -> dict[str, str]:
    await request.app.state.redis.ping()
    return {"status": "ready"}
