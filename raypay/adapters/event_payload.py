"""The event payload consumers read on Kafka: versioned JSON, camelCase.

This is the event contract, owned here: one JSON Schema per event type in
``schemas/events/<type>.v<SCHEMA_VERSION>.json`` (tests check every event the code
emits against it). It is written apart from the storage record and the HTTP object on
purpose: changing either of those never changes what consumers read. A change that
is not backward compatible gets a new ``schemaVersion`` and a new schema file.

Version 2 added ``sequence``: the event's place among all events of its order (payments'
and refunds' alike, from 1), so a consumer can drop an event older than one it already
applied. Only the outbox's Lua step can number events atomically with writing them, so
:func:`encode` makes the payload without it and that step adds it (:func:`sequence_lua`, the
same as :func:`sequenced`).
"""

from __future__ import annotations

import json
from typing import Any

from raypay.domain.events import EventType, PaymentEvent, RefundEvent
from raypay.domain.model import iso

SCHEMA_VERSION = 2


def sequence_lua(value: str, seq_key: str) -> str:
    """The Lua that numbers an event inside the script that queues it: the order's
    counter (keys.py ``order:{orderId}:seq``) goes up by one and the payload gets it as
    its last field. ``value`` and ``seq_key`` are Lua expressions; it defines
    ``value_seq``."""
    return (
        f"local value_seq = string.sub({value}, 1, -2) .. ',\"sequence\":' ..\n"
        f"                  redis.call('INCR', {seq_key}) .. '}}'"
    )


def to_payload(event: PaymentEvent | RefundEvent) -> dict[str, Any]:
    """The JSON object of one event."""
    if isinstance(event, RefundEvent):
        return refund_payload(event)
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


def refund_payload(event: RefundEvent) -> dict[str, Any]:
    """A refund event: the refund, and its payment as the refund left it (a consumer that
    voids a ticket on a full refund reads ``paymentRefunded``)."""
    refund, payment = event.refund, event.payment
    return {
        "eventType": event.type.value,
        "eventId": event.event_id,
        "occurredAt": iso(event.occurred_at),
        "schemaVersion": SCHEMA_VERSION,
        "refundId": refund.refund_id,
        "paymentId": refund.payment_id,
        "orderId": refund.order_id,
        "customerId": refund.customer_id,
        "amount": str(refund.amount),
        "currency": refund.amount.currency,
        "reason": refund.reason.value,
        "status": refund.status.value,
        "gatewayRefundId": refund.gateway_refund_id,
        "errorCode": refund.error_code,
        "errorMessage": refund.error_message,
        "metadata": dict(refund.metadata),
        "createdAt": iso(refund.created_at),
        "processedAt": iso(refund.processed_at) if refund.processed_at else None,
        "transactionId": payment.transaction_id,
        "paymentAmount": str(payment.amount),
        "paymentAmountRefunded": str(payment.amount_refunded),
        "paymentRefunded": payment.refunded,
    }


def encode(event: PaymentEvent | RefundEvent) -> str:
    """The payload as compact JSON text, without its ``sequence``: the outbox step adds
    it (:func:`sequence_lua`) and the outbox keeps, and Kafka carries, the result."""
    return json.dumps(to_payload(event), separators=(",", ":"))


def outbox_args(event: PaymentEvent | RefundEvent) -> list[str]:
    """The event's part of a settle script's ARGV, the same for payments and refunds:
    kind, key, value (:func:`encode`), eventId, requestId (or "")."""
    return [event.type.value, event.key, encode(event), event.event_id, event.request_id or ""]


def sequenced(text: str, sequence: int) -> str:
    """What :func:`sequence_lua` makes of :func:`encode`'s text: ``sequence`` added last."""
    return f'{text[:-1]},"sequence":{sequence}}}'
