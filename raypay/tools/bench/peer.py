"""The benchmark's peer: the same payment workflow and guarantees as raypay, written the
way a lean team would write it without Ray, and without any of raypay's modules.

One FastAPI app under uvicorn, a worker per core, ``redis.asyncio`` and three Lua
scripts: ``begin`` (the order paid already? the order exists, is the customer's, has
this amount; a per-customer token bucket; a pending-payment guard), the simulator's
ledger (SET NX per paymentId: a charge happens once per key, durably, as its own round
trip) and ``settle`` (the outcome and its event in one step, into an outbox stream).
It keeps raypay's key layout on one Redis (raypay/adapters/keys.py: an order's keys
under its vshard's hash tag, computed here in two lines; one outbox stream).
The worker that takes the relay lock relays the outbox to Kafka with aiokafka,
acknowledging only what the broker acknowledged. Bearer API keys are checked by SHA-256
(from ``RAYPAY_API_KEYS`` and Redis, cached 1 s); every payment writes one JSON log line
and Prometheus samples. It keeps raypay's Redis layout and event fields, so ``raypay
load``'s invariants read both the same way.

    RAYPAY_REDIS_URL=... RAYPAY_KAFKA_BOOTSTRAP_SERVERS=... RAYPAY_KEY_PREFIX=peer \\
    RAYPAY_API_KEYS=<sha256>:checkout RAYPAY_PEER_RELAY_LOCK=/tmp/peer.lock \\
    uvicorn raypay.tools.bench.peer:app --workers 2
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.
import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import random
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from redis.exceptions import RedisError

ENV = os.environ.get
P = ENV("RAYPAY_KEY_PREFIX", "peer")
VSHARDS = 256  # raypay's layout: an order's keys carry its vshard's hash tag


def vs(order_id: str) -> str:
    """``{P}:{vsN}``: the key prefix of the order's vshard."""
    digest = hashlib.blake2b(order_id.encode(), digest_size=8).digest()
    return f"{P}:{{vs{int.from_bytes(digest, 'big') % VSHARDS}}}"


OUTBOX = f"{P}:outbox"  # raypay's on one Redis (a cluster has one per vshard)
ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
EXPONENTS = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3}
DECLINED_ONCE = "pm_card_chargeDeclinedOnce"
PAYMENTS = Counter("peer_payments_total", "payments by outcome", ["outcome"])
LATENCY = Histogram("peer_payment_latency_seconds", "payment latency")
log = logging.getLogger("peer.payments")


class ORJSONResponse(Response):
    """JSON by orjson (FastAPI's own class of that name is deprecated)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


BEGIN = """
local paid = redis.call('GET', KEYS[1])
if paid then return {'paid', paid} end
local o = redis.call('HMGET', KEYS[2], 'customerId', 'amountMinor', 'currency', 'status')
if not o[1] or o[1] ~= ARGV[2] then return {'order_not_found', ''} end
if o[2] ~= ARGV[3] or o[3] ~= ARGV[4] then return {'amount_mismatch', ''} end
if o[4] ~= 'pending_payment' then return {'order_not_payable', ''} end
if ARGV[5] ~= '' then
  local r = redis.call('HMGET', KEYS[7], 'orderId', 'customerId', 'status', 'expiresAt')
  if r[1] ~= ARGV[6] or r[2] ~= ARGV[2] then return {'reservation_not_found', ''} end
  if r[3] ~= 'active' or r[4] <= ARGV[7] then return {'reservation_inactive', ''} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[6], 'tokens', 'at')
local level = (tonumber(b[1]) or 100) + math.max(0, now - (tonumber(b[2]) or now)) * 0.02
level = math.min(100, level)
if level < 1 then return {'rate_limited', ''} end
redis.call('HSET', KEYS[6], 'tokens', tostring(level - 1), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[6], 6000)
if redis.call('GET', KEYS[3]) then return {'busy', ''} end
redis.call('SET', KEYS[3], ARGV[1], 'PX', 30000)  -- a crashed attempt frees the order
redis.call('HSET', KEYS[4], unpack(ARGV, 8))
redis.call('RPUSH', KEYS[5], ARGV[1])
return {'created', ARGV[1]}
"""
CHARGE = """
local earlier = redis.call('GET', KEYS[1])
if earlier then return earlier end
local result = ARGV[2]
if ARGV[3] == '1' and tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') == 0 then
  result = ARGV[4]
