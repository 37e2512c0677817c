"""A chaos run: the stack `raypay up` starts, a paced burst through the load tool with
buyers that retry 5xx and dropped connections (some sending concurrent duplicates), the
seeded fault schedule meanwhile; then recovery, the sweep, and the checks.

Checks: the load tool's invariants (raypay/tools/loadgen/invariants.py: charged at most
once, charges match outcomes, one event per outcome, nothing pending, answers agree,
every order paid, outbox drained), and: every buyer's every request ended 200/201, each
order exactly one succeeded payment and one charge. Duplicate deliveries of an event
(at least once: the replay after a broker kill sends retained events again) are counted.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from raypay.tools.bench.sides import RaypaySide
from raypay.tools.chaos.inject import ACTOR_CLASSES, Done, Injector
from raypay.tools.chaos.schedule import KINDS, Fault, make_schedule, summary
from raypay.tools.loadgen.client import RETRIABLE, RetryPolicy
from raypay.tools.loadgen.evidence import Target, gather_evidence, read_payments
from raypay.tools.loadgen.invariants import Check, Evidence, charged_exactly_once, check_all
from raypay.tools.loadgen.plan import Scenario
from raypay.tools.loadgen.runner import LoadResult, run_load

# A buyer keeps trying through every fault, as the contract says a client may: any 5xx
# and no answer at all are retried (Retry-After honoured, waits up to 2 s). A killed
# ingress replica's in-flight requests get Serve's own plain-text 500, not raypay's.
BUYER = RetryPolicy(
    attempts=200, base_s=0.1, cap_s=2.0, retriable=RETRIABLE | frozenset(range(500, 600))
)


@dataclass
class ChaosOptions:
    seed: int = 1
    orders: int = 2000
    seconds: float = 40.0  # the burst's length: orders arrive at orders/seconds a second
    concurrency: int = 200
    duplicates: float = 0.05  # share of orders sent with 2 concurrent copies
    every_s: tuple[float, float] = (1.5, 2.5)
    kinds: tuple[str, ...] = KINDS  # of faults to draw from
    workdir: Path = Path(".raypay-chaos")
    config: str | None = None
    num_cpus: int = 2
    settle_timeout_s: float = 180.0  # for recovery, the sweep and the events
    env: dict[str, str] | None = None  # `raypay up`'s environment (default: this one)


@dataclass
class ChaosResult:
    options: ChaosOptions
    schedule: list[Fault]
    done: list[Done] = field(default_factory=list)
    load: LoadResult | None = None
    checks: list[Check] = field(default_factory=list)
    deliveries: int = 0  # event messages of the run's orders read from the broker
    distinct_events: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def duplicates(self) -> int:
        return self.deliveries - self.distinct_events


def every_request_answered_2xx(load: LoadResult) -> Check:
    finals = Counter(status for order in load.orders for status in order.finals)
    bad = [
        f"{order.order_id}: {order.finals}"
        for order in load.orders
        if any(status not in (200, 201) for status in order.finals)
    ]
    mix = ", ".join(f"{status}: {n}" for status, n in sorted(finals.items()))
    detail = f"{sum(finals.values())} requests of {len(load.orders)} orders ended {mix}"
    return Check("every buyer answered 200/201", not bad, detail, tuple(bad[:10]))


async def _until_ready(target: Target, deadline: float) -> bool:
    async with httpx.AsyncClient(timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{target.base_url}/readyz")).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    return False


async def _until_settled(target: Target, order_ids: list[str], deadline: float) -> int:
    """Until no payment of the run is pending (the retries and the shards' sweep settle
    them), or the deadline; how many still are."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(target.redis_url, decode_responses=True)
    try:
        while True:
            payments, _ = await read_payments(client, target.key_prefix, order_ids)
            pending = sum(1 for ps in payments.values() for p in ps if p.status == "pending")
            if not pending or time.monotonic() > deadline:
                return pending
            await asyncio.sleep(1.0)
    finally:
        await client.aclose()


