"""Refund batches over HTTP: refund every order of a cancelled event.

``POST /v1/refund-batches`` records the batch in Redis and wakes the RefundBatchActor
(actors/refund_batches.py), which runs it at a bounded rate; ``GET`` shows its progress
and each order's outcome. The request and response models live here, beside their routes.
"""

# No `from __future__ import annotations`: FastAPI reads these route signatures at run time.
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from deployments.models import ID_PATTERN, MAX_METADATA, Metadata, check_metadata
from deployments.refund_routes import PROBLEMS, Desk, IdempotencyKey
from deployments.security import Refunds
from raypay.domain.batches import MAX_ORDERS, BatchItem, RefundBatch
from raypay.domain.errors import IdempotencyKeyReused, RefundBatchNotFound
from raypay.domain.model import iso
from raypay.domain.refunds import RefundReason

BATCHES_PATH = "/v1/refund-batches"
OrderId = Annotated[str, Field(pattern=ID_PATTERN)]


class RefundBatchBody(BaseModel):
    """POST /v1/refund-batches body."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={
            "examples": [{"orderIds": ["ord_1", "ord_2"], "reason": "event_cancelled"}]
        },
    )

    order_ids: list[OrderId] = Field(min_length=1, max_length=MAX_ORDERS)
    reason: RefundReason
    metadata: Metadata = Field(
        default_factory=dict,
        max_length=MAX_METADATA,
        json_schema_extra={"additionalProperties": False},  # keys: only the pattern's
    )

    @field_validator("metadata")
    @classmethod
    def short_pairs(cls, value: dict[str, str]) -> dict[str, str]:
        return check_metadata(value)


class BatchItemOut(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    order_id: str
    status: str = Field(description="pending | succeeded | failed | skipped")
    payment_id: str | None
    refund_id: str | None
    amount: str | None
    code: str | None = Field(description="failed: the decline; skipped: why (a problem code)")


class RefundBatchOut(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    batch_id: str
    reason: RefundReason
    status: str = Field(description="running | done")
    total: int
    done: int
    succeeded: int
    failed: int
    skipped: int
    metadata: dict[str, str]
    created_at: str
    finished_at: str | None
    offset: int
    items: list[BatchItemOut] = Field(description="Each order's outcome, from ``offset``")


def batch_body(batch: RefundBatch, items: list[BatchItem], offset: int = 0) -> dict[str, Any]:
    return {
        "batchId": batch.batch_id,
        "reason": batch.reason.value,
        "status": batch.status.value,
        "total": batch.total,
        "done": batch.done,
        **{name: batch.counts.get(name, 0) for name in ("succeeded", "failed", "skipped")},
        "metadata": dict(batch.metadata),
        "createdAt": iso(batch.created_at),
        "finishedAt": iso(batch.finished_at) if batch.finished_at else None,
        "offset": offset,
        "items": [
            {
                "orderId": item.order_id,
                "status": item.status.value,
                "paymentId": item.payment_id,
                "refundId": item.refund_id,
                "amount": item.amount,
                "code": item.code,
            }
            for item in items
        ],
    }


router = APIRouter()


@router.post(BATCHES_PATH, status_code=202, response_model=RefundBatchOut, responses=PROBLEMS)
async def create_batch(
    body: RefundBatchBody, principal: Refunds, desk: Desk, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Refund all that is left of each order's succeeded payment (an event was cancelled).
    Answers at once; the batch runs at ``RAYPAY_REFUND_BATCH_RATE`` refunds a second.
    With an Idempotency-Key, the key names the batch: sent again, it answers that batch."""
    await desk.limiter.admit(principal)
    order_ids = list(dict.fromkeys(body.order_ids))  # an order listed twice is refunded once
    batch_id = (
        "rb_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        if idempotency_key
        else f"rb_{uuid.uuid4().hex}"
    )
    wanted = RefundBatch(
        batch_id, body.reason, len(order_ids), datetime.now(UTC), metadata=body.metadata
    )
    batch = await desk.batches.create(wanted, order_ids)
    if (batch.reason, batch.total, batch.metadata) != (body.reason, len(order_ids), body.metadata):
        raise IdempotencyKeyReused(f"Idempotency-Key {idempotency_key!r} made another batch")
    desk.runner.wake.remote()  # it also looks for open batches every second
    return JSONResponse(
        batch_body(batch, []), 202, headers={"Location": f"{BATCHES_PATH}/{batch_id}"}
    )


@router.get(BATCHES_PATH + "/{batch_id}", response_model=RefundBatchOut, responses=PROBLEMS)
async def get_batch(
    batch_id: Annotated[str, Path(pattern=ID_PATTERN)],
    principal: Refunds,
    desk: Desk,
    offset: Annotated[int, Query(ge=0, le=MAX_ORDERS)] = 0,  # a batch has at most MAX_ORDERS
    limit: Annotated[int, Query(ge=0, le=MAX_ORDERS)] = 1000,
) -> dict[str, Any]:
    """A batch's progress, and the outcome of its orders from ``offset`` (``limit`` of them)."""
    await desk.limiter.admit(principal)
    batch = await desk.batches.get(batch_id)
    if batch is None:
        raise RefundBatchNotFound(f"refund batch {batch_id} not found")
    order_ids = await desk.batches.orders(batch_id, offset, limit) if limit else []
    return batch_body(batch, await desk.batches.items(batch_id, order_ids), offset)
