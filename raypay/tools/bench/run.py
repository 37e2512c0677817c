"""``raypay bench``: raypay against its peer, same scenario, same machine, one run.

For each side in turn (raypay first, then the peer, so neither idles beside the other):
start it fresh and time it until ready, take its memory at rest, warm it up, fire the
scenario while sampling its memory, check the invariants, stop it. Then print one line
per figure (``name value``) on stdout; progress goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from raypay.tools.bench.cpu import CpuMeter, CpuShare
from raypay.tools.bench.plain import PlainReport, run_plain
from raypay.tools.bench.sides import Gateway, PeerSide, RaypaySide, Side
from raypay.tools.loadgen.plan import Scenario
from raypay.tools.loadgen.progress import PlainProgress
from raypay.tools.loadgen.runner import LoadResult, run_load
from raypay.tools.loadgen.stats import status_mix

SCENARIO = Scenario(
    payments=20_000, concurrency=200, arrival="burst", duplicates=0.05, duplicate_count=2,
    declines=0.10, reservations=0.3, seed=42,
)  # fmt: skip


@dataclass
class BenchOptions:
    scenario: Scenario = SCENARIO
    warmup: int = 500
    client: str = "aiohttp"
    config: str | None = None
    num_cpus: int = 2
    workers: int = 2
    sides: tuple[str, ...] = ("raypay", "peer")
    settle_s: float = 3.0
    json_path: str | None = None
    keep_dir: bool = False
    kind: str = "plain"  # plain: wrk, fresh orders, pm_card_visa; mixed: the load tool
    seconds: float = 20.0  # the plain scenario's measured window
    gateway: Gateway | None = None  # a slower simulated gateway (the realistic scenario)


@dataclass
class SideReport:
    name: str
    startup_s: float = math.nan
    rest_pss_mb: float = math.nan
    rest_rss_mb: float = math.nan
    processes: int = 0
    load_pss_mb: float = math.nan
    load_rss_mb: float = math.nan
    result: LoadResult | None = None
    error: str | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)  # (s, PSS MiB)
    rest_processes: dict[str, float] = field(default_factory=dict)  # "pid name": PSS MiB
    cpu: CpuShare | None = None
    plain: PlainReport | None = None


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


async def _sample_memory(side: Side, report: SideReport, every_s: float = 1.0) -> None:
    started = time.monotonic()
    while True:
        pss, rss, _ = await asyncio.to_thread(side.memory)
        report.samples.append((time.monotonic() - started, pss))
        report.load_pss_mb = max(pss, 0 if math.isnan(report.load_pss_mb) else report.load_pss_mb)
        report.load_rss_mb = max(rss, 0 if math.isnan(report.load_rss_mb) else report.load_rss_mb)
        await asyncio.sleep(every_s)


async def _measure(side: Side, options: BenchOptions, report: SideReport) -> None:
    assert side.target is not None
    progress = PlainProgress(label=side.name, every_s=5.0)
    if options.warmup:
        warm = replace(options.scenario, payments=options.warmup, seed=options.scenario.seed + 1)
        _say(f"{side.name}: warm-up, {warm.payments} payments (not measured)")
        warmed = await run_load(
            side.target, warm, client=options.client, progress=progress, verify=False
        )
        if not any(s.status in (200, 201) for s in warmed.samples):
            mix = status_mix(warmed.samples)
            raise RuntimeError(f"warm-up paid nothing (status mix {mix}); {warmed.unexpected[:1]}")
    sampler = asyncio.get_running_loop().create_task(_sample_memory(side, report))
    meter = CpuMeter(side.pids)

    def fired() -> None:
        sampler.cancel()
        report.cpu = meter.stop()

    try:
        report.result = await run_load(
            side.target, options.scenario, client=options.client, progress=progress,
            on_firing=meter.start, on_fired=fired,
        )  # fmt: skip
    finally:
        sampler.cancel()


def _run_side(side: Side, options: BenchOptions) -> SideReport:
    report = SideReport(side.name)
    try:
        _say(f"{side.name}: starting")
        side.start()
        report.startup_s = side.startup_s
        _say(f"{side.name}: ready in {side.startup_s:.1f} s at {side.target.base_url}")
        time.sleep(options.settle_s)
        report.rest_pss_mb, report.rest_rss_mb, report.processes = side.memory()
        report.rest_processes = side.breakdown()
        if options.kind == "plain":
            report.plain = run_plain(
                side, side.data_dir, options.seconds, options.scenario.concurrency, say=_say
            )
        else:
            asyncio.run(_measure(side, options, report))
    except Exception as exc:  # reported as a line; the other side still runs
        report.error = f"{type(exc).__name__}: {exc}"
        _say(f"{side.name}: FAILED: {report.error}")
    finally:
        _say(f"{side.name}: stopping")
        side.stop()
    return report


def _fmt(value: float, digits: int = 1) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def plain_figures(name: str, plain: PlainReport) -> list[tuple[str, str]]:
    """A side's lines for the plain scenario: throughput, latency, CPU per payment per
    role (ms), Redis's share and the ceiling it sets, CPU at rest (cores)."""
    result = plain.result
    assert result is not None
    redis_ms = plain.cpu_ms_by_role.get("redis", math.nan)
    lines = [
        (f"{name}_throughput_rps", _fmt(result.rps)),
        (f"{name}_p50_ms", _fmt(result.p50_ms)),
        (f"{name}_p90_ms", _fmt(result.p90_ms)),
        (f"{name}_p99_ms", _fmt(result.p99_ms)),
        (f"{name}_max_ms", _fmt(result.max_ms)),
        (f"{name}_errors", str(result.socket_errors + result.non_2xx)),
        (f"{name}_cpu_ms_per_payment", _fmt(plain.cpu_ms_per_payment, 3)),
    ]
    lines += [
        (f"{name}_cpu_ms_per_payment[{role}]", _fmt(ms, 3))
        for role, ms in plain.cpu_ms_by_role.items()
    ]
    lines += [
        (f"{name}_redis_cpu_ms_per_payment", _fmt(redis_ms, 3)),
        (f"{name}_redis_bound_rps", _fmt(1000 / redis_ms if redis_ms else math.nan, 0)),
        (f"{name}_cpu_cores_at_rest", _fmt(plain.rest_cores, 3)),
        (f"{name}_cpu_client_pct", _fmt(plain.client_pct)),
        (f"{name}_cpu_other_pct", _fmt(plain.other_pct)),
        (f"{name}_invariants", "ok" if plain.ok else "FAILED"),
    ]
    return lines


