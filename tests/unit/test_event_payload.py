"""The event payload consumers read (raypay.adapters.event_payload): its fields, and that
every event the code emits validates against its checked-in JSON Schema."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from raypay.adapters.event_payload import SCHEMA_VERSION, encode, sequenced
from raypay.adapters.gateway_sim import ABANDONED, DECLINES, REFUND_DECLINED
from raypay.domain.events import EventType, PaymentEvent, RefundEvent, event_for, refund_event_for
from raypay.domain.model import Payment, PaymentRequest
from raypay.domain.money import Money
from raypay.domain.refunds import Refund, RefundReason, RefundRequest

pytestmark = pytest.mark.unit

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "events"
USD_25 = Money(2500, "USD")
USD_10 = Money(1000, "USD")
NOW = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)
PAYMENT_FIELDS = (
    "paymentId orderId customerId reservationId amount currency paymentMethod status "
    "transactionId errorCode errorMessage createdAt processedAt isSimulated"
).split()


def schema_of(event_type: EventType, version: int = SCHEMA_VERSION) -> dict:
    return json.loads((SCHEMAS / f"{event_type.value}.v{version}.json").read_text())


def a_payment(amount: Money = USD_25, reservation: str | None = "res_1") -> Payment:
    request = PaymentRequest("ord_1", "cus_1", amount, "pm_card_visa", reservation)
    return Payment.start(request, "pay_1", NOW)


def validate(event: PaymentEvent | RefundEvent, sequence: int = 1) -> dict:
    """The payload as the outbox step leaves it (numbered), checked against its schema."""
    payload = json.loads(sequenced(encode(event), sequence))
    jsonschema.validate(payload, schema_of(event.type))
    return payload


def test_there_is_one_schema_per_event_type_and_version():
    # Earlier versions stay: consumers that still read them keep their contract.
    versions = range(1, SCHEMA_VERSION + 1)
    names = sorted(path.name for path in SCHEMAS.glob("*.json"))
    assert names == sorted(f"{t.value}.v{v}.json" for t in EventType for v in versions)
    for event_type in EventType:
        for version in versions:
            schema = schema_of(event_type, version)
            jsonschema.Draft202012Validator.check_schema(schema)
            assert schema["properties"]["schemaVersion"] == {"const": version}


def test_version_2_is_version_1_and_the_sequence():
    for event_type in EventType:
        v1, v2 = schema_of(event_type, 1), schema_of(event_type, 2)
        assert v2["required"] == [*v1["required"], "sequence"]
        added = {k: v for k, v in v2["properties"].items() if v1["properties"].get(k) != v}
        assert set(added) == {"schemaVersion", "sequence"}
        assert added["sequence"]["type"] == "integer" and added["sequence"]["minimum"] == 1


def test_the_sequence_is_added_last_to_the_encoded_payload():
    paid = a_payment().succeed("txn_1", NOW, simulated=True)
    text = encode(event_for(paid, "evt_1", NOW))
    assert "sequence" not in json.loads(text)
    numbered = sequenced(text, 7)
    assert numbered.endswith(',"sequence":7}') and json.loads(numbered)["sequence"] == 7


def test_the_schema_refuses_an_event_without_a_sequence_or_a_sequence_below_1():
    paid = a_payment().succeed("txn_1", NOW, simulated=True)
    payload = json.loads(sequenced(encode(event_for(paid, "evt_1", NOW)), 1))
    schema = schema_of(EventType.PAYMENT_SUCCEEDED)
    for broken in (
        {k: v for k, v in payload.items() if k != "sequence"},
        {**payload, "sequence": 0},
        {**payload, "sequence": "1"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_a_succeeded_event_has_the_payment_and_the_event_fields():
    paid = a_payment().succeed("txn_1", NOW, simulated=True)
    payload = validate(event_for(paid, "evt_1", NOW + timedelta(seconds=1)))
    assert payload == {
        "eventType": "payment-succeeded",
        "eventId": "evt_1",
        "occurredAt": "2026-03-14T15:09:27.535Z",
        "schemaVersion": 2,
        "paymentId": "pay_1",
        "orderId": "ord_1",
        "customerId": "cus_1",
        "reservationId": "res_1",
        "amount": "25.00",
        "currency": "USD",
        "paymentMethod": "pm_card_visa",
        "status": "succeeded",
        "transactionId": "txn_1",
        "errorCode": None,
        "errorMessage": None,
        "createdAt": "2026-03-14T15:09:26.535Z",
        "processedAt": "2026-03-14T15:09:26.535Z",
        "isSimulated": True,
        "sequence": 1,
    }


@pytest.mark.parametrize(
    ("code", "message"),
    [*DECLINES.values(), (ABANDONED.decline_code, ABANDONED.message)],
)
def test_every_failed_event_the_simulator_can_cause_validates(code, message):
    failed = a_payment().fail(code, message, NOW)
    payload = validate(event_for(failed, "evt_2", NOW))
    assert (payload["eventType"], payload["status"]) == ("payment-failed", "failed")
    assert payload["failureReason"] == payload["errorCode"] == code
    assert payload["attemptedAt"] == payload["processedAt"] == "2026-03-14T15:09:26.535Z"
    assert set(PAYMENT_FIELDS) <= set(payload)


@pytest.mark.parametrize(
    ("amount", "text"),
    [(Money(1500, "JPY"), "1500"), (Money(1230, "KWD"), "1.230"), (Money(1, "USD"), "0.01")],
)
def test_amounts_are_decimal_strings_with_the_currency_decimals(amount, text):
    paid = a_payment(amount, reservation=None).succeed("txn_1", NOW, simulated=False)
    payload = validate(event_for(paid, "evt_3", NOW))
    assert (payload["amount"], payload["currency"]) == (text, amount.currency)
    assert (payload["reservationId"], payload["isSimulated"]) == (None, False)


def test_the_schema_refuses_what_the_contract_does_not_say():
    paid = a_payment().succeed("txn_1", NOW, simulated=True)
    payload = json.loads(sequenced(encode(event_for(paid, "evt_4", NOW)), 1))
    schema = schema_of(EventType.PAYMENT_SUCCEEDED)
    for broken in (
        {**payload, "amount": 25.0},
        {**payload, "status": "failed"},
        {**payload, "extra": 1},
        {k: v for k, v in payload.items() if k != "eventId"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_the_request_id_is_a_header_not_part_of_the_payload():
    paid = a_payment().succeed("txn_1", NOW, simulated=True)
    assert "req-9" not in encode(event_for(paid, "evt_5", NOW, request_id="req-9"))


def a_refund(payment: Payment, amount: Money = USD_10) -> Refund:
    request = RefundRequest(payment.payment_id, RefundReason.EVENT_CANCELLED, metadata={"e": "1"})
    return Refund.start(request, payment, "re_1", amount, NOW)


def test_a_refund_succeeded_event_has_the_refund_and_the_payment_as_it_left_it():
    paid = a_payment().succeed("txn_1", NOW, simulated=True)
    refund = a_refund(paid).succeed("gre_1", NOW + timedelta(seconds=2))
    event = refund_event_for(refund, paid, "evt_9", NOW + timedelta(seconds=3), "req-1")
    payload = validate(event)
    assert payload == {
        "eventType": "refund-succeeded",
        "eventId": "evt_9",
        "occurredAt": "2026-03-14T15:09:29.535Z",
        "schemaVersion": 2,
        "refundId": "re_1",
        "paymentId": "pay_1",
        "orderId": "ord_1",
        "customerId": "cus_1",
        "amount": "10.00",
        "currency": "USD",
        "reason": "event_cancelled",
        "status": "succeeded",
        "gatewayRefundId": "gre_1",
        "errorCode": None,
        "errorMessage": None,
        "metadata": {"e": "1"},
        "createdAt": "2026-03-14T15:09:26.535Z",
        "processedAt": "2026-03-14T15:09:28.535Z",
        "transactionId": "txn_1",
        "paymentAmount": "25.00",
        "paymentAmountRefunded": "10.00",
        "paymentRefunded": False,
        "sequence": 1,
    }
    assert event.key == "ord_1" and "req-1" not in encode(event)


def test_the_refund_that_completes_the_payment_says_it_is_refunded():
    paid = a_payment().succeed("txn_1", NOW, simulated=True)
    first = a_refund(paid, Money(1000, "USD")).succeed("gre_1", NOW)
    after_first = replace(paid, amount_refunded_minor=1000)
    rest = replace(a_refund(paid, Money(1500, "USD")), refund_id="re_2").succeed("gre_2", NOW)
    assert validate(refund_event_for(first, paid, "evt_1", NOW))["paymentRefunded"] is False
    payload = validate(refund_event_for(rest, after_first, "evt_2", NOW))
    assert (payload["paymentAmountRefunded"], payload["paymentRefunded"]) == ("25.00", True)


@pytest.mark.parametrize(
    ("code", "message"),
    [(REFUND_DECLINED.decline_code, REFUND_DECLINED.message), ("charge_not_found", "none")],
)
def test_every_failed_refund_the_simulator_can_cause_validates(code, message):
    paid = a_payment().succeed("txn_1", NOW, simulated=True)
    failed = a_refund(paid).fail(code, message, NOW)
    payload = validate(refund_event_for(failed, paid, "evt_3", NOW))
    assert (payload["eventType"], payload["status"], payload["errorCode"]) == (
        "refund-failed", "failed", code,
    )  # fmt: skip
    assert payload["paymentAmountRefunded"] == "0.00" and payload["gatewayRefundId"] is None


def test_the_refund_schemas_refuse_what_the_contract_does_not_say():
    paid = a_payment().succeed("txn_1", NOW, simulated=True)
    event = refund_event_for(a_refund(paid).succeed("gre_1", NOW), paid, "e", NOW)
    payload = json.loads(sequenced(encode(event), 2))
    schema = schema_of(EventType.REFUND_SUCCEEDED)
    for broken in (
        {**payload, "reason": "because"},
        {**payload, "amount": 10.0},
        {**payload, "metadata": {"n": 1}},
        {**payload, "extra": 1},
        {k: v for k, v in payload.items() if k != "paymentRefunded"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
