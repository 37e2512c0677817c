"""The raypay Serve application: HTTP ingress, routed by orderId to PaymentActor shards.

``build_app`` is the typed application builder ``serve_config.yaml`` points at.
"""

# No `from __future__ import annotations`: FastAPI reads these route signatures at run time.
import asyncio
import logging
import time
import uuid
from typing import Annotated, Any

import redis as redis_sync
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from ray import serve
from ray.exceptions import RayError

from actors.batching import BatchedMethod
from actors.metrics import IngressMetrics
from actors.topology import Topology, ensure_actors
from deployments import openapi, problems
from deployments.batch_routes import BATCHES_PATH
from deployments.batch_routes import router as batch_router
from deployments.lean_route import LeanPaymentRoute
from deployments.models import (
    ID_PATTERN,
    AdminOrdersBody,
    IdempotencyKey,
    OrderPaymentsOut,
    PaymentBody,
    PaymentOut,
    RequestId,
    SeededOrders,
    payment_body,
)
from deployments.recorder import OutcomeRecorder
from deployments.refund_routes import RefundDesk
from deployments.refund_routes import router as refund_router
from deployments.security import (
    PRINCIPAL,
    Admin,
    Admission,
    AdmissionConfig,
    Checkout,
    PaymentReader,
)
from raypay import bootstrap
from raypay.adapters import seeding
from raypay.adapters.gateway_sim import SimulatorConfig
from raypay.adapters.redis_client import translated
from raypay.bootstrap import TopologyConfig
from raypay.domain.auth import Principal, check_order_access
from raypay.domain.errors import (
    PaymentNotFound,
    RaypayError,
    ShardUnavailable,
    StoreUnavailable,
)
from raypay.domain.model import PaymentRequest, check_amount_cap
from raypay.domain.outcomes import Outcome
from raypay.domain.sharding import shard_of_order
from raypay.settings import Settings

# The problems each route answers with (deployments/problems.py makes them).
PAY_PROBLEMS = (400, 401, 402, 403, 404, 409, 413, 415, 422, 429, 503)
SEED_PROBLEMS = (400, 401, 403, 413, 415, 422, 429, 503)
READ_PROBLEMS = openapi.problems(401, 403, 404, 422, 429, 503)
log = logging.getLogger("raypay.ingress")

CustomerFilter = Annotated[
    str | None,
    Query(alias="customerId", pattern=ID_PATTERN, description="Only this customer's"),
]
api = FastAPI(
    title="raypay",
    version="1",
    summary="Payments for ticketing checkouts, on Ray Serve, Redis and Kafka.",
    dependencies=[Depends(openapi.request_id_header)],  # X-Request-ID, on every route
    # FastAPI's own OpenTelemetry: raypay configures no provider, yet with it on FastAPI
    # asks os.environ whether one is set on every request (~2 % of the replica's CPU).
    telemetry={"tracing": False, "metrics": False, "logs": False},
)
problems.install(api)
api.add_middleware(LeanPaymentRoute)  # POST /v1/payments (deployments/lean_route.py)
api.openapi = lambda: openapi.document(api)  # type: ignore[method-assign]
api.include_router(refund_router)  # refunds: deployments/refund_routes.py
api.include_router(batch_router)  # refund batches: deployments/batch_routes.py
api.add_middleware(Admission)  # 413, 401, 415 before any route (deployments/security.py)


def new_request_id() -> str:
    """Serve gives every HTTP request an id; this is for calls that come without Serve."""
    return str(uuid.uuid4())


class SimulatorArgs(BaseModel):
    latency_ms: float = Field(0.0, ge=0)
    jitter_ms: float = Field(0.0, ge=0)
    decline_rate: float = Field(0.0, ge=0, le=1)
    seed: int = 42
    timeout_hold_s: float = Field(30.0, ge=0)


class AppArgs(BaseModel):
    """``applications[].args`` of serve_config.yaml."""

    shards: int = Field(4, ge=1, le=256)
    gateway_pool: int = Field(2, ge=1, le=64)
    simulator: SimulatorArgs = SimulatorArgs()
    sweep_after_s: float = Field(60.0, gt=0)
    # While a batch to an actor is out, calls wait up to this for companions (a call
    # made with none out leaves on the next loop turn): raypay/adapters/batching.py.
    batch_window_ms: float = Field(10.0, ge=0, le=50)
    # A batch is answered after at most this long; slower items are collected later.
    batch_hold_ms: float = Field(500.0, ge=1, le=5000)

    def topology(self) -> TopologyConfig:
        return TopologyConfig(
            shards=self.shards,
            gateway_pool=self.gateway_pool,
            simulator=SimulatorConfig(**self.simulator.model_dump()),
            sweep_after_s=self.sweep_after_s,
            batch_window_s=self.batch_window_ms / 1000,
            batch_hold_s=self.batch_hold_ms / 1000,
        )


