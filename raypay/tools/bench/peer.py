"""The benchmark's peer: raypay's payment workflow written the way most teams would
write it without Ray. One FastAPI app under uvicorn, one worker process per core;
``redis.asyncio``, the gateway simulator in-process, the outbox relayed to Kafka by a
background task of one worker.

It runs raypay's own domain and adapters, built through ``raypay.bootstrap`` (``pay_once``
over ``pay``, the Redis stores, ``GatewaySimulator`` with its Redis ledger, the outbox
relay and Kafka sink, the Keyring and the rate limiter; the amount cap), so both sides do
the same Redis steps and the same simulator logic; only the plumbing differs: no actor
hops, a per-order lock only within a worker (the atomic ``begin`` guard keeps two
workers from paying an order twice). Its HTTP edge is its own, small, as a lean team
would write it (it imports nothing of ``deployments``): API key and role, JSON body
and size limit, problem+json answers. Keys come from ``RAYPAY_API_KEYS`` (the benchmark
sets one).

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
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from raypay import bootstrap
from raypay.adapters.gateway_sim import GatewaySimulator, SimulatorConfig
from raypay.domain.auth import Principal, Role, bearer_token
from raypay.domain.errors import (
    Forbidden,
    GatewayUnavailable,
    InvalidRequest,
    PayloadTooLarge,
    PaymentDeclined,
    RaypayError,
    Unauthorized,
    UnsupportedMediaType,
    problem_code,
)
from raypay.domain.idempotency import pay_once
from raypay.domain.model import Payment, PaymentRequest, check_amount_cap, iso
from raypay.domain.money import Money, MoneyError
from raypay.domain.ports import ChargeRequest, ChargeResult
from raypay.settings import Settings

RELAY_LOCK_ENV = "RAYPAY_PEER_RELAY_LOCK"
ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")

    order_id: str = Field(pattern=ID)
    customer_id: str = Field(pattern=ID)
    amount: Decimal
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payment_method: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    reservation_id: str | None = Field(None, pattern=ID)

    def to_domain(self) -> PaymentRequest:
        try:
            money = Money.parse(self.amount, self.currency)
        except MoneyError as exc:
            raise InvalidRequest(str(exc)) from None
        return PaymentRequest(
            self.order_id, self.customer_id, money, self.payment_method, self.reservation_id
        )


def payment_json(payment: Payment) -> dict[str, Any]:
    return {
        "paymentId": payment.payment_id,
        "orderId": payment.order_id,
        "customerId": payment.customer_id,
        "reservationId": payment.reservation_id,
        "amount": str(payment.amount),
        "currency": payment.amount.currency,
        "paymentMethod": payment.payment_method,
        "status": payment.status.value,
        "transactionId": payment.transaction_id,
        "errorCode": payment.error_code,
        "errorMessage": payment.error_message,
        "createdAt": iso(payment.created_at),
        "processedAt": iso(payment.processed_at) if payment.processed_at else None,
        "isSimulated": payment.is_simulated,
    }


def problem(error: RaypayError, headers: dict[str, str] | None = None) -> JSONResponse:
    code = problem_code(error)
    body = {"type": f"urn:raypay:problem:{code}", "title": error.title, "status": error.status,
            "detail": error.detail, "code": code, **error.extra}  # fmt: skip
    if isinstance(error, PaymentDeclined) and error.payment is not None:
        body["payment"] = payment_json(error.payment)
    return JSONResponse(
        body, error.status, {**error.headers(), **(headers or {})} or None,
        "application/problem+json",
    )  # fmt: skip


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
    redis = bootstrap.redis_client(settings, pipelined=False)
    stores = bootstrap.stores(settings, redis)
    # The simulator as serve_config.yaml configures it for the benchmark: latency 0.
    simulator = bootstrap.simulator(settings, redis, SimulatorConfig())
    state = api.state
    state.settings, state.redis, state.idempotency = settings, redis, stores.idempotency
    state.keyring = bootstrap.keyring(settings, redis)
    state.limiter = bootstrap.rate_limiter(settings, redis)
    state.payments = stores.payments
    gateway = TimedGateway(simulator, settings.gateway_timeout_s)
    state.deps = bootstrap.workflow_deps(stores, gateway)
    state.locks = weakref.WeakValueDictionary()
    stop, relay_task, lock = asyncio.Event(), None, _take_relay_lock()
    if lock is not None:
        relay_redis = bootstrap.redis_client(
            settings, pipelined=False, timeout_s=max(settings.redis_timeout_s, 2.0)
        )
        relay = bootstrap.relay(settings, relay_redis)
        relay_task = asyncio.get_running_loop().create_task(relay.run(stop))
    try:
        yield
    finally:
        stop.set()
        if relay_task is not None:
            await relay_task
            await relay.sink.stop()
            await relay_redis.aclose()
            lock.close()
        await redis.aclose()


app = FastAPI(title="raypay peer (FastAPI + uvicorn, no Ray)", lifespan=lifespan)


@app.exception_handler(RaypayError)
async def on_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RaypayError)
    return problem(error)


@app.exception_handler(RequestValidationError)
async def on_invalid(_: Request, error: Exception) -> JSONResponse:
    return problem(InvalidRequest("the body is not a valid payment"))


async def checkout(request: Request) -> Principal:
    """API key (401), role (403), JSON body (415) of at most max_body_bytes (413)."""
    state = request.app.state
    token = bearer_token(request.headers.get("authorization"))
    principal = await state.keyring.principal(token) if token else None
    if principal is None:
        raise Unauthorized("send Authorization: Bearer <API key>")
    if not principal.may(Role.CHECKOUT):
        raise Forbidden("this key may not pay")
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise UnsupportedMediaType("send the body as application/json")
    if int(request.headers.get("content-length") or 0) > state.settings.max_body_bytes:
        raise PayloadTooLarge("body too large")
    return principal


def _lock(request: Request, order_id: str) -> asyncio.Lock:
    locks = request.app.state.locks
    lock = locks.get(order_id)
    if lock is None:
        lock = locks[order_id] = asyncio.Lock()
    return lock


@app.post("/v1/payments", status_code=201)
async def create_payment(
    request: Request,
    body: Body,
    principal: Annotated[Principal, Depends(checkout)],
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
    ] = None,
) -> JSONResponse:
    """Pay an order: the same workflow and checks as raypay's ingress."""
    state, payment = request.app.state, body.to_domain()
    settings = state.settings
    check_amount_cap(payment.amount, settings.max_amount, settings.max_amount_by_currency)
    await state.limiter.admit(principal, payment.customer_id)
    async with _lock(request, body.order_id):
        outcome = await pay_once(payment, state.deps, state.idempotency, idempotency_key)
    replayed = outcome.replayed or outcome.key_replay
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    if outcome.error is not None:
        return problem(outcome.error, headers)
    assert outcome.payment is not None
    return JSONResponse(payment_json(outcome.payment), 200 if outcome.replayed else 201, headers)


@app.get("/v1/orders/{order_id}/payments")
async def list_order_payments(request: Request, order_id: str) -> dict[str, Any]:
    payments = await request.app.state.payments.list_for_order(order_id)
    return {"orderId": order_id, "payments": [payment_json(p) for p in payments]}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/readyz")
async def readyz(request: Request) -> dict[str, str]:
    await request.app.state.redis.ping()
    return {"status": "ready"}
