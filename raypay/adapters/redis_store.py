"""Redis adapters: orders and reservations (written upstream), payments and the outbox.

Keys (prefix ``raypay`` by default; the README documents the upstream formats):

    {p}:order:{orderId}              HASH customerId, amountMinor, currency, status
    {p}:reservation:{id}             HASH orderId, customerId, status, expiresAt (ISO 8601)
    {p}:payment:{paymentId}          HASH the payment (camelCase fields, amountMinor)
    {p}:order:{orderId}:payments     LIST paymentIds, oldest first
    {p}:order:{orderId}:succeeded    STRING the succeeded paymentId
    {p}:order:{orderId}:pending      STRING the pending paymentId
    {p}:pending                      ZSET   pending paymentIds by createdAt (ms), for the sweep
    {p}:outbox                       STREAM events waiting for Kafka (eventId, kind, key,
                                            value, requestId)
    {p}:idem:{key}                   STRING stored reply of an Idempotency-Key (expires)

Every write step is one Lua script, so it is atomic and one round trip.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from raypay.adapters.pipelining import PipelinedRedis
from raypay.domain.errors import StoreUnavailable
from raypay.domain.events import Event
from raypay.domain.idempotency import Reply
from raypay.domain.model import Order, Payment, PaymentStatus, Reservation
from raypay.domain.money import Money
from raypay.domain.ports import Begun

_BEGIN = """
local done = redis.call('GET', KEYS[1])
if done then return {'succeeded', done} end
local pending = redis.call('GET', KEYS[2])
if pending then return {'pending', pending} end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], unpack(ARGV, 3))
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
return {'created', ARGV[1]}
"""

# Settling twice is a no-op: one recorded outcome, one event.
_SETTLE = """
local current = redis.call('HGET', KEYS[1], 'status')
if current ~= 'pending' then return current or 'missing' end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if ARGV[2] == 'succeeded' then redis.call('SET', KEYS[3], ARGV[1]) end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('XADD', KEYS[5], '*', 'eventId', ARGV[6], 'kind', ARGV[3], 'key', ARGV[4],
           'value', ARGV[5], 'requestId', ARGV[7])
