"""Orders, reservations and payments, and the rules that decide whether an order may be paid."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from raypay.domain.errors import (
    AmountMismatch,
    InvalidRequest,
    OrderNotFound,
    OrderNotPayable,
    ReservationInactive,
    ReservationNotFound,
)
from raypay.domain.money import Money
from raypay.domain.pickling import by_fields


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


PAYABLE = frozenset({OrderStatus.PENDING_PAYMENT})


class ReservationStatus(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@by_fields
@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    customer_id: str
    total: Money
    status: str


@by_fields
@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str
    order_id: str
    customer_id: str
    status: str
    expires_at: datetime


@by_fields
@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A validated request to pay one order."""

    order_id: str
    customer_id: str
    amount: Money
    payment_method: str
    reservation_id: str | None = None
    # Metadata, not part of the request: the id that follows this payment through the
    # logs, the gateway call and the event's headers. Two requests that differ only in
    # it are the same request (idempotency.fingerprint leaves it out).
    request_id: str | None = field(default=None, compare=False)


@by_fields
@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    order_id: str
    customer_id: str
    reservation_id: str | None
    amount: Money
    payment_method: str
    status: PaymentStatus
    created_at: datetime
    transaction_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    processed_at: datetime | None = None
    is_simulated: bool = True
    # What its succeeded refunds paid back, in minor units of ``amount``'s currency. The
    # status stays ``succeeded``: it says how the charge ended, which a refund does not
    # change (as Stripe's charges do); ``refunded`` says what happened since.
    amount_refunded_minor: int = 0

    @property
    def amount_refunded(self) -> Money:
        return Money(self.amount_refunded_minor, self.amount.currency)

    @property
    def refunded(self) -> bool:
        """Fully refunded."""
        return self.amount_refunded_minor >= self.amount.minor

    @classmethod
    def start(cls, request: PaymentRequest, payment_id: str, now: datetime) -> Payment:
        return cls(
            payment_id=payment_id,
            order_id=request.order_id,
            customer_id=request.customer_id,
            reservation_id=request.reservation_id,
            amount=request.amount,
            payment_method=request.payment_method,
            status=PaymentStatus.PENDING,
            created_at=now,
        )

    def succeed(self, transaction_id: str, now: datetime, simulated: bool) -> Payment:
        self._require_pending()
        return replace(
            self,
            status=PaymentStatus.SUCCEEDED,
            transaction_id=transaction_id,
            processed_at=now,
            is_simulated=simulated,
        )

    def fail(self, code: str, message: str, now: datetime, simulated: bool = True) -> Payment:
        self._require_pending()
        return replace(
            self,
            status=PaymentStatus.FAILED,
            error_code=code,
            error_message=message,
            processed_at=now,
            is_simulated=simulated,
        )

    def _require_pending(self) -> None:
        if self.status is not PaymentStatus.PENDING:
            raise ValueError(f"payment {self.payment_id} is {self.status}, not pending")


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with millisecond precision and a ``Z``."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_order(order: Order | None, request: PaymentRequest) -> Order:
    """Step 2: the order exists, is the customer's, has this amount and may be paid.

    Another customer's order is reported as not found, so its existence is not revealed.
    """
    if order is None or order.customer_id != request.customer_id:
        raise OrderNotFound(f"order {request.order_id} not found")
    if order.total != request.amount:
        raise AmountMismatch(
            f"order {order.order_id} is {order.total} {order.total.currency}, "
            f"request says {request.amount} {request.amount.currency}"
        )
    if order.status not in PAYABLE:
        raise OrderNotPayable(f"order {order.order_id} is {order.status}")
    return order


def check_reservation(
    reservation: Reservation | None, request: PaymentRequest, now: datetime
) -> Reservation:
    """Step 3: the reservation exists, is the customer's and this order's, and is active."""
    if (
        reservation is None
        or reservation.customer_id != request.customer_id
        or reservation.order_id != request.order_id
    ):
        raise ReservationNotFound(f"reservation {request.reservation_id} not found")
    if reservation.status != ReservationStatus.ACTIVE:
        raise ReservationInactive(
            f"reservation {reservation.reservation_id} is {reservation.status}"
        )
    if reservation.expires_at <= now:
        raise ReservationInactive(
            f"reservation {reservation.reservation_id} expired at {iso(reservation.expires_at)}"
        )
    return reservation


AMOUNT_TOO_LARGE = "amount_too_large"  # the error's stable type (an HTTP 422's errors[])


def hold_lost(reservation: Reservation | None, now: datetime) -> bool:
    """The seat hold is gone: released, expired (by status or by time), or no longer there."""
    return (
        reservation is None
        or reservation.status != ReservationStatus.ACTIVE
        or reservation.expires_at <= now
    )


def check_amount_cap(
    amount: Money, max_amount: Decimal, by_currency: Mapping[str, Decimal] | None = None
) -> None:
    """422 validation_error if ``amount`` exceeds the cap of its currency (major units)."""
    cap = (by_currency or {}).get(amount.currency, max_amount)
    if amount.amount > cap:
        message = f"amount must be at most {cap} {amount.currency}"
        raise InvalidRequest(
            f"amount: {message}",
            {"errors": [{"field": "amount", "message": message, "type": AMOUNT_TOO_LARGE}]},
        )