async def run_chaos(options: ChaosOptions, say=print) -> ChaosResult:
    """Start the stack, run the burst under the schedule, check, stop the stack."""
    schedule = make_schedule(options.seed, options.seconds, options.every_s, kinds=options.kinds)
    result = ChaosResult(options, schedule)
    say(f"chaos seed {options.seed}: {options.orders} orders over {options.seconds:g} s, "
        f"{len(schedule)} faults {summary(schedule)}")  # fmt: skip
    for fault in schedule:
        say(f"  planned {fault.describe()}")
    side = RaypaySide(options.workdir, options.config, options.num_cpus, env=options.env)
    try:
        say(f"starting raypay up in {options.workdir}")
        await asyncio.to_thread(side.start)
        assert side.target is not None and side.state is not None
        say(f"ready in {side.startup_s:.1f} s at {side.target.base_url}")
        await _burst(side, options, result, say)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        say(f"chaos run failed: {result.error}")
    finally:
        say("stopping the stack")
        await asyncio.to_thread(side.stop)
    return result


async def _burst(side: RaypaySide, options: ChaosOptions, result: ChaosResult, say) -> None:
    target, state = side.target, side.state
    assert target is not None and state is not None
    injector = Injector(side.roots[0].pid, state["dashboard_url"])
    scenario = Scenario(
        payments=options.orders, concurrency=options.concurrency, arrival="rate",
        rate=options.orders / options.seconds, duplicates=options.duplicates,
        duplicate_count=2, declines=0.0, reservations=0.3, seed=options.seed,
    )  # fmt: skip
    # The first look-up imports Ray's state client (seconds): done before the burst.
    found = {kind: len(await asyncio.to_thread(injector.actors, cls))
             for kind, cls in ACTOR_CLASSES.items()}  # fmt: skip
    say(
        "targets: "
        + ", ".join(f"{kind.split('-', 1)[1]} x{n}" for kind, n in found.items())
        + f", redis pid {injector.server('redis')}, broker pid {injector.server('broker')}"
    )
    faults: list[asyncio.Task] = []

    def start_faults() -> None:
        t0 = time.perf_counter()
        faults.append(
            asyncio.get_running_loop().create_task(injector.run(result.schedule, t0, say))
        )

    try:
        result.load = await run_load(
            target, scenario, policy=BUYER, timeout_s=15.0, verify=False, on_firing=start_faults
        )
        if faults:
            result.done = await faults[0]
    finally:
        for task in faults:
            task.cancel()
        injector.resume_all()
    load = result.load
    say(f"burst done: {len(load.orders)} orders, {len(load.samples)} requests in "
        f"{load.elapsed_s:.1f} s; recovering")  # fmt: skip
    deadline = time.monotonic() + options.settle_timeout_s
    if not await _until_ready(target, deadline):
        say("readyz still not 200")
    order_ids = [order.order_id for order in load.orders]
    pending = await _until_settled(target, order_ids, deadline)
    say(f"{pending} payments pending after the sweep; reading the evidence")
    answered = {order.order_id: order.answered for order in load.orders}
    evidence = await gather_evidence(
        target, order_ids, answered, max(60.0, deadline - time.monotonic())
    )
    result.checks = [
        every_request_answered_2xx(load),
        charged_exactly_once(evidence),
        *check_all(evidence),
    ]
    _count_deliveries(result, evidence)


def _count_deliveries(result: ChaosResult, evidence: Evidence) -> None:
    result.deliveries = len(evidence.events)
    result.distinct_events = len({event.event_id for event in evidence.events})


def report_lines(result: ChaosResult) -> list[str]:
    """The end-of-run report: the faults as they happened, the checks, the counts."""
    options = result.options
    lines = [f"chaos seed {options.seed}: {summary([d.fault for d in result.done]) or '-'}"]
    lines += [f"  {done.describe()}" for done in result.done]
    if result.load is not None:
        load = result.load
        statuses = Counter(s.status for s in load.samples)
        mix = "  ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
        lines.append(f"  traffic      {len(load.orders)} orders, {len(load.samples)} attempts "
                     f"in {load.elapsed_s:.1f} s; attempts by status {mix}")  # fmt: skip
        lines += [f"  answered     {line}" for line in load.unexpected[:5]]
    lines.append(f"  events       {result.distinct_events} distinct, {result.deliveries} "
                 f"deliveries read ({result.duplicates} duplicates)")  # fmt: skip
    for check in result.checks:
        lines.append(f"  {'ok  ' if check.ok else 'FAIL'} {check.name:<28} {check.detail}")
        lines += [f"         {violation}" for violation in check.violations]
    if result.error:
        lines.append(f"  error        {result.error}")
    lines.append(f"  result       {'ok' if result.ok else 'FAILED'}")
    return lines


def default_workdir() -> Path:
    return Path(os.environ.get("RAYPAY_DATA_DIR", ".raypay")).resolve().parent / ".raypay-chaos"
