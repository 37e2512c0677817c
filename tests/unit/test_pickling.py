"""What crosses Ray's process boundaries pickles whole: every field, request_id included
(it is left out of equality, so a round trip compares it by hand)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest
import ray.cloudpickle

from raypay.domain.errors import PaymentDeclined
from raypay.domain.model import Order, Payment, PaymentRequest
from raypay.domain.money import Money
from raypay.domain.outcomes import Outcome
from raypay.domain.ports import ChargeRequest, ChargeResult

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, tzinfo=UTC)
REQUEST = PaymentRequest("ord_1", "cus_1", Money(2500, "USD"), "pm_card_visa", "res_1", "req-1")
PAID = Payment.start(REQUEST, "pay_1", NOW).succeed("txn_1", NOW, simulated=False)


@pytest.mark.parametrize("dumps", [pickle.dumps, ray.cloudpickle.dumps])
@pytest.mark.parametrize(
    "value",
    [
        REQUEST,
        PAID,
        Money(1, "KWD"),
        Order("ord_1", "cus_1", Money(2500, "USD"), "paid"),
        Outcome(PAID, replayed=True),
        Outcome(PAID, error=PaymentDeclined("no", PAID, decline_code="fraudulent")),
        ChargeRequest("pay_1", Money(2500, "USD"), "pm_card_visa", "ord_1", "req-1"),
        ChargeResult(False, None, "card_declined", "Declined", True),
    ],
)
def test_a_round_trip_keeps_every_field(dumps, value):
    again = pickle.loads(dumps(value))
    # repr names every field, request_id too; errors compare by identity, not by value
    assert type(again) is type(value) and repr(again) == repr(value)


def test_the_request_id_survives_although_equality_ignores_it():
    assert pickle.loads(pickle.dumps(REQUEST)).request_id == "req-1"
