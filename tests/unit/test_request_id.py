"""The request id: metadata that follows a payment to the gateway and into its event,
without changing what the request is."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from raypay.adapters.event_payload import to_payload
from raypay.adapters.kafka_sink import OutgoingEvent, headers_of
from raypay.adapters.outbox import OutboxRelay
from raypay.adapters.redis_store import RedisPayments
from raypay.domain.events import event_for
from raypay.domain.idempotency import fingerprint
from raypay.domain.model import Payment, PaymentRequest
from raypay.domain.money import Money
from raypay.domain.workflow import pay

from .fakes import a_checkout, a_request
from .test_outbox import FakeSink

pytestmark = pytest.mark.unit


def test_two_requests_that_differ_only_in_request_id_are_the_same_request():
    first, retry = a_request(request_id="req-1"), a_request(request_id="req-2")
    assert first == retry
    assert fingerprint(first) == fingerprint(retry)


async def test_the_gateway_call_and_the_event_carry_the_request_id():
    world = a_checkout()
    await pay(a_request(request_id="req-42"), world.deps)

    (call,) = world.gateway.calls
    (event,) = world.payments.outbox
    assert call.request_id == event.request_id == "req-42"
    assert "req-42" not in json.dumps(to_payload(event))  # a header, not part of the event


async def test_the_request_id_goes_from_the_outbox_into_the_message_headers(redis, keys):
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    request = PaymentRequest("ord_1", "cus_1", Money(4000, "USD"), "pm_card_visa")
    payments = RedisPayments(redis, keys)
    payment = Payment.start(request, "pay_1", now)
    await payments.begin(payment)
    paid = payment.succeed("txn_1", now, simulated=True)
    await payments.settle(paid, event_for(paid, "evt_1", now, request_id="req-7"))
    sink = FakeSink()
    relay = OutboxRelay(redis, keys, sink)
    await relay.ensure_group()

    await relay.relay_once(block_ms=10)

    ((sent,),) = sink.batches
    assert sent.request_id == "req-7"
    assert dict(headers_of(sent)) == {
        "content-type": b"application/json",
        "eventId": b"evt_1",
        "requestId": b"req-7",
    }


def test_an_event_without_a_request_id_has_no_request_id_header():
    event = OutgoingEvent("evt_1", "payment-succeeded", "ord_1", b"{}")
    assert "requestId" not in dict(headers_of(event))
