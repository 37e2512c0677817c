"""Storage records: how orders, reservations, payments and refunds are kept in Redis hashes.

This is the storage contract, owned here and nowhere else: the HTTP payment object
(deployments/models.py) and the event payload (event_payload.py) are made apart, so
renaming a field of one never changes what is stored. Every value is a string; money
is integer minor units (``amountMinor``) with its ``currency``; ``None`` is ``""``.
Orders and reservations are written by upstream services in these formats (README,
"Orders and reservations"); :mod:`raypay.adapters.seeding` writes them for local runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from raypay.domain.batches import BatchItem, BatchStatus, ItemStatus, RefundBatch
from raypay.domain.model import Order, Payment, PaymentStatus, Reservation, iso
from raypay.domain.money import Money
from raypay.domain.refunds import Refund, RefundReason, RefundStatus


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``: ``2026-11-26T04:00:00.000Z``."""
    return iso(moment.astimezone(UTC))


def to_record(payment: Payment) -> dict[str, str]:
    """The payment's hash fields."""
    return {
        "paymentId": payment.payment_id,
        "orderId": payment.order_id,
        "customerId": payment.customer_id,
        "reservationId": payment.reservation_id or "",
        "amountMinor": str(payment.amount.minor),
        "currency": payment.amount.currency,
        "paymentMethod": payment.payment_method,
        "status": payment.status.value,
        "transactionId": payment.transaction_id or "",
        "errorCode": payment.error_code or "",
        "errorMessage": payment.error_message or "",
        "createdAt": iso(payment.created_at),
        "processedAt": iso(payment.processed_at) if payment.processed_at else "",
        "isSimulated": "1" if payment.is_simulated else "0",
        # Moved by the refund store's scripts only; a payment is settled (the only other
        # write of the hash) before it can have a refund.
        "amountRefundedMinor": str(payment.amount_refunded_minor),
    }


OUTCOME_FIELDS = ("status", "transactionId", "errorCode", "errorMessage", "processedAt",
                  "isSimulated")  # fmt: skip


def outcome_record(payment: Payment) -> dict[str, str]:
    """The fields settling a payment changes (the rest was written when it began)."""
    record = to_record(payment)
    return {name: record[name] for name in OUTCOME_FIELDS}


def from_record(fields: dict[str, str]) -> Payment:
    """The payment a hash holds (as :func:`to_record` wrote it)."""

    def opt(name: str) -> str | None:
        return fields.get(name) or None

    created_at = parse_time(fields["createdAt"])
    assert created_at is not None
    return Payment(
        payment_id=fields["paymentId"],
        order_id=fields["orderId"],
        customer_id=fields["customerId"],
        reservation_id=opt("reservationId"),
        amount=Money(int(fields["amountMinor"]), fields["currency"]),
        payment_method=fields["paymentMethod"],
        status=PaymentStatus(fields["status"]),
        created_at=created_at,
        transaction_id=opt("transactionId"),
        error_code=opt("errorCode"),
        error_message=opt("errorMessage"),
        processed_at=parse_time(opt("processedAt")),
        is_simulated=fields.get("isSimulated") == "1",
        amount_refunded_minor=int(fields.get("amountRefundedMinor") or 0),
    )


def refund_record(refund: Refund) -> dict[str, str]:
    """The refund's hash fields (``metadata`` as a JSON object)."""
    return {
        "refundId": refund.refund_id,
        "paymentId": refund.payment_id,
        "orderId": refund.order_id,
        "customerId": refund.customer_id,
        "amountMinor": str(refund.amount.minor),
        "currency": refund.amount.currency,
        "reason": refund.reason.value,
        "status": refund.status.value,
        "metadata": json.dumps(dict(refund.metadata), separators=(",", ":")),
        "gatewayRefundId": refund.gateway_refund_id or "",
        "errorCode": refund.error_code or "",
        "errorMessage": refund.error_message or "",
        "createdAt": iso(refund.created_at),
        "processedAt": iso(refund.processed_at) if refund.processed_at else "",
    }


