"""The raypay Serve application: HTTP ingress, routed by orderId to PaymentActor shards.

``build_app`` is the typed application builder ``serve_config.yaml`` points at.
"""

# No `from __future__ import annotations`: FastAPI reads these route signatures at run time.
import asyncio
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.exceptions import RayError

from actors.topology import Topology, ensure_actors
from deployments import problems
from deployments.models import OrderPaymentsOut, PaymentBody, PaymentOut, Problem
from raypay.adapters.gateway_sim import SimulatorConfig
from raypay.adapters.redis_store import Keys, RedisPayments, connect, translated
from raypay.errors import (
    PayloadTooLarge,
    PaymentNotFound,
    RaypayError,
    ShardUnavailable,
    problem,
)
from raypay.replies import Reply
from raypay.settings import Settings
from raypay.sharding import shard_for

PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 402, 404, 409, 413, 422, 503)
}

api = FastAPI(
    title="raypay",
    version="1",
    summary="Payments for ticketing checkouts, on Ray Serve, Redis and Kafka.",
)
problems.install(api)


@api.middleware("http")
async def limit_body_size(request: Request, call_next: Any) -> Response:
    """413 before the body is read, from its declared length."""
    limit = request.app.state.max_body_bytes
    length = request.headers.get("content-length", "0")
    if not length.isdigit() or int(length) > limit:
        return problems.from_error(PayloadTooLarge(f"body is larger than {limit} bytes"))
    return await call_next(request)


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


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
@serve.ingress(api)
class PaymentIngress:
    def __init__(self, args: AppArgs, settings: Settings) -> None:
        self.settings = settings
        api.state.max_body_bytes = settings.max_body_bytes
        self.topology: Topology = ensure_actors(
            settings,
            args.shards,
            args.gateway_pool,
            SimulatorConfig(**args.simulator.model_dump()),
            args.sweep_after_s,
        )
        self.redis = connect(settings.redis_url, settings.redis_timeout_s)
        self.payments = RedisPayments(self.redis, Keys(settings.key_prefix))

    async def _await_actor(self, ref: Any) -> Any:
        try:
            return await asyncio.wait_for(ref, self.settings.shard_timeout_s)
        except RaypayError:
            raise
        except (RayError, TimeoutError) as exc:
            raise ShardUnavailable(f"payment shard unavailable: {type(exc).__name__}") from exc

    @api.post(
        "/v1/payments",
        status_code=201,
        response_model=PaymentOut,
        responses={200: {"model": PaymentOut, "description": "Replayed"}, **PROBLEMS},
    )
    async def create_payment(
        self,
        body: PaymentBody,
        idempotency_key: Annotated[
            str | None, Header(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
        ] = None,
    ) -> JSONResponse:
        """Pay an order. Safe to retry: an order is charged at most once."""
        shards = self.topology.shards
        shard = shards[shard_for(body.order_id, len(shards))]
        reply: Reply = await self._await_actor(shard.pay.remote(body.to_domain(), idempotency_key))
        headers = {"Idempotent-Replayed": "true"} if reply.replayed else None
        media_type = problems.PROBLEM_JSON if reply.status >= 400 else "application/json"
        return JSONResponse(reply.body, reply.status, headers, media_type)

    @api.get("/v1/payments/{payment_id}", response_model=PaymentOut, responses=PROBLEMS)
    async def get_payment(self, payment_id: str) -> dict[str, Any]:
        payment = await self.payments.get(payment_id)
        if payment is None:
            raise PaymentNotFound(f"payment {payment_id} not found")
        return payment.to_api()

    @api.get("/v1/orders/{order_id}/payments", response_model=OrderPaymentsOut, responses=PROBLEMS)
    async def list_order_payments(self, order_id: str) -> dict[str, Any]:
        payments = await self.payments.list_for_order(order_id)
        return {"orderId": order_id, "payments": [p.to_api() for p in payments]}

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @api.get("/readyz", responses={503: {"model": Problem}})
    async def readyz(self) -> JSONResponse:
        """Redis, the broker and every actor answer; 503 names what is down."""
        checks: dict[str, Any] = {}
        try:
            async with translated():
                await self.redis.ping()
            checks["redis"] = {"ok": True}
        except RaypayError as exc:
            checks["redis"] = {"ok": False, "error": exc.detail}
        try:
            status = await self._await_actor(self.topology.producer.status.remote())
            checks["broker"] = {"ok": status["broker"], "error": status["brokerError"]}
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
        if not down:
            return JSONResponse({"status": "ready", "checks": checks})
        body = problem(
            503, "unavailable", "Not ready", f"down: {', '.join(down)}", down=down, checks=checks
        )
        return problems.problem_response(body, {"Retry-After": "1"})


def build_app(args: dict[str, Any]) -> serve.Application:
    """The application builder named in serve_config.yaml (``args`` is typed here)."""
    return PaymentIngress.bind(AppArgs.model_validate(args or {}), Settings())
