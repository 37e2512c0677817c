"""Storage records: how orders, reservations and payments are kept in Redis hashes.

This is the storage contract, owned here and nowhere else: the HTTP payment object
(deployments/models.py) and the event payload (event_payload.py) are made apart, so
renaming a field of one never changes what is stored. Every value is a string; money
is integer minor units (``amountMinor``) with its ``currency``; ``None`` is ``""``.
Orders and reservations are written by upstream services in these formats (README,
"Orders and reservations"); :mod:`raypay.adapters.seeding` writes them for local runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from raypay.domain.model import Order, Payment, PaymentStatus, Reservation, iso
from raypay.domain.money import Money


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
