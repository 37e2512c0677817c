"""The refund routes: refund a payment, read refunds. Their own router, included by the
ingress (deployments/app.py); what they need from it is the ``RefundDesk`` it builds and
leaves on ``api.state.refunds``.

A refund runs in the PaymentActor shard that owns the payment's order, under the order's
lock, so it is serialized with the order's payments and its other refunds.
"""

# No `from __future__ import annotations`: FastAPI reads these route signatures at run time.
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import ray
from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse

from deployments import problems
from deployments.models import (
    ID_PATTERN,
    PaymentRefundsOut,
    Problem,
    RefundBody,
    RefundOut,
    refund_body,
)
from deployments.security import Refunds
from raypay.adapters.batch_store import RedisBatches
from raypay.adapters.rate_limiter import RateLimiter
from raypay.adapters.redis_store import RedisPayments
from raypay.adapters.refund_store import RedisRefunds
from raypay.domain.errors import PaymentNotFound, RaypayError, RefundNotFound
from raypay.domain.outcomes import Outcome, classify
from raypay.domain.refunds import RefundRequest
from raypay.domain.sharding import shard_of_order

log = logging.getLogger("raypay.ingress")
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 401, 402, 403, 404, 409, 413, 415, 422, 429, 503)
}
IdempotencyKey = Annotated[
    str | None, Header(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
]
RequestId = Annotated[
    str | None,
    Header(alias="X-Request-ID", min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$"),
]
PaymentId = Annotated[str, Path(pattern=ID_PATTERN)]


class RefundDesk:
    """The stores and actors the refund and batch routes use, built by the ingress."""

    def __init__(
        self,
        payments: RedisPayments,
        refunds: RedisRefunds,
        batches: RedisBatches,
        limiter: RateLimiter,
        shards: list[ray.actor.ActorHandle],
        runner: ray.actor.ActorHandle,
        await_actor: Callable[[Any], Awaitable[Any]],
    ) -> None:
        self.payments, self.refunds, self.batches = payments, refunds, batches
        self.limiter, self.shards, self.runner = limiter, shards, runner
        self.await_actor = await_actor

    async def refund(self, request: RefundRequest, key: str | None) -> Outcome:
        """Refund through the shard that owns the payment's order (its record names it)."""
        order_id = await self.payments.order_of(request.payment_id)
        if order_id is None:
            raise PaymentNotFound(f"payment {request.payment_id} not found")
        shard = self.shards[shard_of_order(order_id, len(self.shards))]
        return await self.await_actor(shard.refund.remote(request, order_id, key))


def desk(request: Request) -> RefundDesk:
    return request.app.state.refunds


Desk = Annotated[RefundDesk, Depends(desk)]
router = APIRouter()


@router.post(
    "/v1/payments/{payment_id}/refunds",
    status_code=201,
    response_model=RefundOut,
    responses=PROBLEMS,
)
async def create_refund(
    payment_id: PaymentId,
    body: RefundBody,
    principal: Refunds,
    desk: Desk,
    idempotency_key: IdempotencyKey = None,
    request_id: RequestId = None,
) -> JSONResponse:
    """Refund a succeeded payment, in full (no ``amount``) or in part. Safe to retry with
    an Idempotency-Key: the key names the refund, so it is paid back once."""
    await desk.limiter.admit(principal)
    request = body.to_domain(payment_id, request_id)
    headers: dict[str, str] = {}
    try:
        outcome = await desk.refund(request, idempotency_key)
    except RaypayError as exc:
        _log(request, exc)
        return problems.error_response(exc, headers)
    _log(request, outcome)
    return problems.refund_response(outcome, headers)


def _log(request: RefundRequest, result: Outcome | RaypayError) -> None:
    kind, code = classify(result)
    refund = result.refund if isinstance(result, Outcome) else None
    log.info(
        "refund %s",
        kind.value,
        extra={
            "paymentId": request.payment_id,
            "refundId": refund.refund_id if refund else None,
            "outcome": kind.value,
            "code": code or None,
            "requestId": request.request_id,
        },
    )


@router.get("/v1/refunds/{refund_id}", response_model=RefundOut, responses=PROBLEMS)
async def get_refund(
    refund_id: Annotated[str, Path(pattern=ID_PATTERN)], principal: Refunds, desk: Desk
) -> dict[str, Any]:
    """A refund by its id."""
    await desk.limiter.admit(principal)
    refund = await desk.refunds.get(refund_id)
    if refund is None:
        raise RefundNotFound(f"refund {refund_id} not found")
    return refund_body(refund)


@router.get(
    "/v1/payments/{payment_id}/refunds", response_model=PaymentRefundsOut, responses=PROBLEMS
)
async def list_refunds(payment_id: PaymentId, principal: Refunds, desk: Desk) -> dict[str, Any]:
    """A payment's refunds, oldest first."""
    await desk.limiter.admit(principal)
    if await desk.payments.order_of(payment_id) is None:
        raise PaymentNotFound(f"payment {payment_id} not found")
    refunds = await desk.refunds.list_for_payment(payment_id)
    return {"paymentId": payment_id, "refunds": [refund_body(r) for r in refunds]}
