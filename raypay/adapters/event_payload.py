"""The event payload consumers read on Kafka: versioned JSON, camelCase.

This is the event contract, owned here: one JSON Schema per event type in
``schemas/events/<type>.v<SCHEMA_VERSION>.json`` (tests check every event the code
emits against it). It is written apart from the storage record and the HTTP object on
purpose: changing either of those never changes what consumers read. A change that
is not backward compatible gets a new ``schemaVersion`` and a new schema file.
"""

from __future__ import annotations

import json
from typing import Any

from raypay.domain.events import EventType, PaymentEvent
from raypay.domain.model import iso

SCHEMA_VERSION = 1


def to_payload(event: PaymentEvent) -> dict[str, Any]:
    """The JSON object of one event."""
    payment = event.payment
    processed_at = iso(payment.processed_at) if payment.processed_at else None
    value: dict[str, Any] = {
        "eventType": event.type.value,
        "eventId": event.event_id,
        "occurredAt": iso(event.occurred_at),
        "schemaVersion": SCHEMA_VERSION,
        "paymentId": payment.payment_id,
        "orderId": payment.order_id,
        "customerId": payment.customer_id,
        "reservationId": payment.reservation_id,
        "amount": str(payment.amount),
        "currency": payment.amount.currency,
        "paymentMethod": payment.payment_method,
        "status": payment.status.value,
        "transactionId": payment.transaction_id,
        "errorCode": payment.error_code,
        "errorMessage": payment.error_message,
        "createdAt": iso(payment.created_at),
        "processedAt": processed_at,
        "isSimulated": payment.is_simulated,
    }
    if event.type is EventType.PAYMENT_FAILED:
        value["failureReason"] = payment.error_code
        value["attemptedAt"] = processed_at
    return value


def encode(event: PaymentEvent) -> str:
    """The payload as compact JSON text, as the outbox keeps it and Kafka carries it."""
    return json.dumps(to_payload(event), separators=(",", ":"))