def refund_from_record(fields: dict[str, str]) -> Refund:
    """The refund a hash holds (as :func:`refund_record` wrote it)."""
    created_at = parse_time(fields["createdAt"])
    assert created_at is not None
    return Refund(
        refund_id=fields["refundId"],
        payment_id=fields["paymentId"],
        order_id=fields["orderId"],
        customer_id=fields["customerId"],
        amount=Money(int(fields["amountMinor"]), fields["currency"]),
        reason=RefundReason(fields["reason"]),
        status=RefundStatus(fields["status"]),
        created_at=created_at,
        metadata=json.loads(fields.get("metadata") or "{}"),
        gateway_refund_id=fields.get("gatewayRefundId") or None,
        error_code=fields.get("errorCode") or None,
        error_message=fields.get("errorMessage") or None,
        processed_at=parse_time(fields.get("processedAt")),
    )


def batch_record(batch: RefundBatch) -> dict[str, str]:
    """A refund batch's hash fields, as created (the counts start at zero)."""
    return {
        "batchId": batch.batch_id,
        "reason": batch.reason.value,
        "total": str(batch.total),
        "createdAt": iso(batch.created_at),
        "status": batch.status.value,
        "metadata": json.dumps(dict(batch.metadata), separators=(",", ":")),
        "cursor": str(batch.cursor),
        **{status.value: "0" for status in ItemStatus if status is not ItemStatus.PENDING},
        "finishedAt": "",
    }


def batch_from_record(fields: dict[str, str]) -> RefundBatch:
    created_at = parse_time(fields["createdAt"])
    assert created_at is not None
    counts = {
        status.value: int(fields.get(status.value) or 0)
        for status in ItemStatus
        if status is not ItemStatus.PENDING
    }
    return RefundBatch(
        batch_id=fields["batchId"],
        reason=RefundReason(fields["reason"]),
        total=int(fields["total"]),
        created_at=created_at,
        status=BatchStatus(fields["status"]),
        metadata=json.loads(fields.get("metadata") or "{}"),
        cursor=int(fields.get("cursor") or 0),
        counts=counts,
        finished_at=parse_time(fields.get("finishedAt")),
    )


def item_record(item: BatchItem) -> str:
    """An order's outcome in a batch, as JSON (one field of the batch's items hash)."""
    value = {
        "status": item.status.value,
        "paymentId": item.payment_id,
        "refundId": item.refund_id,
        "amount": item.amount,
        "code": item.code,
    }
    return json.dumps(value, separators=(",", ":"))


def item_from_record(order_id: str, raw: str | None) -> BatchItem:
    if raw is None:
        return BatchItem(order_id, ItemStatus.PENDING)
    value = json.loads(raw)
    return BatchItem(
        order_id,
        ItemStatus(value["status"]),
        value["paymentId"],
        value["refundId"],
        value["amount"],
        value["code"],
    )


def order_record(customer_id: str, total: Money, status: str) -> dict[str, str]:
    """An order's hash fields, as the order service writes them."""
    return {
        "customerId": customer_id,
        "amountMinor": str(total.minor),
        "currency": total.currency,
        "status": status,
    }


def order_from_record(order_id: str, fields: dict[str, str]) -> Order:
    total = Money(int(fields["amountMinor"]), fields["currency"])
    return Order(order_id, fields["customerId"], total, fields["status"])


def reservation_record(
    order_id: str, customer_id: str, status: str, expires_at: datetime
) -> dict[str, str]:
    """A reservation's hash fields, as the reservation service writes them."""
    return {
        "orderId": order_id,
        "customerId": customer_id,
        "status": status,
        "expiresAt": iso_utc(expires_at),
    }


def reservation_from_record(reservation_id: str, fields: dict[str, str]) -> Reservation:
    expires_at = parse_time(fields["expiresAt"])
    assert expires_at is not None
    return Reservation(
        reservation_id, fields["orderId"], fields["customerId"], fields["status"], expires_at
    )