return 'settled'
"""


def connect(url: str, timeout_s: float, pipelined: bool = False) -> aioredis.Redis:
    """An asyncio client whose every call fails within about ``timeout_s``.

    ``pipelined``: concurrent single commands share round trips (adapters/pipelining.py).
    """
    client_class = PipelinedRedis if pipelined else aioredis.Redis
    return client_class.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=0,
        max_connections=256,
    )


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Redis trouble becomes StoreUnavailable (503, retriable)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
    except RedisError as exc:
        raise StoreUnavailable(f"Redis error: {type(exc).__name__}") from exc


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.pending_index = f"{prefix}:pending"
        self.outbox = f"{prefix}:outbox"

    def order(self, order_id: str) -> str:
        return f"{self.prefix}:order:{order_id}"

    def reservation(self, reservation_id: str) -> str:
        return f"{self.prefix}:reservation:{reservation_id}"

    def payment(self, payment_id: str) -> str:
        return f"{self.prefix}:payment:{payment_id}"

    def order_payments(self, order_id: str) -> str:
        return f"{self.prefix}:order:{order_id}:payments"

    def succeeded(self, order_id: str) -> str:
        return f"{self.prefix}:order:{order_id}:succeeded"

    def pending(self, order_id: str) -> str:
        return f"{self.prefix}:order:{order_id}:pending"


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class RedisOrders:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys

    async def get(self, order_id: str) -> Order | None:
        async with translated():
            fields = await self.redis.hgetall(self.keys.order(order_id))
        if not fields:
            return None
        total = Money(int(fields["amountMinor"]), fields["currency"])
        return Order(order_id, fields["customerId"], total, fields["status"])


class RedisReservations:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys

    async def get(self, reservation_id: str) -> Reservation | None:
        async with translated():
            fields = await self.redis.hgetall(self.keys.reservation(reservation_id))
        if not fields:
            return None
        expires_at = parse_time(fields["expiresAt"])
        assert expires_at is not None
        return Reservation(
            reservation_id, fields["orderId"], fields["customerId"], fields["status"], expires_at
        )


def payment_fields(payment: Payment) -> dict[str, str]:
    api = payment.to_api()
    api.pop("amount")
    api["amountMinor"] = str(payment.amount.minor)
    api["isSimulated"] = "1" if payment.is_simulated else "0"
    return {name: "" if value is None else str(value) for name, value in api.items()}


def payment_from(fields: dict[str, str]) -> Payment:
    def opt(name: str) -> str | None:
        return fields.get(name) or None

    created_at = parse_time(fields["createdAt"])
    assert created_at is not None
    return Payment(
        payment_id=fields["paymentId"],
        order_id=fields["orderId"],
        customer_id=fields["customerId"],
        reservation_id=opt("reservationId"),
        amount=Money(int(fields["amountMinor"]), fields["currency"]),
        payment_method=fields["paymentMethod"],
        status=PaymentStatus(fields["status"]),
        created_at=created_at,
        transaction_id=opt("transactionId"),
        error_code=opt("errorCode"),
        error_message=opt("errorMessage"),
        processed_at=parse_time(opt("processedAt")),
        is_simulated=fields.get("isSimulated") == "1",
    )


def flat(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


class RedisPayments:
    """Payments, the per-order guards and the transactional outbox."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys
        self._begin = redis.register_script(_BEGIN)
        self._settle = redis.register_script(_SETTLE)

    async def get(self, payment_id: str) -> Payment | None:
        async with translated():
            fields = await self.redis.hgetall(self.keys.payment(payment_id))
        return payment_from(fields) if fields else None

    async def succeeded_for(self, order_id: str) -> Payment | None:
        async with translated():
            payment_id = await self.redis.get(self.keys.succeeded(order_id))
        return await self.get(payment_id) if payment_id else None

    async def begin(self, payment: Payment) -> Begun:
        keys = self.keys
        created_ms = int(payment.created_at.timestamp() * 1000)
        async with translated():
            outcome, payment_id = await self._begin(
                keys=[
                    keys.succeeded(payment.order_id),
                    keys.pending(payment.order_id),
                    keys.payment(payment.payment_id),
                    keys.order_payments(payment.order_id),
                    keys.pending_index,
                ],
                args=[payment.payment_id, created_ms, *flat(payment_fields(payment))],
            )
        if outcome == "created":
            return Begun(payment, created=True)
        existing = await self.get(payment_id)
        if existing is None:
            raise StoreUnavailable(f"payment {payment_id} is indexed but missing")
        return Begun(existing, created=False)

    async def settle(self, payment: Payment, event: Event) -> Payment:
        keys = self.keys
        async with translated():
            outcome = await self._settle(
                keys=[
                    keys.payment(payment.payment_id),
                    keys.pending(payment.order_id),
                    keys.succeeded(payment.order_id),
                    keys.pending_index,
                    keys.outbox,
                ],
                args=[
                    payment.payment_id,
                    payment.status.value,
                    event.kind,
                    event.key,
                    json.dumps(event.value, separators=(",", ":")),
                    event.value["eventId"],
                    event.request_id or "",
                    *flat(payment_fields(payment)),
                ],
            )
        if outcome == "settled":
            return payment
        stored = await self.get(payment.payment_id)
        if stored is None:
            raise StoreUnavailable(f"payment {payment.payment_id} vanished while settling")
        return stored

    async def list_for_order(self, order_id: str) -> list[Payment]:
        async with translated():
            ids = await self.redis.lrange(self.keys.order_payments(order_id), 0, -1)
            if not ids:
                return []
            async with self.redis.pipeline(transaction=False) as pipe:
                for payment_id in ids:
                    pipe.hgetall(self.keys.payment(payment_id))
                rows = await pipe.execute()
        return [payment_from(fields) for fields in rows if fields]

    async def pending_older_than(self, cutoff: datetime, limit: int = 100) -> list[Payment]:
        """Pending payments created before ``cutoff``, oldest first (for the sweep)."""
        async with translated():
            ids = await self.redis.zrangebyscore(
                self.keys.pending_index, "-inf", int(cutoff.timestamp() * 1000), 0, limit
            )
        found = [await self.get(payment_id) for payment_id in ids]
        return [p for p in found if p is not None and p.status is PaymentStatus.PENDING]


class RedisReplies:
    """Idempotency-Key replies: ``{p}:idem:{key}`` JSON, first write wins, with a TTL."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl_s: int) -> None:
        self.redis, self.prefix, self.ttl_s = redis, keys.prefix, ttl_s

    async def get(self, key: str) -> Reply | None:
        async with translated():
            raw = await self.redis.get(f"{self.prefix}:idem:{key}")
        if raw is None:
            return None
        data = json.loads(raw)
        return Reply(data["status"], data["body"], fingerprint=data["fingerprint"])

    async def put(self, key: str, reply: Reply) -> None:
        data = {"status": reply.status, "body": reply.body, "fingerprint": reply.fingerprint}
        async with translated():
            await self.redis.set(
                f"{self.prefix}:idem:{key}", json.dumps(data), ex=self.ttl_s, nx=True
            )
