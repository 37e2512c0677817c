"""A whole load run: plan, seed, fire, then check the invariants.

``run_load`` is the core that ``raypay load``, ``raypay bench`` and the integration
test share; the command line only parses options and prints the result.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from raypay.tools.loadgen.client import Buyer, OrderResult, Recorder, RetryPolicy, make_transport
from raypay.tools.loadgen.evidence import Target, gather_evidence, seed_orders
from raypay.tools.loadgen.invariants import Check, check_all
from raypay.tools.loadgen.plan import OrderPlan, PlannedTraffic, Scenario, plan, traffic
from raypay.tools.loadgen.stats import (
    LatencySummary,
    Sample,
    percentile,
    rate,
    status_mix,
    summarize,
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the progress display shows while payments fly."""

    elapsed_s: float
    orders_done: int
    orders: int
    requests: int
    statuses: dict[int, int]
    recent_p99_ms: float


class Progress(Protocol):
    def start(self, total_orders: int) -> None: ...

    def update(self, snapshot: Snapshot) -> None: ...

    def phase(self, message: str) -> None: ...

    def stop(self) -> None: ...


class Silent:
    def start(self, total_orders: int) -> None: ...

    def update(self, snapshot: Snapshot) -> None: ...

    def phase(self, message: str) -> None: ...

    def stop(self) -> None: ...


@dataclass
class LoadResult:
    run_id: str
    scenario: Scenario
    planned: PlannedTraffic
    target: dict[str, Any]
    client: str
    elapsed_s: float
    seed_s: float
    verify_s: float
    samples: list[Sample]
    orders: list[OrderResult]
    checks: list[Check] = field(default_factory=list)
    refund_phase: dict[str, Any] | None = None  # the cancelled-event scenario's figures

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def payments_per_s(self) -> float:
        return rate(len(self.orders), self.elapsed_s)

    @property
    def requests_per_s(self) -> float:
        return rate(len(self.samples), self.elapsed_s)

    @property
    def latency(self) -> LatencySummary:
        return summarize(sample.latency_s for sample in self.samples)

    @property
    def unexpected(self) -> list[str]:
        return [f"{o.order_id}: {u}" for o in self.orders for u in o.unexpected]

    @property
    def errors(self) -> int:
        """Attempts answered with neither a 2xx nor a planned 402 (retried 503s count)."""
        failed = sum(1 for s in self.samples if s.status not in (200, 201, 402))
        return failed + sum(1 for o in self.orders for u in o.unexpected if u.startswith("402"))

    def as_dict(self, with_samples: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "runId": self.run_id, "ok": self.ok, "client": self.client,
            "scenario": asdict(self.scenario), "planned": self.planned.as_dict(),
            "target": self.target, "elapsedSeconds": self.elapsed_s,
            "seedSeconds": self.seed_s, "verifySeconds": self.verify_s,
            "orders": len(self.orders), "requests": len(self.samples),
            "paymentsPerSecond": self.payments_per_s, "requestsPerSecond": self.requests_per_s,
            "latency": self.latency.as_dict(), "statusMix": status_mix(self.samples),
            "errors": self.errors, "unexpectedCount": len(self.unexpected),
            "unexpected": self.unexpected[:50],
            "checks": [check.as_dict() for check in self.checks],
            "refundPhase": self.refund_phase,
        }  # fmt: skip
        if with_samples:
            data["samples"] = {
                "startedS": [round(s.started_s, 6) for s in self.samples],
                "latencyMs": [round(s.latency_s * 1000, 3) for s in self.samples],
                "status": [s.status for s in self.samples],
                "kind": [s.kind for s in self.samples],
                "attempt": [s.attempt for s in self.samples],
            }
        return data


def _snapshot(recorder: Recorder, orders: int) -> Snapshot:
    recent = [s.latency_s * 1000 for s in recorder.samples[-2000:]]
    return Snapshot(
        time.perf_counter() - recorder.t0,
        recorder.orders_done,
        orders,
        len(recorder.samples),
        dict(recorder.statuses),
        percentile(recent, 99) if recent else 0.0,
    )


async def fire(
    buyer: Buyer,
    plans: list[OrderPlan],
    orders: list[dict[str, str]],
    concurrency: int,
    progress: Progress,
) -> tuple[list[OrderResult], float]:
    """``concurrency`` buyers work through the plans, each order at its start time.
    Returns every order's result and the seconds from the first request to the last answer."""
    recorder = buyer.recorder
    results: list[OrderResult | None] = [None] * len(plans)
    queue = iter(range(len(plans)))

    async def work() -> None:
        for index in queue:  # shared: each buyer takes the next order
            wait = plans[index].start_s - (time.perf_counter() - recorder.t0)
            if wait > 0:
                await asyncio.sleep(wait)
            results[index] = await buyer.pay(plans[index], orders[index])
            recorder.orders_done += 1

    async def report() -> None:
        while True:
            progress.update(_snapshot(recorder, len(plans)))
            await asyncio.sleep(0.5)

    reporter = asyncio.get_running_loop().create_task(report())
    recorder.t0 = time.perf_counter()
    try:
        await asyncio.gather(*(work() for _ in range(min(concurrency, len(plans)))))
    finally:
        elapsed = time.perf_counter() - recorder.t0
        reporter.cancel()
        progress.update(_snapshot(recorder, len(plans)))
    return [r for r in results if r is not None], elapsed


async def run_load(
    target: Target,
    scenario: Scenario,
    *,
    client: str = "aiohttp",
    progress: Progress | None = None,
    policy: RetryPolicy | None = None,
    timeout_s: float = 30.0,
    drain_timeout_s: float = 60.0,
    idempotency_keys: bool = False,
    verify: bool = True,
    on_firing: Callable[[], None] | None = None,
    on_fired: Callable[[], None] | None = None,
) -> LoadResult:
    """Seed the scenario's orders, pay them, then (``verify``) check the invariants.
    ``on_firing`` / ``on_fired`` are called right before the first and after the last request."""
    progress = progress or Silent()
    run_id = f"lt{uuid.uuid4().hex[:8]}"
    plans = plan(scenario)
    progress.phase(f"seeding {len(plans)} orders (run {run_id})")
    started = time.monotonic()
    orders = await asyncio.to_thread(seed_orders, target, plans, f"{run_id}-")
    seed_s = time.monotonic() - started
    pool = scenario.concurrency * (1 + (scenario.duplicate_count if scenario.duplicates else 0))
    transport = make_transport(client, target.base_url, pool, timeout_s, target.api_key)
    buyer = Buyer(
        transport,
        Recorder(),
        policy or RetryPolicy(),
        random.Random(scenario.seed),
        idempotency_keys,
    )
    progress.start(len(plans))
    if on_firing is not None:
        on_firing()
    try:
        results, elapsed = await fire(buyer, plans, orders, scenario.concurrency, progress)
    finally:
        progress.stop()
        await transport.close()
    if on_fired is not None:
        on_fired()
    result = LoadResult(
        run_id, scenario, traffic(plans),
        {"baseUrl": target.base_url, "redisUrl": target.redis_url, "kafka": target.kafka,
         "keyPrefix": target.key_prefix},
        client, elapsed, seed_s, 0.0, buyer.recorder.samples, results,
    )  # fmt: skip
    if verify:
        started = time.monotonic()
        answered = {r.order_id: r.answered for r in results}
        evidence = await gather_evidence(
            target, [o["orderId"] for o in orders], answered, drain_timeout_s, progress.phase
        )
        result.checks = check_all(evidence)
        result.verify_s = time.monotonic() - started
    return result
