"""``raypay bench --soak 10m``: hold 70% of the measured maximum for a while and watch
what grows.

It starts `raypay up` (a fresh data folder), measures the maximum the load tool's client
gets (a burst of its own orders), then pays new orders at ``share`` of it, evenly paced,
for the duration; seeding runs a few seconds ahead of the payments. Every
``sample_every_s`` it prints the RSS of raypay's own processes (the ingress replica,
the shards, the gateway, the producer: these should stay flat), of Redis and of the
broker (they grow with the data: Redis's growth includes the orders the soak seeds as an
upstream service would, ~240 bytes each), Redis's ``used_memory``, the outbox depth and
the rate so far. The slope is also given over the second half alone: past the warm-up,
where a leak shows. At the end: RSS at start and end and its slope (MiB per minute) per role,
Redis's and the broker's growth per thousand payments, every error (any answer that is
not 2xx, no retries: 0 expected), and the load tool's invariants over every order.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import redis

from raypay.adapters.keys import Keys
from raypay.adapters.seeding import seed
from raypay.tools.bench import procs
from raypay.tools.bench.sides import RaypaySide
from raypay.tools.bench.wrk import role_of
from raypay.tools.loadgen.client import Buyer, Recorder, RetryPolicy, make_transport
from raypay.tools.loadgen.evidence import Target, gather_evidence
from raypay.tools.loadgen.invariants import Check, check_all
from raypay.tools.loadgen.plan import OrderPlan, Scenario
from raypay.tools.loadgen.runner import run_load

OWN = ("ingress", "shards", "gateway", "producer")  # raypay's processes: flat, or a leak
DATA = ("redis", "broker")  # they hold the data: they grow with it


def parse_duration(text: str) -> float:
    """Seconds of ``90``, ``90s``, ``10m`` or ``1h``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (e.g. 90s, 10m, 1h)")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; NaN for fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return math.nan
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx


@dataclass(frozen=True, slots=True)
class Reading:
    """One look at the stack during the soak."""

    at_s: float
    paid: int  # 2xx answers so far
    rss_mb: dict[str, float]  # by role (OWN and DATA)
    processes: dict[str, int]
    redis_used_mb: float
    outbox_depth: int

    def line(self) -> str:
        rss = "  ".join(f"{role} {self.rss_mb.get(role, 0):.0f}" for role in OWN + DATA)
        rate = self.paid / self.at_s if self.at_s else 0.0
        return (f"t={self.at_s:6.0f}s paid {self.paid:>7} ({rate:6.1f}/s)  outbox "
                f"{self.outbox_depth:>5}  redis used {self.redis_used_mb:7.1f} MiB  "
                f"RSS MiB {rss}")  # fmt: skip


