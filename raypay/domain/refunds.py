"""Refunds of a succeeded payment, and the rule that decides how much may be refunded.

A payment may be refunded in several parts. What is left to refund is what it charged
less its refunds that succeeded or are still pending: a pending refund's amount is set
aside until it settles (back if it fails), so concurrent refunds can never together
pay back more than was charged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from raypay.domain.errors import (
    IdempotencyKeyReused,
    InvalidRequest,
    PaymentNotRefundable,
    RefundExceedsPayment,
)
from raypay.domain.model import Payment, PaymentStatus
from raypay.domain.money import Money, MoneyError, TooManyDecimals
from raypay.domain.sharding import scoped_id, vshard_in


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundReason(StrEnum):
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    EVENT_CANCELLED = "event_cancelled"
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    RESERVATION_EXPIRED = "reservation_expired"


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """A validated request to refund a payment. ``amount`` is in the payment's currency
    (which only the payment knows, so it is checked against its decimals later); None
    asks for all that is left."""

    payment_id: str
    reason: RefundReason
    amount: Decimal | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    request_id: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    payment_id: str
    order_id: str
    customer_id: str
    amount: Money
    reason: RefundReason
    status: RefundStatus
    created_at: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)
    gateway_refund_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    processed_at: datetime | None = None

    @classmethod
    def start(
        cls,
        request: RefundRequest,
        payment: Payment,
        refund_id: str,
        amount: Money,
        now: datetime,
    ) -> Refund:
        return cls(
            refund_id=refund_id,
            payment_id=payment.payment_id,
            order_id=payment.order_id,
            customer_id=payment.customer_id,
            amount=amount,
            reason=request.reason,
            status=RefundStatus.PENDING,
            created_at=now,
            metadata=dict(request.metadata),
        )

    def succeed(self, gateway_refund_id: str, now: datetime) -> Refund:
        self._require_pending()
        return replace(
            self,
            status=RefundStatus.SUCCEEDED,
            gateway_refund_id=gateway_refund_id,
            processed_at=now,
        )

    def fail(self, code: str, message: str, now: datetime) -> Refund:
        self._require_pending()
        return replace(
            self,
            status=RefundStatus.FAILED,
            error_code=code,
            error_message=message,
            processed_at=now,
        )

    def _require_pending(self) -> None:
        if self.status is not RefundStatus.PENDING:
            raise ValueError(f"refund {self.refund_id} is {self.status}, not pending")


def refund_amount(payment: Payment, refunds: Iterable[Refund], requested: Decimal | None) -> Money:
    """The amount to refund: ``requested``, or all that is left when None.

    Only a succeeded payment is refundable (409); nothing may exceed what is left, the
    charge less the refunds that succeeded or are pending (422).
    """
    currency = payment.amount.currency
    if payment.status is not PaymentStatus.SUCCEEDED:
        raise PaymentNotRefundable(
            f"payment {payment.payment_id} is {payment.status}; only a succeeded payment "
            "can be refunded"
        )
    taken = sum(r.amount.minor for r in refunds if r.status is not RefundStatus.FAILED)
    left = Money(max(0, payment.amount.minor - taken), currency)
    if requested is None:
        amount = left
    else:
        try:
            amount = Money.parse(requested, currency)
        except MoneyError as exc:
            kind = "amount_decimals" if isinstance(exc, TooManyDecimals) else "value_error"
            raise InvalidRequest(
                f"amount: {exc}",
                {"errors": [{"field": "amount", "message": str(exc), "type": kind}]},
            ) from None
    if amount.minor == 0 or amount.minor > left.minor:
        raise RefundExceedsPayment(
            f"payment {payment.payment_id} has {left} {currency} left to refund",
            {"amountRefundable": str(left), "currency": currency},
        )
    return amount


def with_refund(payment: Payment, refund: Refund) -> Payment:
    """The payment as it stands once ``refund`` settled: a succeeded one adds to its
    refunded amount."""
    if refund.status is not RefundStatus.SUCCEEDED:
        return payment
    return replace(
        payment, amount_refunded_minor=payment.amount_refunded_minor + refund.amount.minor
    )


def check_same_refund(earlier: Refund, request: RefundRequest) -> None:
    """A retry under one Idempotency-Key must ask for what the first request asked
    (None asks for "the rest", which the first request fixed as an amount)."""
    same_amount = request.amount is None or request.amount == earlier.amount.amount
    if not same_amount or request.reason != earlier.reason:
        raise IdempotencyKeyReused(
            f"refund {earlier.refund_id} was started under this Idempotency-Key with "
            "another amount or reason"
        )


def refund_id_for(payment_id: str, idempotency_key: str) -> str:
    """The refundId of the refund a request with this Idempotency-Key makes: the same for
    every retry, so a retry after a 503 finds that refund instead of making another. It
    carries its payment's vshard (a refund's keys sit in its payment's hash slot)."""
    digest = hashlib.sha256(f"{payment_id}\x1f{idempotency_key}".encode()).hexdigest()
    return scoped_id("re", vshard_in(payment_id), digest[:32])
