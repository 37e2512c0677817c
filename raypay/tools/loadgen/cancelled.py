"""The cancelled-event scenario's second phase: the event is cancelled, so every order the
run paid is refunded through refund batches (POST /v1/refund-batches, 10,000 orders a
batch), while ``raypay fulfill`` (run here, in-process) voids their tickets; then the
refund invariants (refund_checks.py) are read back from Redis and the broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from raypay.adapters.keys import Keys
from raypay.adapters.ticket_store import RedisTickets
from raypay.tools.fulfill import Fulfiller, consume
from raypay.tools.loadgen.evidence import Target, _chunks, read_facts
from raypay.tools.loadgen.invariants import Check
from raypay.tools.loadgen.refund_checks import (
    PaymentMoney,
    RefundEventFact,
    RefundEvidence,
    RefundFact,
    check_all,
)

BATCH = 10_000


async def refund_everything(
    target: Target,
    run_id: str,
    order_ids: list[str],
    say: Callable[[str], None],
    drain_timeout_s: float = 60.0,
) -> tuple[list[Check], dict[str, Any]]:
    """Refund every paid order of the run in batches; its checks and figures."""
    redis = target.redis()
    keys = Keys(target.key_prefix)
    fulfiller = Fulfiller(RedisTickets(redis, keys))
    stop = asyncio.Event()
    consumer = asyncio.ensure_future(
        consume(fulfiller, target.kafka, list(target.fulfil_topics), "raypay-fulfill", stop)
    )
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    try:
        paid = await paid_payments(redis, keys, order_ids)
        say(f"event cancelled: refunding {len(paid)} paid orders in batches")
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=target.base_url, headers=headers, timeout=30) as http:
            batch_ids = [
                await create_batch(http, chunk, f"{run_id}-{n}")
                for n, chunk in enumerate(_chunks(list(paid), BATCH))
            ]
            batches = await until_done(http, batch_ids, say)
        batch_s = time.monotonic() - started
        say("waiting for `raypay fulfill` to void every ticket")
        deadline = time.monotonic() + drain_timeout_s
        tickets = await until_voided(redis, keys, list(paid.values()), deadline)
        stop.set()
        await consumer
        say("reading payments, refunds and refund events")
        evidence = await read_evidence(redis, keys, paid, tickets)
        evidence.events = await read_refund_events(
            target, set(paid), {r.refund_id for r in evidence.refunds}, deadline
        )
    finally:
        stop.set()
        if not consumer.done():
            consumer.cancel()
        await redis.aclose()
    figures = {
        "ordersRefunded": sum(b["succeeded"] for b in batches),
        "ordersFailed": sum(b["failed"] for b in batches),
        "ordersSkipped": sum(b["skipped"] for b in batches),
        "batches": len(batches),
        "batchSeconds": round(batch_s, 2),
        "refundsPerSecond": round(len(paid) / batch_s, 1) if batch_s else 0.0,
        "fulfil": dict(fulfiller.outcomes),
    }
    return check_all(evidence), figures


async def paid_payments(redis: Any, keys: Keys, order_ids: list[str]) -> dict[str, str]:
    """orderId -> its succeeded paymentId, for the orders that have one."""
    paid: dict[str, str] = {}
    for chunk in _chunks(order_ids):
        async with redis.pipeline(transaction=False) as pipe:  # one slot per key: no MGET
            for order_id in chunk:
                pipe.get(keys.succeeded(order_id))
            values = await pipe.execute()
        paid.update((o, p) for o, p in zip(chunk, values, strict=True) if p)
    return paid


async def create_batch(http: httpx.AsyncClient, order_ids: list[str], key: str) -> str:
    body = {"orderIds": order_ids, "reason": "event_cancelled", "metadata": {"run": key}}
    for attempt in range(8):
        answer = await http.post("/v1/refund-batches", json=body, headers={"Idempotency-Key": key})
        if answer.status_code == 202:
            return answer.json()["batchId"]
        if answer.status_code < 500 and answer.status_code != 429:
            raise RuntimeError(f"refund batch refused: {answer.status_code} {answer.text[:300]}")
        await asyncio.sleep(min(2**attempt * 0.2, 5))
    raise RuntimeError("refund batch: no answer but 5xx/429")


async def until_done(
    http: httpx.AsyncClient, batch_ids: list[str], say: Callable[[str], None]
) -> list[dict[str, Any]]:
    while True:
        answers = [await http.get(f"/v1/refund-batches/{b}?limit=0") for b in batch_ids]
        batches = [a.json() for a in answers if a.status_code == 200]
        if len(batches) == len(batch_ids):
            done, total = sum(b["done"] for b in batches), sum(b["total"] for b in batches)
            say(f"refund batches: {done}/{total} orders")
            if all(b["status"] == "done" for b in batches):
                return batches
        await asyncio.sleep(1.0)


async def until_voided(
    redis: Any, keys: Keys, payment_ids: list[str], deadline: float
) -> dict[str, str | None]:
    while True:
        tickets: dict[str, str | None] = {}
        for chunk in _chunks(payment_ids):
            async with redis.pipeline(transaction=False) as pipe:
                for payment_id in chunk:
                    pipe.hget(keys.ticket(payment_id), "status")
                tickets.update(zip(chunk, await pipe.execute(), strict=True))
        if all(s == "void" for s in tickets.values()) or time.monotonic() >= deadline:
            return tickets
        await asyncio.sleep(0.5)


async def read_evidence(
    redis: Any, keys: Keys, paid: dict[str, str], tickets: dict[str, str | None]
) -> RefundEvidence:
    evidence = RefundEvidence(payments=[], tickets=tickets)
    fields = ["amountMinor", "amountRefundedMinor", "amountRefundingMinor"]
    for chunk in _chunks(list(paid.items())):
        async with redis.pipeline(transaction=False) as pipe:
            for _, payment_id in chunk:
                pipe.hmget(keys.payment(payment_id), fields)
                pipe.lrange(keys.payment_refunds(payment_id), 0, -1)
            rows = await pipe.execute()
        refund_ids = []
        for (order_id, payment_id), money, ids in zip(chunk, rows[::2], rows[1::2], strict=True):
            amount, refunded, aside = (int(v or 0) for v in money)
            evidence.payments.append(PaymentMoney(payment_id, order_id, amount, refunded, aside))
            refund_ids += [(payment_id, refund_id) for refund_id in ids]
        async with redis.pipeline(transaction=False) as pipe:
            for _, refund_id in refund_ids:
                pipe.hmget(keys.refund(refund_id), ["status", "amountMinor"])
            for (payment_id, refund_id), (status, amount) in zip(
                refund_ids, await pipe.execute(), strict=True
            ):
                evidence.refunds.append(
                    RefundFact(refund_id, payment_id, status or "missing", int(amount or 0))
                )
    return evidence


async def read_refund_events(
    target: Target, order_ids: set[str], wanted: set[str], deadline: float
) -> list[RefundEventFact]:
    """The run's refund events, read from the beginning, until each wanted refund has
    one and the consumer caught up (or the deadline, at least 10 s from now)."""

    def fact_of(key: str, value: dict[str, Any]) -> tuple[RefundEventFact, str]:
        refund_id = value["refundId"]
        return RefundEventFact(value["eventId"], refund_id, value["eventType"]), refund_id

    deadline = max(deadline, time.monotonic() + 10.0)
    return await read_facts(
        target.kafka, target.refund_topics, order_ids, wanted, deadline, fact_of
    )
