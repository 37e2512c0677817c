"""The GatewaySimulator actor pool, and the Gateway adapter that shards use to call it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

import ray
from ray.exceptions import RayError

from actors.batching import BatchedMethod
from actors.metrics import GatewayMetrics
from raypay import bootstrap
from raypay.adapters.batching import TicketBox
from raypay.bootstrap import GatewayConfig
from raypay.domain.errors import GatewayUnavailable
from raypay.domain.ports import ChargeRequest, ChargeResult, RefundCharge, RefundResult
from raypay.domain.sharding import shard_for

log = logging.getLogger("raypay.gateway")


@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=1000)
class GatewaySimulatorActor:
    """One simulated card processor; its ledger lives in Redis, so a restart loses nothing."""

    def __init__(self, config: GatewayConfig) -> None:
        settings = config.settings
        self.metrics = GatewayMetrics(settings.key_prefix)
        redis = bootstrap.redis_client(settings, self.metrics.redis_error)
        self.simulator = bootstrap.simulator(settings, redis, config.simulator)
        self._box = TicketBox(config.batch_hold_s)

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        """Charge once per idempotency key; a repeated key returns the first result."""
        started = time.perf_counter()
        try:
            result = await self.simulator.charge(request)
        except Exception as exc:
            self.metrics.charged("error", time.perf_counter() - started)
            log.warning(
                "charge failed: %s",
                type(exc).__name__,
                extra={
                    "orderId": request.reference,
                    "paymentId": request.idempotency_key,
                    "requestId": request.request_id,
                },
            )
            raise
        outcome = "approved" if result.approved else "declined"
        self.metrics.charged(outcome, time.perf_counter() - started)
        return result

    async def charge_many(self, items: list[tuple[ChargeRequest]]) -> list[Any]:
        """``charge`` for a batch: results or errors (as values), Tickets for slow ones."""
        return await self._box.run([self.charge(request) for (request,) in items])

    async def collect(self, ticket_ids: list[int]) -> list[Any]:
        """Answers for the Tickets of earlier batches."""
        return await self._box.collect(ticket_ids)

    async def resolve_charge(self, idempotency_key: str) -> ChargeResult:
        """The earlier charge's result, or close the key with an ``abandoned`` decline."""
        return await self.simulator.resolve_charge(idempotency_key)

    async def refund(self, request: RefundCharge) -> RefundResult:
        """Refund once per idempotency key (the refundId); a repeated key returns the first
        result."""
        try:
            return await self.simulator.refund(request)
        except Exception as exc:
            log.warning(
                "refund failed: %s",
                type(exc).__name__,
                extra={"orderId": request.reference, "refundId": request.idempotency_key},
            )
            raise

    async def ping(self) -> str:
        return "ok"


class ActorPoolGateway:
    """The Gateway port over the simulator pool: one key always goes to one actor,
    and a call that takes longer than ``timeout_s`` is a GatewayUnavailable."""

    def __init__(
        self, pool: list[ray.actor.ActorHandle], timeout_s: float, batch_window_s: float
    ) -> None:
        self.pool, self.timeout_s = pool, timeout_s
        self._charge = [BatchedMethod(actor, "charge_many", batch_window_s) for actor in pool]

    def _index(self, key: str) -> int:
        return shard_for(key, len(self.pool))

    async def _call(self, call: Awaitable[Any]) -> Any:
        try:
            return await asyncio.wait_for(call, self.timeout_s)
        except TimeoutError as exc:
            raise GatewayUnavailable(f"gateway did not answer within {self.timeout_s}s") from exc
        except GatewayUnavailable:
            raise
        except (RayError, LookupError) as exc:
            raise GatewayUnavailable(f"gateway actor unavailable: {type(exc).__name__}") from exc

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        return await self._call(self._charge[self._index(request.idempotency_key)](request))

    async def resolve_charge(self, idempotency_key: str) -> ChargeResult:
        actor = self.pool[self._index(idempotency_key)]
        return await self._call(actor.resolve_charge.remote(idempotency_key))

    async def refund(self, request: RefundCharge) -> RefundResult:
        # Refunds are few: one Ray call each, no batching.
        actor = self.pool[self._index(request.idempotency_key)]
        return await self._call(actor.refund.remote(request))
