"""The events a settled payment produces (``payment-succeeded`` or ``payment-failed``)
and those a settled refund produces (``refund-succeeded`` or ``refund-failed``).

This is what happened, in domain terms; the versioned JSON payload consumers read is
made at the outbox's edge (raypay/adapters/event_payload.py, schemas/events/).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from raypay.domain.model import Payment, PaymentStatus
from raypay.domain.refunds import Refund, RefundStatus, with_refund


class EventType(StrEnum):
    """Each event type is also the default name of its topic."""

    PAYMENT_SUCCEEDED = "payment-succeeded"
    PAYMENT_FAILED = "payment-failed"
    REFUND_SUCCEEDED = "refund-succeeded"
    REFUND_FAILED = "refund-failed"


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One event for the outbox. Its key is the orderId, so one order's events stay in
    order; ``request_id`` (of the request that settled the payment) travels as a header."""

    type: EventType
    event_id: str
    occurred_at: datetime
    payment: Payment
    request_id: str | None = None

    @property
    def key(self) -> str:
        return self.payment.order_id


def event_for(
    payment: Payment, event_id: str, now: datetime, request_id: str | None = None
) -> PaymentEvent:
    """The event a settled payment produces."""
    if payment.status is PaymentStatus.SUCCEEDED:
        return PaymentEvent(EventType.PAYMENT_SUCCEEDED, event_id, now, payment, request_id)
    if payment.status is PaymentStatus.FAILED:
        return PaymentEvent(EventType.PAYMENT_FAILED, event_id, now, payment, request_id)
    raise ValueError(f"payment {payment.payment_id} is still {payment.status}")


@dataclass(frozen=True, slots=True)
class RefundEvent:
    """One refund's event for the outbox, keyed by the orderId like its payment's.
    ``payment`` is the payment as the refund left it (its refunded amount included)."""

    type: EventType
    event_id: str
    occurred_at: datetime
    refund: Refund
    payment: Payment
    request_id: str | None = None

    @property
    def key(self) -> str:
        return self.refund.order_id


def refund_event_for(
    refund: Refund, payment: Payment, event_id: str, now: datetime, request_id: str | None = None
) -> RefundEvent:
    """The event a settled refund of ``payment`` (as it stood before) produces."""
    after = with_refund(payment, refund)
    if refund.status is RefundStatus.SUCCEEDED:
        return RefundEvent(EventType.REFUND_SUCCEEDED, event_id, now, refund, after, request_id)
    if refund.status is RefundStatus.FAILED:
        return RefundEvent(EventType.REFUND_FAILED, event_id, now, refund, after, request_id)
    raise ValueError(f"refund {refund.refund_id} is still {refund.status}")