end
redis.call('SET', KEYS[1], result)
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('INCR', KEYS[3])
return result
"""
SETTLE = """
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('DEL', KEYS[2])
if ARGV[1] == 'succeeded' then redis.call('SET', KEYS[3], ARGV[6]) end
redis.call('XADD', KEYS[4], '*', 'eventId', ARGV[3], 'kind', ARGV[4], 'key', ARGV[2],
           'value', ARGV[5])
return 1
"""
STATUS = {
    "order_not_found": 404, "reservation_not_found": 404, "amount_mismatch": 422,
    "order_not_payable": 409, "reservation_inactive": 409, "rate_limited": 429, "busy": 503,
    "unavailable": 503, "unauthorized": 401, "validation_error": 422,
}  # fmt: skip


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")

    order_id: str = Field(pattern=ID)
    customer_id: str = Field(pattern=ID)
    amount: Decimal
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payment_method: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    reservation_id: str | None = Field(None, pattern=ID)

    def minor(self) -> int | None:
        """The amount in minor units, None if it is not valid money in its currency."""
        exponent = EXPONENTS.get(self.currency)
        try:
            scaled = self.amount.scaleb(exponent) if exponent is not None else None
        except InvalidOperation:
            return None
        if scaled is None or scaled <= 0 or scaled != scaled.to_integral_value():
            return None
        return int(scaled)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def problem(code: str, detail: str = "", **extra: Any) -> ORJSONResponse:
    status = STATUS.get(code, 402)
    body = {
        "type": f"urn:raypay:problem:{code}", "title": code, "status": status,
        "detail": detail or code, "code": code, **extra,
    }  # fmt: skip
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return ORJSONResponse(body, status, headers, media_type="application/problem+json")


def api_payment(fields: dict[str, str]) -> dict[str, Any]:
    exponent = EXPONENTS[fields["currency"]]
    amount = Decimal(int(fields["amountMinor"])).scaleb(-exponent)
    return {
        "paymentId": fields["paymentId"], "orderId": fields["orderId"],
        "customerId": fields["customerId"], "reservationId": fields["reservationId"] or None,
        "amount": f"{amount:.{exponent}f}", "currency": fields["currency"],
        "paymentMethod": fields["paymentMethod"], "status": fields["status"],
        "transactionId": fields["transactionId"] or None,
        "errorCode": fields["errorCode"] or None, "errorMessage": fields["errorMessage"] or None,
        "createdAt": fields["createdAt"], "processedAt": fields["processedAt"] or None,
        "isSimulated": True,
    }  # fmt: skip


def flat(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


class Peer:
    def __init__(self) -> None:
        self.url = ENV("RAYPAY_REDIS_URL", "redis://127.0.0.1:6380/0")
        # One Redis connection per request in flight: redis-py's pool refuses more than its
        # max_connections at once (a 503), and 200 buyers need up to 200 per worker.
        self.redis = aioredis.from_url(
            self.url, decode_responses=True, socket_timeout=1.0, max_connections=1024
        )
        self.begin = self.redis.register_script(BEGIN)
        self.charge = self.redis.register_script(CHARGE)
        self.settle = self.redis.register_script(SETTLE)
        keys = (item.split(":") for item in ENV("RAYPAY_API_KEYS", "").split(",") if item)
        self.keys = {digest: role for digest, role in keys}
        self.cache: dict[str, tuple[float, bool]] = {}
        self.locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.latency_ms = float(ENV("RAYPAY_PEER_LATENCY_MS", "0"))
        self.jitter_ms = float(ENV("RAYPAY_PEER_JITTER_MS", "0"))

    async def allowed(self, authorization: str | None) -> bool:
        """A checkout or admin key: configured, or in Redis (what Redis says, cached 1 s)."""
        bearer = authorization and authorization[:7].lower() == "bearer "
        digest = hashlib.sha256((authorization[7:].strip() if bearer else "").encode()).hexdigest()
        if self.keys.get(digest) in ("checkout", "admin"):
            return True
        expires, ok = self.cache.get(digest, (0.0, False))
        if expires < time.monotonic():
            ok = await self.redis.hget(f"{P}:apikey:{digest}", "role") in ("checkout", "admin")
            self.cache[digest] = (time.monotonic() + 1.0, ok)
        return ok

    async def pay(self, body: Body, minor: int) -> ORJSONResponse:
        """One order at a time in this worker (a duplicate waits, then gets the payment);
        across workers, begin's pending guard answers the later one 503, to retry."""
        lock = self.locks.get(body.order_id)
        if lock is None:
            lock = self.locks[body.order_id] = asyncio.Lock()
        async with lock:
            return await self._pay(body, minor)

    async def _pay(self, body: Body, minor: int) -> ORJSONResponse:
        o, created, v = body.order_id, now_iso(), vs(body.order_id)
        pid = f"pay_{v[len(P) + 2 : -1]}_{uuid.uuid4().hex}"  # pay_vsN_<hex>, as raypay's
        record = {
            "paymentId": pid, "orderId": o, "customerId": body.customer_id,
            "reservationId": body.reservation_id or "", "amountMinor": str(minor),
            "currency": body.currency, "paymentMethod": body.payment_method, "status": "pending",
            "transactionId": "", "errorCode": "", "errorMessage": "", "createdAt": created,
            "processedAt": "", "isSimulated": "1",
        }  # fmt: skip
        keys = [
            f"{v}:order:{o}:succeeded", f"{v}:order:{o}", f"{v}:order:{o}:pending",
            f"{v}:payment:{pid}", f"{v}:order:{o}:payments",
            f"{P}:rl:customer:{body.customer_id}", f"{v}:reservation:{body.reservation_id}",
        ]  # fmt: skip
        args = [pid, body.customer_id, str(minor), body.currency, body.reservation_id or "",
                o, created, *flat(record)]  # fmt: skip
        outcome, found = await self.begin(keys=keys, args=args)
        if outcome == "paid":
            paid = api_payment(await self.redis.hgetall(f"{v}:payment:{found}"))
            return ORJSONResponse(paid, 200, {"Idempotent-Replayed": "true"})
        if outcome != "created":
            return problem(outcome)
        if self.latency_ms or self.jitter_ms:
            await asyncio.sleep((self.latency_ms + random.random() * self.jitter_ms) / 1000)
        result = await self._charge(pid, o, body.payment_method, v)
        approved = result["approved"]
        record |= {
            "status": "succeeded" if approved else "failed", "processedAt": now_iso(),
            "transactionId": result.get("transactionId", ""), "errorCode": result.get("code", ""),
            "errorMessage": "" if approved else "Your card was declined.",
        }  # fmt: skip
        payment = api_payment(record)
        kind = f"payment-{record['status']}"
        event = {"eventType": kind, "eventId": f"evt_{uuid.uuid4().hex}", "occurredAt": now_iso(),
                 "schemaVersion": 1, **payment}  # fmt: skip
        if not approved:
            event |= {"failureReason": "card_declined", "attemptedAt": record["processedAt"]}
        keys = [f"{v}:payment:{pid}", f"{v}:order:{o}:pending", f"{v}:order:{o}:succeeded",
                OUTBOX]  # fmt: skip
        args = [record["status"], o, event["eventId"], kind, json.dumps(event), pid, *flat(record)]
        await self.settle(keys=keys, args=args)
        if not approved:
            return problem("card_declined", "Your card was declined.", payment=payment)
        return ORJSONResponse(payment, 201)

    async def _charge(self, payment_id: str, order_id: str, method: str, v: str) -> dict[str, Any]:
        """The simulator: one result per paymentId, kept in Redis (SET NX)."""
        approved = json.dumps({"approved": True, "transactionId": f"txn_{uuid.uuid4().hex}"})
        declined = json.dumps({"approved": False, "code": "card_declined"})
        keys = [f"{v}:gw:charge:{payment_id}", f"{v}:gw:charges", f"{v}:gw:charges:total"]
        once = "1" if method == DECLINED_ONCE else "0"
        return json.loads(await self.charge(keys=keys, args=[order_id, approved, once, declined]))