@dataclass
class SoakReport:
    max_rps: float = 0.0
    rate_rps: float = 0.0
    seconds: float = 0.0
    readings: list[Reading] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    late_s: float = 0.0  # how far the pacer fell behind at worst

    @property
    def paid(self) -> int:
        return self.readings[-1].paid if self.readings else 0

    def figures(self) -> list[tuple[str, str]]:
        first, last = self.readings[0], self.readings[-1]
        minutes = [(r.at_s / 60, r) for r in self.readings]
        per_k = max(1, last.paid - first.paid) / 1000
        lines = [("soak_max_rps", f"{self.max_rps:.1f}"), ("soak_rate_rps", f"{self.rate_rps:.1f}"),
                 ("soak_seconds", f"{self.seconds:.0f}"), ("soak_payments", str(self.paid)),
                 ("soak_achieved_rps", f"{self.paid / max(1e-9, self.seconds):.1f}"),
                 ("soak_pacer_late_max_s", f"{self.late_s:.2f}")]  # fmt: skip
        later = minutes[len(minutes) // 2 :]  # past the warm-up: a leak, if it still grows
        for role in OWN + DATA:
            start, end = first.rss_mb.get(role, 0.0), last.rss_mb.get(role, 0.0)
            trend = slope([(m, r.rss_mb.get(role, 0.0)) for m, r in minutes])
            late = slope([(m, r.rss_mb.get(role, 0.0)) for m, r in later])
            lines += [(f"soak_rss_mb_start[{role}]", f"{start:.1f}"),
                      (f"soak_rss_mb_end[{role}]", f"{end:.1f}"),
                      (f"soak_rss_slope_mb_per_min[{role}]", f"{trend:.3f}"),
                      (f"soak_rss_slope_mb_per_min_2nd_half[{role}]", f"{late:.3f}")]  # fmt: skip
            if role in DATA:
                lines.append((f"soak_rss_growth_mb_per_1k_payments[{role}]",
                              f"{(end - start) / per_k:.3f}"))  # fmt: skip
        used = (last.redis_used_mb - first.redis_used_mb) / per_k
        depths = [r.outbox_depth for r in self.readings]
        lines += [("soak_redis_used_growth_mb_per_1k_payments", f"{used:.3f}"),
                  ("soak_outbox_depth_max", str(max(depths))),
                  ("soak_outbox_depth_end", str(depths[-1])),
                  ("soak_errors", str(len(self.errors))),
                  ("soak_invariants", "ok" if self.checks and all(c.ok for c in self.checks)
                   else "FAILED")]  # fmt: skip
        return lines


class Watcher:
    """Reads memory and the outbox depth of one running stack."""

    def __init__(self, side: RaypaySide) -> None:
        assert side.target is not None
        self.side, self.target = side, side.target
        self.redis = redis.Redis.from_url(side.target.redis_url, decode_responses=True)

    def read(self, at_s: float, paid: int) -> Reading:
        rss: dict[str, float] = defaultdict(float)
        count: dict[str, int] = defaultdict(int)
        for pid in self.side.pids():
            role = role_of(pid)
            if role in OWN + DATA:
                rss[role] += procs.rss_mb([pid])
                count[role] += 1
        used = int(self.redis.info("memory")["used_memory"]) / 2**20
        depth = sum(self.redis.xlen(s) for s in Keys(self.target.key_prefix).outboxes())
        return Reading(at_s, paid, dict(rss), dict(count), used, depth)

    def close(self) -> None:
        self.redis.close()


async def measure_max(target: Target, orders: int, say) -> float:
    """Payments/s of a burst of ``orders`` (200 buyers at once), as the load tool sends."""
    scenario = Scenario(payments=orders, concurrency=200, reservations=0.0, seed=7)
    result = await run_load(target, scenario, verify=False)
    paid = sum(1 for o in result.orders if any(s in (200, 201) for s in o.finals))
    say(f"maximum: {paid} of {orders} orders paid in {result.elapsed_s:.1f} s "
        f"({result.payments_per_s:.1f} payments/s)")  # fmt: skip
    return paid / result.elapsed_s if result.elapsed_s else 0.0


async def hold(
    side: RaypaySide, rate: float, seconds: float, every_s: float, report: SoakReport, say
) -> list[str]:
    """Pay fresh orders at ``rate`` for ``seconds``; returns their orderIds."""
    target = side.target
    assert target is not None and target.api_key
    total = int(rate * seconds)
    watcher = Watcher(side)
    transport = make_transport("aiohttp", target.base_url, 1000, 30.0, target.api_key)
    buyer = Buyer(transport, Recorder(), RetryPolicy(attempts=1), random.Random(1))
    seeded: list[dict[str, str]] = []
    order_ids: list[str] = []
    tag = f"soak{int(time.time()) % 100000}-"
    client = redis.Redis.from_url(target.redis_url, decode_responses=True)
    in_flight: set[asyncio.Task] = set()
    paid = 0

    def seed_chunk(count: int) -> None:
        seeded.extend(seed(client, target.key_prefix, count=count, id_prefix=tag))

    async def pay(index: int, order: dict[str, str]) -> None:
        nonlocal paid
        result = await buyer.pay(OrderPlan(index, 0.0), order)
        if all(status in (200, 201) for status in result.finals):
            paid += 1
        for problem in result.unexpected:
            report.errors.append(f"t={time.perf_counter() - t0:.1f}s {result.order_id}: {problem}")

    async def sample() -> None:
        while True:
            reading = await asyncio.to_thread(watcher.read, time.perf_counter() - t0, paid)
            report.readings.append(reading)
            say(reading.line())
            await asyncio.sleep(every_s)

    chunk = max(1, int(rate))  # a second's orders at a time, a few seconds ahead
    await asyncio.to_thread(seed_chunk, 3 * chunk)
    t0 = buyer.recorder.t0 = time.perf_counter()
    sampler = asyncio.get_running_loop().create_task(sample())
    try:
        for index in range(total):
            if len(seeded) - index < 2 * chunk:
                await asyncio.to_thread(seed_chunk, chunk)
            due = t0 + index / rate
            late = time.perf_counter() - due
            if late < 0:
                await asyncio.sleep(-late)
            report.late_s = max(report.late_s, late)
            order = seeded[index]
            order_ids.append(order["orderId"])
            task = asyncio.get_running_loop().create_task(pay(index, order))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)
    finally:
        report.seconds = time.perf_counter() - t0
        sampler.cancel()
        final = await asyncio.to_thread(watcher.read, report.seconds, paid)
        report.readings.append(final)
        say(final.line())
        await transport.close()
        watcher.close()
        client.close()
    return order_ids


def run_soak(
    seconds: float,
    workdir: Path,
    config: str | None = None,
    num_cpus: int = 2,
    share: float = 0.7,
    probe_orders: int = 6000,
    env: dict[str, str] | None = None,
) -> int:
    """The whole soak; prints progress on stderr, figures (``name value``) on stdout."""

    def say(message: str) -> None:
        print(f"soak: {message}", file=sys.stderr, flush=True)

    report = SoakReport()
    side = RaypaySide(workdir / "raypay", config, num_cpus, env=env)
    try:
        say(f"starting raypay up in {workdir}")
        side.start()
        assert side.target is not None
        say(f"ready in {side.startup_s:.1f} s at {side.target.base_url}")
        report.max_rps = asyncio.run(measure_max(side.target, probe_orders, say))
        report.rate_rps = share * report.max_rps
        every_s = min(60.0, max(5.0, seconds / 20))
        say(f"holding {report.rate_rps:.1f} payments/s ({share:.0%}) for {seconds:.0f} s")
        order_ids = asyncio.run(hold(side, report.rate_rps, seconds, every_s, report, say))
        say(f"checking the invariants over {len(order_ids)} orders")
        answered: dict[str, set[str]] = {}
        evidence = asyncio.run(gather_evidence(side.target, order_ids, answered, 180.0))
        report.checks = check_all(evidence)
    finally:
        say("stopping")
        side.stop()
    if not report.readings:
        return 1
    for name, value in report.figures():
        print(f"{name} {value}", flush=True)
    for check in report.checks:
        print(f"# {'ok' if check.ok else 'FAILED'} {check.name}: {check.detail}", flush=True)
    print(f"# errors: {len(report.errors)}", flush=True)
    for error in report.errors:
        print(f"#   {error}", flush=True)
    ok = not report.errors and all(c.ok for c in report.checks)
    return 0 if ok else 1
