"""The events raypay publishes: ``payment-succeeded`` and ``payment-failed``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from raypay.domain.model import Payment, PaymentStatus, iso

SCHEMA_VERSION = 1
SUCCEEDED = "payment-succeeded"
FAILED = "payment-failed"


@dataclass(frozen=True, slots=True)
class Event:
    """One event for the outbox. ``kind`` picks the topic; ``key`` is the orderId;
    ``request_id`` (the request that settled the payment) travels as a message header."""

    kind: str
    key: str
    value: dict[str, Any]
    request_id: str | None = None


def event_for(
    payment: Payment, event_id: str, now: datetime, request_id: str | None = None
) -> Event:
    """The event a settled payment produces."""
    fields = payment.to_api()
    common = {
        "eventId": event_id,
        "occurredAt": iso(now),
        "schemaVersion": SCHEMA_VERSION,
    }
    if payment.status is PaymentStatus.SUCCEEDED:
        value = {"eventType": SUCCEEDED, **common, **fields}
        return Event(SUCCEEDED, payment.order_id, value, request_id)
    if payment.status is PaymentStatus.FAILED:
        value = {
            "eventType": FAILED,
            **common,
            **fields,
            "failureReason": payment.error_code,
            "attemptedAt": fields["processedAt"],
        }
        return Event(FAILED, payment.order_id, value, request_id)
    raise ValueError(f"payment {payment.payment_id} is still {payment.status}")
