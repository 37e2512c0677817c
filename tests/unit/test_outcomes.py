"""How a payment request ended, as metrics and logs name it (``replies.outcome_of``)."""

from __future__ import annotations

import pytest

from raypay.domain.errors import (
    GatewayUnavailable,
    IdempotencyKeyReused,
    OrderNotFound,
    PaymentDeclined,
    RateLimited,
    ShardUnavailable,
    StoreUnavailable,
    problem,
)
from raypay.domain.idempotency import Reply, outcome_of

pytestmark = pytest.mark.unit

PAYMENT = {"paymentId": "pay_1", "status": "succeeded"}


def rejected(status: int, code: str) -> Reply:
    return Reply(status, problem(status, code, "Rejected", "rejected"))


def declined(code: str) -> dict:
    return problem(402, code, "Payment declined", "declined", payment={"paymentId": "pay_2"})


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Reply(201, PAYMENT), ("succeeded", "")),
        (Reply(200, PAYMENT, replayed=True), ("replayed", "")),
        (Reply(402, declined("insufficient_funds")), ("declined", "insufficient_funds")),
        (Reply(402, declined("card_declined"), replayed=True), ("replayed", "card_declined")),
        (rejected(404, "order_not_found"), ("rejected", "order_not_found")),
        (rejected(409, "order_not_payable"), ("rejected", "order_not_payable")),
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
def test_outcome_and_code(answer, expected):
    assert outcome_of(answer) == expected