def plain_ratios(reports: dict[str, SideReport]) -> list[tuple[str, str]]:
    ours, peer = (reports.get(n) for n in ("raypay", "peer"))
    if not (ours and peer and ours.plain and peer.plain and ours.plain.result
            and peer.plain.result):  # fmt: skip
        return []
    a, b = ours.plain, peer.plain
    return [
        ("ratio_throughput", _fmt(a.result.rps / b.result.rps if b.result.rps else math.nan, 3)),
        ("ratio_p99", _fmt(a.result.p99_ms / b.result.p99_ms, 3)),
        ("ratio_cpu_per_payment", _fmt(a.cpu_ms_per_payment / b.cpu_ms_per_payment, 2)),
    ]


def figures(reports: dict[str, SideReport]) -> list[tuple[str, str]]:
    """The result lines, in a fixed order."""
    lines: list[tuple[str, str]] = []
    for name, report in reports.items():
        stack = "stack" if name == "raypay" else "peer"
        result = report.result
        lines.append((f"{stack}_startup_seconds" if name != "raypay" else "startup_seconds",
                      _fmt(report.startup_s)))  # fmt: skip
        lines += [
            (f"{stack}_memory_mb_at_rest", _fmt(report.rest_pss_mb, 0)),
            (f"{stack}_memory_rss_mb_at_rest", _fmt(report.rest_rss_mb, 0)),
            (f"{stack}_processes", str(report.processes)),
            (f"{stack}_memory_mb_under_load", _fmt(report.load_pss_mb, 0)),
        ]
        if report.plain is not None and report.plain.result is not None:
            lines += plain_figures(name, report.plain)
            continue
        if result is None:
            lines.append((f"{name}_error", json.dumps(report.error)))
            continue
        latency = result.latency
        lines += [
            (f"{name}_throughput_rps", _fmt(result.payments_per_s)),
            (f"{name}_requests_rps", _fmt(result.requests_per_s)),
            (f"{name}_p50_ms", _fmt(latency.p50_ms)),
            (f"{name}_p90_ms", _fmt(latency.p90_ms)),
            (f"{name}_p99_ms", _fmt(latency.p99_ms)),
            (f"{name}_max_ms", _fmt(latency.max_ms)),
            (f"{name}_errors", str(result.errors)),
            (f"{name}_invariants", "ok" if result.ok else "FAILED"),
        ]
        if report.cpu is not None:
            per_payment = report.cpu.stack_cpu_s * 1000 / max(1, len(result.orders))
            lines += [
                (f"{name}_cpu_ms_per_payment", _fmt(per_payment, 2)),
                (f"{name}_cpu_stack_pct", _fmt(report.cpu.stack_pct)),
                (f"{name}_cpu_client_pct", _fmt(report.cpu.client_pct)),
                (f"{name}_cpu_other_pct", _fmt(report.cpu.other_pct)),
            ]
    both = [reports.get(n) for n in ("raypay", "peer")]
    if all(r is not None and r.result is not None for r in both):
        ours, peer = both[0].result, both[1].result  # type: ignore[union-attr]
        ratio = ours.payments_per_s / peer.payments_per_s if peer.payments_per_s else math.nan
        lines.append(("ratio_throughput", _fmt(ratio, 3)))
        lines.append(("ratio_p99", _fmt(ours.latency.p99_ms / peer.latency.p99_ms, 3)))
        cpus = [reports[n].cpu for n in ("raypay", "peer")]
        if all(cpu is not None and cpu.stack_cpu_s > 0 for cpu in cpus):
            per = [
                c.stack_cpu_s / max(1, len(r.orders))
                for c, r in zip(cpus, (ours, peer), strict=True)
            ]
            lines.append(("ratio_cpu_per_payment", _fmt(per[0] / per[1], 2)))
    lines += plain_ratios(reports)
    ok = all(
        (r.plain.ok if r.plain is not None else r.result is not None and r.result.ok)
        for r in reports.values()
    )
    lines.append(("invariants", "ok" if ok else "FAILED"))
    return lines


