"""The plain scenario of ``raypay bench``: wrk at a fixed number of connections, each
request a new seeded order paid with ``pm_card_visa``; CPU per payment per process.

For one side, already started: CPU at rest (the stack idle for ``rest_s``), a short
warm-up on orders of its own, then the measured window, then the invariants of
``raypay load`` on every order wrk paid (each paid once, charged once, its event on
the broker, nothing pending, the outbox drained).
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis

from raypay.adapters.seeding import seed
from raypay.tools.bench import procs
from raypay.tools.bench.sides import Side
from raypay.tools.bench.wrk import WrkResult, run_wrk, snapshot, ticks_between, write_bodies
from raypay.tools.loadgen.evidence import gather_evidence, read_payments
from raypay.tools.loadgen.invariants import Check, check_all, every_order_paid

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class PlainReport:
    rest_cores: float = 0.0
    rest_by_role: dict[str, float] = field(default_factory=dict)  # cores
    result: WrkResult | None = None
    cpu_ms_by_role: dict[str, float] = field(default_factory=dict)  # per payment
    client_pct: float = 0.0  # of the machine (all cores = 100) while measuring: wrk
    other_pct: float = 0.0  # ... and anything that is neither the stack nor wrk
    checks: list[Check] = field(default_factory=list)

    @property
    def cpu_ms_per_payment(self) -> float:
        return sum(self.cpu_ms_by_role.values())

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


def _cores(spent: Counter[str], seconds: float) -> dict[str, float]:
    return {role: ticks / TICKS / seconds for role, ticks in spent.most_common()}


def _machine() -> tuple[int, float, float]:
    """Busy ticks of the whole machine, CPU ticks of this process's finished children
    (wrk), and the time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = (usage.ru_utime + usage.ru_stime) * TICKS
    return procs.machine_busy_ticks(), children, time.monotonic()


def _seed(side: Side, count: int, id_prefix: str) -> list[dict[str, str]]:
    assert side.target is not None
    client = redis.Redis.from_url(side.target.redis_url, decode_responses=True)
    try:
        return seed(client, side.target.key_prefix, count=count, id_prefix=id_prefix)
    finally:
        client.close()


def run_plain(
    side: Side,
    workdir: Path,
    seconds: float = 20.0,
    connections: int = 200,
    rest_s: float = 10.0,
    warmup_s: float = 3.0,
    capacity_rps: int = 4000,
    say=print,
) -> PlainReport:
    """Measure ``side`` under the plain scenario (see the module docstring)."""
    assert side.target is not None and side.target.api_key
    report = PlainReport()
    before = snapshot(side.pids())
    time.sleep(rest_s)
    rest = ticks_between(before, snapshot(side.pids()))
    report.rest_by_role = _cores(rest, rest_s)
    report.rest_cores = sum(report.rest_by_role.values())
    say(f"{side.name}: at rest {report.rest_cores:.3f} cores")

    tag = f"w{int(time.time()) % 100000}-"
    warm = _seed(side, int(capacity_rps * warmup_s), tag + "warm-")
    orders = _seed(side, int(capacity_rps * seconds), tag)
    url, key = side.target.base_url, side.target.api_key
    run_wrk(url, key, write_bodies(warm, workdir / "warm.jsonl"), warmup_s, connections, workdir)
    bodies = write_bodies(orders, workdir / "plain.jsonl")
    before, busy, client, started = snapshot(side.pids()), *_machine()
    result = run_wrk(url, key, bodies, seconds, connections, workdir)
    spent = ticks_between(before, snapshot(side.pids()))
    busy_now, client_now, ended = _machine()
    capacity = (ended - started) * TICKS * (os.cpu_count() or 1)
    report.client_pct = 100 * (client_now - client) / capacity
    stack = sum(spent.values())
    report.other_pct = 100 * max(0, busy_now - busy - stack - (client_now - client)) / capacity
    report.result = result
    report.cpu_ms_by_role = {
        role: ticks / TICKS * 1000 / max(1, result.requests) for role, ticks in spent.most_common()
    }
    if result.requests >= len(orders):
        say(f"{side.name}: wrk ran out of seeded orders; raise capacity_rps")
    say(f"{side.name}: {result.rps:.0f} payments/s; checking the invariants")
    answered = result.requests - result.non_2xx
    report.checks = asyncio.run(_invariants(side, orders, answered, result.requests, connections))
    for check in report.checks:
        say(f"{side.name}: {'ok' if check.ok else 'FAILED'} {check.name}: {check.detail}")
        for violation in check.violations:
            say(f"{side.name}:   {violation}")
    return report


async def _quiet(target, order_ids: list[str], still_s: float = 1.0, within_s: float = 30.0):
    """Wait until the requests wrk left in flight have ended: their orders' payments stop
    changing (a slow gateway keeps some going for a while after wrk stops)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(target.redis_url, decode_responses=True)
    deadline, last = time.monotonic() + within_s, None
    try:
        while time.monotonic() < deadline:
            payments, _ = await read_payments(client, target.key_prefix, order_ids)
            now = sorted((p.payment_id, p.status) for ps in payments.values() for p in ps)
            if now == last and all(status != "pending" for _, status in now):
                return
            last = now
            await asyncio.sleep(still_s)
    finally:
        await client.aclose()


async def _invariants(
    side: Side, orders, answered: int, requests: int, connections: int
) -> list[Check]:
    """``raypay load``'s invariants over every order wrk may have sent (the ``requests`` it
    counted and up to one more per connection, in flight when it stopped; wrk takes
    bodies in order), and: at least as many orders paid as wrk counted 2xx answers
    (``answered``; each body is a fresh order, so each 2xx paid one)."""
    assert side.target is not None
    sent = [o["orderId"] for o in orders[: requests + connections]]
    await _quiet(side.target, sent)
    evidence = await gather_evidence(side.target, sent, {})
    paid = sum(
        any(p.status == "succeeded" for p in evidence.payments.get(order_id, []))
        for order_id in sent
    )
    enough = Check(
        "every answer paid an order",
        paid >= answered,
        f"{paid} orders paid for {answered} answers",
    )
    skipped = every_order_paid(evidence).name  # in-flight orders may be unpaid
    return [*(c for c in check_all(evidence) if c.name != skipped), enough]
