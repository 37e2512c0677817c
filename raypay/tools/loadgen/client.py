"""The client side of a load run: an HTTP transport, bounded 503 retries, one order paid.

A buyer pays an order as a real client would: the planned copies at once (a
double-click, a second tab), retries of a 503 or a lost connection after the
``Retry-After`` the service asked for (bounded), and after a 402 for a card that
declines once, one more payment with a good card.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from raypay.tools.loadgen.plan import VISA, OrderPlan
from raypay.tools.loadgen.stats import Sample

PAYMENTS_PATH = "/v1/payments"
# Every 5xx is safe to retry (README, HTTP API). raypay's own answer to a transient
# failure is a 503 with Retry-After; a request whose ingress replica is lost under it
# (a node gone) gets Serve's HAProxy's plain 500, which maps 502/503/504 to 500.
RETRIABLE = frozenset({0, 429, 500, 502, 503, 504})  # 0: no HTTP answer at all
CLIENTS = ("aiohttp", "httpx")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: str | None = None
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Transport(Protocol):
    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST ``body`` (JSON); raises on a transport failure (no HTTP answer)."""

    async def close(self) -> None: ...


class AiohttpTransport:
    def __init__(self, base_url: str, pool: int, timeout_s: float, headers: dict[str, str]):
        import aiohttp

        self.base_url = base_url.rstrip("/")
        self.errors: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)
        connector = aiohttp.TCPConnector(limit=pool, limit_per_host=pool, keepalive_timeout=30)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            headers=headers,
        )

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        async with self.session.post(self.base_url + path, data=body, headers=headers) as response:
            return Answer(
                response.status, response.headers.get("Retry-After"), await response.read()
            )

    async def close(self) -> None:
        await self.session.close()


class HttpxTransport:
    def __init__(self, base_url: str, pool: int, timeout_s: float, headers: dict[str, str]):
        import httpx

        self.errors = (httpx.HTTPError, TimeoutError, OSError)
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        )

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        response = await self.client.post(path, content=body, headers=headers)
        return Answer(response.status_code, response.headers.get("Retry-After"), response.content)

    async def close(self) -> None:
        await self.client.aclose()


def make_transport(
    kind: str, base_url: str, pool: int, timeout_s: float = 30.0, api_key: str | None = None
) -> AiohttpTransport | HttpxTransport:
    """A connection pool of ``pool`` to ``base_url``; ``api_key`` becomes a Bearer header."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if kind == "aiohttp":
        return AiohttpTransport(base_url, pool, timeout_s, headers)
    if kind == "httpx":
        return HttpxTransport(base_url, pool, timeout_s, headers)
    raise ValueError(f"client must be one of {', '.join(CLIENTS)}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` in all for one request; waits honour Retry-After up to ``cap_s``,
    else grow from ``base_s`` (doubling, full jitter)."""

    attempts: int = 8
    base_s: float = 0.1
    cap_s: float = 5.0
    retriable: frozenset[int] = RETRIABLE  # statuses worth another attempt (0: no answer)

    def delay(self, attempt: int, retry_after: str | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        if retry_after is not None:
            try:
                asked = float(retry_after)
            except ValueError:  # an HTTP date: not worth parsing for a load tool
                asked = -1.0
            if asked >= 0:
                return min(asked, self.cap_s) + rng.uniform(0, self.base_s)
        return rng.uniform(0, min(self.cap_s, self.base_s * 2**attempt))


class Recorder:
    """Collects samples and the counters the progress display reads."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.samples: list[Sample] = []
        self.statuses: dict[int, int] = {}
        self.orders_done = 0

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)
        self.statuses[sample.status] = self.statuses.get(sample.status, 0) + 1


@dataclass
class OrderResult:
    """What the buyer of one order saw."""

    order_id: str
    answered: set[str] = field(default_factory=set)  # paymentIds named by 2xx answers
    finals: list[int] = field(default_factory=list)  # last status of each request
    unexpected: list[str] = field(default_factory=list)


def payment_body(order: dict[str, str], payment_method: str) -> bytes:
    body = {
        "orderId": order["orderId"],
        "customerId": order["customerId"],
        "amount": order["amount"],
        "currency": order["currency"],
        "paymentMethod": payment_method,
    }
    if order.get("reservationId"):
        body["reservationId"] = order["reservationId"]
    return json.dumps(body, separators=(",", ":")).encode()


class Buyer:
    """Sends one order's requests through a shared transport, recording every attempt."""

    def __init__(
        self,
        transport: AiohttpTransport | HttpxTransport,
        recorder: Recorder,
        policy: RetryPolicy,
        rng: random.Random,
        idempotency_keys: bool = False,
    ) -> None:
        self.transport, self.recorder, self.policy, self.rng = transport, recorder, policy, rng
        self.idempotency_keys = idempotency_keys

    async def send(self, body: bytes, kind: str, key: str | None) -> Answer:
        headers = {"Idempotency-Key": key} if key else {}
        answer = Answer(0)
        for attempt in range(self.policy.attempts):
            started = time.perf_counter()
            try:
                answer = await self.transport.post(PAYMENTS_PATH, body, headers)
            except self.transport.errors:
                answer = Answer(0)
            ended = time.perf_counter()
            t0 = self.recorder.t0
            self.recorder.add(Sample(started - t0, ended - started, answer.status, kind, attempt))
            if answer.status not in self.policy.retriable or attempt == self.policy.attempts - 1:
                break
            await asyncio.sleep(self.policy.delay(attempt, answer.retry_after, self.rng))
        return answer

    def _key(self, order: dict[str, str], n: int) -> str | None:
        return f"{order['orderId']}-{n}" if self.idempotency_keys else None

    async def pay(self, plan: OrderPlan, order: dict[str, str]) -> OrderResult:
        """The order's first request and its duplicates at once; after a planned decline
        with nothing paid, once more with a good card."""
        result = OrderResult(order["orderId"])
        body, key = payment_body(order, plan.payment_method), self._key(order, 1)
        kinds = ["first"] + ["duplicate"] * plan.duplicates
        answers = list(await asyncio.gather(*(self.send(body, kind, key) for kind in kinds)))
        paid = any(a.status in (200, 201) for a in answers)
        if plan.decline_once and not paid and any(a.status == 402 for a in answers):
            retry = payment_body(order, VISA)
            answers.append(await self.send(retry, "after_decline", self._key(order, 2)))
        for answer in answers:
            result.finals.append(answer.status)
            if answer.status in (200, 201):
                result.answered.add(answer.json()["paymentId"])
            elif not (answer.status == 402 and plan.decline_once):
                result.unexpected.append(f"{answer.status} {answer.body[:200]!r}")
        return result