async def relay(redis: aioredis.Redis, stop: asyncio.Event) -> None:
    """Outbox -> Kafka, at least once: acknowledged in Redis after the broker acknowledged."""
    topics = {"payment-succeeded": ENV("RAYPAY_TOPIC_SUCCEEDED", "payment-succeeded"),
              "payment-failed": ENV("RAYPAY_TOPIC_FAILED", "payment-failed")}  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=ENV("RAYPAY_KAFKA_BOOTSTRAP_SERVERS"),
                                acks="all", linger_ms=2)  # fmt: skip
    await producer.start()
    with contextlib.suppress(RedisError):
        await redis.xgroup_create(OUTBOX, "relay", id="0", mkstream=True)
    start = "0"  # this consumer's unacknowledged entries first (a failed batch), then new
    try:
        while not stop.is_set():
            try:
                stream = {OUTBOX: start}
                block = None if start == "0" else 200
                reply = await redis.xreadgroup("relay", "relay-1", stream, count=500, block=block)
                entries = reply[0][1] if reply else []
                if not entries:
                    start = ">"
                    continue
                await publish(producer, topics, entries)
                ids = [entry_id for entry_id, _ in entries]
                async with redis.pipeline(transaction=True) as pipe:
                    pipe.xack(OUTBOX, "relay", *ids).xdel(OUTBOX, *ids)
                    await pipe.execute()
            except (KafkaError, RedisError, OSError):  # Kafka or Redis away: again, later
                start = "0"
                await asyncio.sleep(0.5)
    finally:
        await producer.stop()


