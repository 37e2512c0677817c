"""The outcomes stored for Idempotency-Keys, in Redis."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from raypay.adapters.keys import Keys
from raypay.adapters.records import from_record, refund_from_record, refund_record, to_record
from raypay.adapters.redis_client import translated
from raypay.domain.errors import (
    PaymentDeclined,
    RefundDeclined,
    ReservationExpiredDuringPayment,
    error_classes,
)
from raypay.domain.model import Payment
from raypay.domain.money import Money
from raypay.domain.outcomes import Outcome
from raypay.domain.refunds import Refund


class RedisIdempotency:
    """Outcomes by Idempotency-Key: ``{p}:idem:{key}`` JSON, first write wins, with a TTL.

    A record is ``{"fingerprint", "payment": <payment record> | null, "replayed",
    "error": {"type", "detail", "extra", "declineCode"} | null, "refund": <refund record>
    | null}`` (no ``refund`` in records written before refunds). Records written before
    this format (``{"status", "body", "fingerprint"}``, the HTTP answer) are still read:
    they expire with the TTL (24 h by default).
    """

    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl_s: int) -> None:
        self.redis, self.keys, self.ttl_s = redis, keys, ttl_s

    async def get(self, key: str) -> tuple[str, Outcome] | None:
        async with translated():
            raw = await self.redis.get(self.keys.idempotency(key))
        if raw is None:
            return None
        data = json.loads(raw)
        if "body" in data:
            return data["fingerprint"], legacy_outcome(data["status"], data["body"])
        payment = from_record(data["payment"]) if data["payment"] else None
        refund = refund_from_record(data["refund"]) if data.get("refund") else None
        error = data["error"]
        if error is None:
            return data["fingerprint"], Outcome(payment, replayed=data["replayed"], refund=refund)
        error = stored_error(error, payment, refund)
        return data["fingerprint"], Outcome(payment, error=error, refund=refund)

    async def put(self, key: str, fingerprint: str, outcome: Outcome) -> None:
        error = outcome.error
        data = {
            "fingerprint": fingerprint,
            "payment": to_record(outcome.payment) if outcome.payment else None,
            "refund": refund_record(outcome.refund) if outcome.refund else None,
            "replayed": outcome.replayed,
            "error": None
            if error is None
            else {
                "type": type(error).__name__,
                "detail": error.detail,
                "extra": error.extra,
                "declineCode": getattr(error, "decline_code", None),
            },
        }
        async with translated():
            await self.redis.set(
                self.keys.idempotency(key), json.dumps(data), ex=self.ttl_s, nx=True
            )


def stored_error(
    error: dict[str, Any], payment: Payment | None, refund: Refund | None = None
) -> Any:
    """The refusal a stored outcome names, made again."""
    kind = next(cls for cls in error_classes() if cls.__name__ == error["type"])
    if issubclass(kind, PaymentDeclined):
        return kind(error["detail"], payment, decline_code=error["declineCode"] or "")
    if issubclass(kind, RefundDeclined):
        return kind(error["detail"], refund)
    if issubclass(kind, ReservationExpiredDuringPayment):
        return kind(error["detail"], payment, refund)
    return kind(error["detail"], error["extra"] or None)


def legacy_outcome(status: int, body: dict[str, Any]) -> Outcome:
    """An outcome stored in the earlier format, as the HTTP answer it was."""
    if status < 300:
        return Outcome(api_payment(body), replayed=status == 200)
    if status == 402:
        payment = api_payment(body["payment"])
        error = PaymentDeclined(body["detail"], payment, decline_code=body["code"])
        return Outcome(payment, error=error)
    known = {"status", "type", "title", "detail", "code"}
    extra = {name: value for name, value in body.items() if name not in known}
    kind = next(cls for cls in error_classes() if cls.code == body["code"])
    return Outcome(error=kind(body["detail"], extra or None))


def api_payment(body: dict[str, Any]) -> Payment:
    """A payment from the earlier stored HTTP payment object (decimal ``amount``)."""
    money = Money.parse(body["amount"], body["currency"])
    fields = {name: "" if value is None else str(value) for name, value in body.items()}
    fields |= {"amountMinor": str(money.minor), "isSimulated": "1" if body["isSimulated"] else "0"}
    return from_record(fields)