@serve.deployment(ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=1000)
@serve.ingress(api)
class PaymentIngress:
    def __init__(self, args: AppArgs, settings: Settings) -> None:
        self.settings = settings
        self.topology: Topology = ensure_actors(settings, args.topology())
        self._pay = [
            BatchedMethod(shard, "pay_many", args.batch_window_ms / 1000)
            for shard in self.topology.shards
        ]
        metrics = IngressMetrics(settings.key_prefix)
        self.recorder = OutcomeRecorder(settings.key_prefix, metrics)
        self.redis = bootstrap.redis_client(settings, metrics.redis_error)
        stores = bootstrap.stores(settings, self.redis)
        self.payments, self.orders = stores.payments, stores.orders
        self.limiter = bootstrap.rate_limiter(settings, self.redis)
        keyring = bootstrap.keyring(settings, self.redis)
        api.state.admission = AdmissionConfig(
            keyring, settings.max_body_bytes, {BATCHES_PATH: settings.max_batch_body_bytes}
        )
        api.state.recorder = self.recorder  # refusals before the route (problems.refusal)
        api.state.lean_payments = self if settings.lean_payment_route else None
        api.state.refunds = RefundDesk(
            stores.payments,
            stores.refunds,
            bootstrap.batch_store(settings, self.redis),
            self.limiter,
            self.topology.shards,
            self.topology.batches,
            self._await_actor,
        )

    async def _await_actor(self, ref: Any) -> Any:
        try:
            return await asyncio.wait_for(ref, self.settings.shard_timeout_s)
        except RaypayError:
            raise
        except (RayError, TimeoutError, LookupError) as exc:
            raise ShardUnavailable(f"payment shard unavailable: {type(exc).__name__}") from exc

    @api.post(
        "/v1/payments",
        status_code=201,
        response_model=PaymentOut,
        responses=openapi.payment_responses(PAY_PROBLEMS),
        operation_id=openapi.CREATE_PAYMENT,
    )
    async def create_payment(
        self,
        body: PaymentBody,
        principal: Checkout,
        idempotency_key: IdempotencyKey = None,
        request_id: RequestId = None,
    ) -> Response:
        """Pay an order. Safe to retry: an order is charged at most once."""
        # Served by deployments/lean_route.py unless lean_payment_route is off; both
        # validate the same way and end here.
        return await self.pay_http(body, principal, idempotency_key, request_id)

    async def pay_http(
        self, body: PaymentBody, principal: Principal, key: str | None, request_id: str | None
    ) -> Response:
        """Pay a validated request and make its HTTP answer; records the outcome."""
        started = time.perf_counter()
        headers: dict[str, str] = {}
        if request_id is None:  # Serve always sets one; without Serve, make one and say so
            request_id = headers["X-Request-ID"] = new_request_id()
        request = body.to_domain(request_id)
        shard = shard_of_order(request.order_id, len(self._pay))
        try:
            outcome = await self._pay_order(request, principal, key, shard)
        except RaypayError as exc:
            self.recorder.record(request, exc, time.perf_counter() - started, shard)
            return problems.error_response(exc, headers)
        except BaseException as exc:
            self.recorder.record(request, exc, time.perf_counter() - started, shard)
            raise
        self.recorder.record(request, outcome, time.perf_counter() - started, shard)
        return problems.outcome_response(outcome, headers)

    async def _pay_order(
        self, request: PaymentRequest, principal: Principal, key: str | None, shard: int
    ) -> Outcome:
        check_amount_cap(
            request.amount, self.settings.max_amount, self.settings.max_amount_by_currency
        )
        await self.limiter.admit(principal, request.customer_id)
        return await self._await_actor(self._pay[shard](request, key))

    @api.get(
        f"/v1/payments/{{{openapi.PAYMENT_ID}}}",
        response_model=PaymentOut,
        responses=READ_PROBLEMS,
        operation_id=openapi.GET_PAYMENT,
    )
    async def get_payment(
        self,
        payment_id: Annotated[str, Path(alias=openapi.PAYMENT_ID, pattern=ID_PATTERN)],
        principal: PaymentReader,
        customer_id: CustomerFilter = None,
    ) -> dict[str, Any]:
        """A payment by its id (unguessable); with ``customerId``, only if it is theirs."""
        await self.limiter.admit(principal)
        payment = await self.payments.get(payment_id)
        if payment is None or customer_id not in (None, payment.customer_id):
            raise PaymentNotFound(f"payment {payment_id} not found")
        return payment_body(payment)

    @api.get(
        f"/v1/orders/{{{openapi.ORDER_ID}}}/payments",
        response_model=OrderPaymentsOut,
        responses=READ_PROBLEMS,
        operation_id=openapi.LIST_ORDER_PAYMENTS,
    )
    async def list_order_payments(
        self,
        order_id: Annotated[str, Path(alias=openapi.ORDER_ID, pattern=ID_PATTERN)],
        principal: Checkout,
        customer_id: CustomerFilter = None,
    ) -> dict[str, Any]:
        """An order's payments, oldest first. Checkout keys: ``customerId`` must own the order."""
        await self.limiter.admit(principal)
        owner = None
        if customer_id is not None:
            order = await self.orders.get(order_id)
            owner = order.customer_id if order else None
        payments = await self.payments.list_for_order(order_id)
        if customer_id is not None and owner is None and payments:
            owner = payments[0].customer_id  # the order record is gone; its payments say
        check_order_access(principal, customer_id, owner)
        return {"orderId": order_id, "payments": [payment_body(p) for p in payments]}

    @api.post(
        "/v1/admin/orders",
        status_code=201,
        response_model=SeededOrders,
        responses=openapi.seeded_order_responses(SEED_PROBLEMS),
        operation_id=openapi.SEED_ORDERS,
    )
    async def seed_orders(self, body: AdminOrdersBody, principal: Admin) -> dict[str, Any]:
        """Admin: write orders (and reservations) as the order service would (seeding)."""
        await self.limiter.admit(principal)
        return {"orders": await asyncio.to_thread(self._seed, body)}

    def _seed(self, body: AdminOrdersBody) -> list[dict[str, str]]:
        # Rare and admin-only: the sync seeding code, on a short-lived client, in a thread.
        timeout = self.settings.redis_timeout_s
        client = redis_sync.Redis.from_url(
            self.settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:
            return seeding.seed(
                client, self.settings.key_prefix, count=body.count, amount=body.amount,
                currency=body.currency, status=body.status, reservation=body.reservation,
                reservation_status=body.reservation_status,
                reservation_ttl_s=body.reservation_ttl_seconds, customer_id=body.customer_id,
                id_prefix=body.id_prefix,
            )  # fmt: skip
        except redis_sync.RedisError as exc:
            raise StoreUnavailable(f"Redis error: {type(exc).__name__}") from exc
        finally:
            client.close()

    @api.get("/healthz", responses=openapi.problems(422), operation_id="healthz")
    async def healthz(self) -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @api.get("/readyz", responses=openapi.problems(422, 503), operation_id="readyz")
    async def readyz(self, request: Request) -> JSONResponse:
        """Redis, the broker and every actor answer; 503 if not. Which ones: with a key only."""
        checks: dict[str, Any] = {}
        try:
            async with translated():
                await self.redis.ping()
            checks["redis"] = {"ok": True}
        except RaypayError as exc:
            checks["redis"] = {"ok": False, "error": exc.detail}
        try:
            status = await self._await_actor(self.topology.producer.status.remote())
            # The producer's error text names the broker's host: not for a response.
            error = None if status["broker"] else status["brokerPublicError"]
            checks["broker"] = {"ok": status["broker"], "error": error}
            checks["outbox"] = {
                "ok": status["redis"],
                "depth": status["outboxDepth"],
                "oldestAgeSeconds": status["outboxOldestAgeSeconds"],
            }
        except RaypayError as exc:
            checks["broker"] = {"ok": False, "error": f"producer actor: {exc.detail}"}
        for name, handles, method in (
            ("shards", self.topology.shards, "stats"),
            ("gateways", self.topology.gateways, "ping"),
        ):
            try:
                await self._await_actor(
                    asyncio.gather(*(getattr(h, method).remote() for h in handles))
                )
                checks[name] = {"ok": True, "count": len(handles)}
            except RaypayError as exc:
                checks[name] = {"ok": False, "error": exc.detail}
        down = [name for name, check in checks.items() if not check["ok"]]
        if request.scope.get(PRINCIPAL) is None:
            if not down:
                return JSONResponse({"status": "ready"})
            body = problems.problem(503, "unavailable", "Not ready", "not ready")
            return problems.problem_response(body, {"Retry-After": "1"})
        if not down:
            return JSONResponse({"status": "ready", "checks": checks})
        body = problems.problem(
            503, "unavailable", "Not ready", f"down: {', '.join(down)}", down=down, checks=checks
        )
        return problems.problem_response(body, {"Retry-After": "1"})


def build_app(args: dict[str, Any]) -> serve.Application:
    """The application builder named in serve_config.yaml (``args`` is typed here)."""
    return PaymentIngress.bind(AppArgs.model_validate(args or {}), Settings())
