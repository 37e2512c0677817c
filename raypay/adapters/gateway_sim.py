"""The gateway simulator: a Gateway adapter with a durable charge ledger.

Outcomes follow well-known test tokens first, then a seeded decline rate:

    pm_card_visa, pm_card_mastercard, pm_card_amex     approved
    pm_card_chargeDeclined                             card_declined
    pm_card_chargeDeclinedInsufficientFunds            insufficient_funds
    pm_card_chargeDeclinedExpiredCard                  expired_card
    pm_card_chargeDeclinedFraudulent                   fraudulent
    pm_card_chargeDeclinedOnce  card_declined on an order's first charge, approved after
    pm_card_timeout          charged, but the answer is held past the caller's timeout
    pm_card_error            gateway error, nothing charged (retriable)
    pm_card_refundDeclined   approved; its refunds are declined (expired_or_canceled_card)
    pm_card_refundTimeout    approved; its refunds happen, but their answer is held past
                             the caller's timeout
    anything else            declined (card_declined) with probability decline_rate

Refunds of any other approved charge succeed; a refund of a charge the ledger does not
hold as approved is declined (``charge_not_found``). The ledgers (Redis, SET NX per
idempotency key: one for charges, one for refunds) make a repeated key return the first
result and survive simulator restarts, like a real gateway's idempotency store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis

from raypay.adapters.keys import Keys
from raypay.adapters.redis_client import Replicas, translated
from raypay.adapters.script_batch import BatchedScript
from raypay.domain.errors import GatewayUnavailable
from raypay.domain.ports import ChargeRequest, ChargeResult, RefundCharge, RefundResult
from raypay.domain.sharding import vshard_in, vshard_of

DECLINES = {
    "pm_card_chargeDeclined": ("card_declined", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "Your card has expired."),
    "pm_card_chargeDeclinedFraudulent": ("fraudulent", "Your card was declined."),
}
REFUND_DECLINED_TOKEN = "pm_card_refundDeclined"
REFUND_TIMEOUT_TOKEN = "pm_card_refundTimeout"
ALWAYS_APPROVED = frozenset(
    {
        "pm_card_visa",
        "pm_card_mastercard",
        "pm_card_amex",
        REFUND_DECLINED_TOKEN,
        REFUND_TIMEOUT_TOKEN,
    }
)
DECLINED_ONCE_TOKEN = "pm_card_chargeDeclinedOnce"
TIMEOUT_TOKEN = "pm_card_timeout"
ERROR_TOKEN = "pm_card_error"
REFUND_DECLINED = RefundResult(
    succeeded=False,
    decline_code="expired_or_canceled_card",
    message="The card the charge was made on is closed: the refund was declined.",
)
ABANDONED = ChargeResult(
    approved=False,
    decline_code="abandoned",
    message="The payment attempt was interrupted before the gateway charged it",
)


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    decline_rate: float = 0.0
    seed: int = 42
    timeout_hold_s: float = 30.0


Result = TypeVar("Result", ChargeResult, RefundResult)


class Ledger(Protocol[Result]):
    """One result per idempotency key: charges (ChargeResult) or refunds (RefundResult)."""

    async def get(self, key: str) -> Result | None: ...

    async def count(self, reference: str) -> int:
        """Attempts recorded for a reference (an orderId)."""

    async def record(
        self, key: str, result: Result, reference: str, counted: bool = True
    ) -> Result:
        """Store ``result`` for ``key`` unless one is stored; return the stored one.
        ``counted`` says whether it was an attempt (a void is not)."""


ChargeLedger = Ledger[ChargeResult]
RefundLedger = Ledger[RefundResult]


_RECORD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  if ARGV[3] == '1' then
    redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
    redis.call('INCR', KEYS[3])
  end
  return ARGV[1]
end
return redis.call('GET', KEYS[1])
"""


class RedisChargeLedger:
    """``Keys.charge`` holds each result; ``Keys.charge_counts`` counts charges per
    reference (orderId) and ``Keys.charge_total`` in all, per vshard: the one the
    idempotency key (a paymentId) carries, which is its order's. Recording is a durable
    step (a real gateway does not forget a charge)."""

    result_type: type = ChargeResult

    def __init__(self, redis: aioredis.Redis, keys: Keys, replicas: Replicas | None = None):
        self.redis = redis
        # One EVALSHA per loop turn and hash slot.
        self._record = BatchedScript(redis, _RECORD, replicas=replicas)
        self.key_of, self.counts, self.total = keys.charge, keys.charge_counts, keys.charge_total

    async def get(self, key: str) -> Any:
        async with translated():
            raw = await self.redis.get(self.key_of(key))
        return self.result_type(**json.loads(raw)) if raw else None

    async def count(self, reference: str) -> int:
        async with translated():
            return int(await self.redis.hget(self.counts(vshard_of(reference)), reference) or 0)

    async def record(self, key: str, result: Any, reference: str, counted: bool = True) -> Any:
        # Counted per orderId beside the order (which the key's vshard is, for our ids).
        vshard = vshard_of(reference) if reference else vshard_in(key)
        async with translated():
            raw = await self._record(
                keys=[self.key_of(key), self.counts(vshard), self.total(vshard)],
                args=[json.dumps(as_record(result)), reference, "1" if counted else "0"],
            )
        return self.result_type(**json.loads(raw))