async def publish(producer: AIOKafkaProducer, topics: dict[str, str], entries: list) -> None:
    """Send a batch and wait until the broker acknowledged all of it."""
    sent = [
        await producer.send(topics[f["kind"]], f["value"].encode(), key=f["key"].encode())
        for _, f in entries
    ]
    await asyncio.gather(*sent)


def relay_lock() -> Any:
    """The open lock file if this worker is the relay's (``RAYPAY_PEER_RELAY_LOCK``)."""
    path = ENV("RAYPAY_PEER_RELAY_LOCK")
    if not path:
        return None
    handle = open(path, "a")  # noqa: SIM115 - held for the worker's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextlib.asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    api.state.peer = peer = Peer()
    handler = logging.FileHandler(ENV("RAYPAY_PEER_LOG", os.devnull))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    stop, task, lock = asyncio.Event(), None, relay_lock()
    if lock is not None:  # this worker relays the outbox: one consumer keeps it in order
        relay_redis = aioredis.from_url(peer.url, decode_responses=True)
        task = asyncio.get_running_loop().create_task(relay(relay_redis, stop))
    try:
        yield
    finally:
        stop.set()
        if task is not None:
            await task
        if lock is not None:
            lock.close()
        await peer.redis.aclose()


app = FastAPI(
    title="raypay peer (FastAPI, uvicorn, no Ray, no raypay module)",
    lifespan=lifespan,
    telemetry={"tracing": False, "metrics": False, "logs": False},  # as raypay: no OTel
)


@app.exception_handler(RequestValidationError)
async def invalid(_: Request, error: Exception) -> ORJSONResponse:
    return problem("validation_error", "the body is not a valid payment")


@app.post("/v1/payments", status_code=201)
async def pay(
    request: Request, body: Body, authorization: Annotated[str | None, Header()] = None
) -> ORJSONResponse:
    started, peer, error = time.perf_counter(), request.app.state.peer, None
    try:
        if not await peer.allowed(authorization):
            response = problem("unauthorized")
        elif (minor := body.minor()) is None:
            response = problem("validation_error", "amount")
        else:
            response = await peer.pay(body, minor)
    except RedisError as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
        response = problem("unavailable")
    PAYMENTS.labels(str(response.status_code)).inc()
    LATENCY.observe(time.perf_counter() - started)
    took = time.perf_counter() - started
    line = {"orderId": body.order_id, "status": response.status_code, "latencyMs": took * 1000}
    if error is not None:
        line["error"] = error
    log.info(json.dumps(line))
    return response


@app.get("/readyz")
async def readyz(request: Request) -> dict[str, str]:
    await request.app.state.peer.redis.ping()
    return {"status": "ready"}