def _on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(options: BenchOptions) -> int:
    """Run the benchmark; 0 if every side ran and kept every invariant."""
    signal.signal(signal.SIGTERM, _on_term)
    workdir = Path(tempfile.mkdtemp(prefix="raypay-bench-"))
    reports: dict[str, SideReport] = {}
    _say(f"scenario {asdict(options.scenario)}; work folder {workdir}")
    try:
        for name in options.sides:
            if name == "raypay":
                side: Side = RaypaySide(
                    workdir / "raypay", options.config, options.num_cpus, options.gateway
                )
            else:
                side = PeerSide(workdir / "peer", options.workers, options.gateway)
            reports[name] = _run_side(side, options)
    finally:
        if not options.keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    lines = figures(reports)
    if options.gateway is not None and options.kind == "plain":
        # Little's law: this many buyers, each charge this long, no CPU limit.
        bound = options.scenario.concurrency / (options.gateway.latency_ms / 1000)
        lines.insert(0, ("concurrency_bound_rps", _fmt(bound, 0)))
    for name, value in lines:
        print(f"{name} {value}", flush=True)
    if options.json_path:
        data: dict[str, Any] = {"figures": dict(lines), "scenario": asdict(options.scenario)}
        for name, report in reports.items():
            data[name] = {
                "error": report.error, "memorySamples": report.samples,
                "processesAtRest": report.rest_processes,
                "cpu": asdict(report.cpu) if report.cpu else None,
                "plain": asdict(report.plain) if report.plain else None,
                "result": report.result.as_dict(with_samples=False) if report.result else None,
            }  # fmt: skip
        with contextlib.suppress(OSError):
            Path(options.json_path).write_text(json.dumps(data, indent=1, default=str))
    return 0 if dict(lines).get("invariants") == "ok" else 1