class RedisRefundLedger(RedisChargeLedger):
    """The same for refunds: ``Keys.gateway_refund`` holds each refund's result,
    ``Keys.refund_counts`` counts refunds per reference (orderId), ``Keys.refund_total``."""

    result_type = RefundResult

    def __init__(self, redis: aioredis.Redis, keys: Keys, replicas: Replicas | None = None):
        super().__init__(redis, keys, replicas)
        self.key_of, self.counts = keys.gateway_refund, keys.refund_counts
        self.total = keys.refund_total


def draws(seed: int, key: str) -> tuple[float, float, str]:
    """Two numbers in [0, 1) and 32 hex digits, fixed by the seed and the key: the
    simulator's dice (a hash, not a ``random.Random`` seeded per charge: a tenth of the
    cost, the same reproducibility)."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=32).digest()
    return (
        int.from_bytes(digest[:8], "big") / 2**64,
        int.from_bytes(digest[8:16], "big") / 2**64,
        digest[16:].hex(),
    )


def as_record(result: ChargeResult | RefundResult) -> dict[str, object]:
    """The ledger's JSON object of a result: its fields by name (what ``asdict`` gives,
    without its deep copy)."""
    return {name: getattr(result, name) for name in result.__slots__}


class GatewaySimulator:
    """A Gateway that decides like a test-mode card processor and charges once per key."""

    def __init__(
        self, ledger: ChargeLedger, config: SimulatorConfig, refunds: RefundLedger
    ) -> None:
        self.ledger, self.config, self.refunds = ledger, config, refunds

    def decide(self, request: ChargeRequest) -> ChargeResult:
        """The outcome for a request, reproducible from the seed and the key."""
        token = request.payment_method
        if token in DECLINES:
            code, message = DECLINES[token]
            return ChargeResult(approved=False, decline_code=code, message=message)
        decline, _, transaction = draws(self.config.seed, request.idempotency_key)
        if token not in ALWAYS_APPROVED and token != TIMEOUT_TOKEN:
            if decline < self.config.decline_rate:
                return ChargeResult(
                    approved=False, decline_code="card_declined", message="Your card was declined."
                )
        return ChargeResult(approved=True, transaction_id=f"txn_{transaction}")

    def latency_s(self, request: ChargeRequest | RefundCharge) -> float:
        if not self.config.jitter_ms:
            return self.config.latency_ms / 1000
        _, jitter, _ = draws(self.config.seed, request.idempotency_key)
        return (self.config.latency_ms + jitter * self.config.jitter_ms) / 1000

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        delay = self.latency_s(request)
        # A repeated key answers with its first result. Without a delay to skip or a
        # held answer to avoid, record()'s SET NX below finds it a round trip sooner.
        if delay > 0 or request.payment_method in (ERROR_TOKEN, TIMEOUT_TOKEN):
            if (earlier := await self.ledger.get(request.idempotency_key)) is not None:
                return earlier
        if request.payment_method == ERROR_TOKEN:
            raise GatewayUnavailable("simulated gateway error, nothing was charged")
        if delay > 0:
            await asyncio.sleep(delay)
        decision = self.decide(request)
        if request.payment_method == DECLINED_ONCE_TOKEN:
            if await self.ledger.count(request.reference) == 0:
                decision = ChargeResult(False, None, *DECLINES["pm_card_chargeDeclined"])
        result = await self.ledger.record(request.idempotency_key, decision, request.reference)
        if request.payment_method == TIMEOUT_TOKEN:
            # The charge happened, but its answer is lost in transit: the caller times
            # out and must settle it by retrying with the same key.
            await asyncio.sleep(self.config.timeout_hold_s)
        return result

    async def resolve_charge(self, idempotency_key: str) -> ChargeResult:
        return await self.ledger.record(idempotency_key, ABANDONED, "", counted=False)

    async def refund(self, request: RefundCharge) -> RefundResult:
        # Refunds are rare: always look for the first result of the key (a retry of a
        # held answer must not wait for its hold again).
        if (earlier := await self.refunds.get(request.idempotency_key)) is not None:
            return earlier
        if (delay := self.latency_s(request)) > 0:
            await asyncio.sleep(delay)
        charge = await self.ledger.get(request.charge_key)
        if charge is None or not charge.approved:
            decision = RefundResult(
                succeeded=False,
                decline_code="charge_not_found",
                message=f"No approved charge {request.charge_key} to refund.",
            )
        elif request.payment_method == REFUND_DECLINED_TOKEN:
            decision = REFUND_DECLINED
        else:
            _, _, refund_id = draws(self.config.seed, request.idempotency_key)
            decision = RefundResult(succeeded=True, gateway_refund_id=f"gre_{refund_id}")
        result = await self.refunds.record(
            request.idempotency_key, decision, request.reference, counted=decision.succeeded
        )
        if request.payment_method == REFUND_TIMEOUT_TOKEN:
            # Refunded, but the answer is lost in transit: the retry gets it from the ledger.
            await asyncio.sleep(self.config.timeout_hold_s)
        return result
