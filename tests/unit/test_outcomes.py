"""How a payment request ended, as metrics and logs name it (``outcomes.classify``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from raypay.domain.errors import (
    GatewayUnavailable,
    IdempotencyKeyReused,
    OrderNotFound,
    OrderNotPayable,
    PaymentDeclined,
    RateLimited,
    ShardUnavailable,
    StoreUnavailable,
)
from raypay.domain.model import Payment, PaymentRequest
from raypay.domain.money import Money
from raypay.domain.outcomes import Outcome, classify

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, tzinfo=UTC)
PAID = Payment.start(
    PaymentRequest("ord_1", "cus_1", Money(100, "USD"), "pm_card_visa"), "pay_1", NOW
).succeed("txn_1", NOW, simulated=True)


def declined(code: str) -> PaymentDeclined:
    return PaymentDeclined("declined", PAID, decline_code=code)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (Outcome(PAID), ("succeeded", "")),
        (Outcome(PAID, replayed=True), ("replayed", "")),
        (Outcome(PAID, key_replay=True), ("replayed", "")),
        (Outcome(PAID, error=declined("insufficient_funds")), ("declined", "insufficient_funds")),
        (
            Outcome(PAID, error=declined("card_declined"), key_replay=True),
            ("replayed", "card_declined"),
        ),
        (Outcome(error=OrderNotFound("gone")), ("rejected", "order_not_found")),
        (Outcome(error=OrderNotPayable("paid")), ("rejected", "order_not_payable")),
        (IdempotencyKeyReused("reused"), ("rejected", "idempotency_key_reused")),
        (OrderNotFound("gone"), ("rejected", "order_not_found")),
        (RateLimited("slow down"), ("rejected", "rate_limited")),
        (PaymentDeclined("no", decline_code="expired_card"), ("declined", "expired_card")),
        (StoreUnavailable("redis away"), ("unavailable", "redis")),
        (GatewayUnavailable("gateway away"), ("unavailable", "gateway")),
        (ShardUnavailable("shard away"), ("unavailable", "shard")),
        (RuntimeError("bug"), ("error", "internal_error")),
    ],
)
def test_kind_and_code(result, expected):
    assert classify(result) == expected
