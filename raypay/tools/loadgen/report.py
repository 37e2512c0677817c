"""How a load run is shown: a text summary for the terminal, and a JSON file."""

from __future__ import annotations

import json
import math
from pathlib import Path

from raypay.tools.loadgen.runner import LoadResult
from raypay.tools.loadgen.stats import status_mix


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _pct(value: float) -> str:
    return f"{value * 100:g}%"


def describe(result: LoadResult) -> str:
    s = result.scenario
    arrival = s.arrival
    if s.arrival == "rate":
        arrival += f" {s.rate:g}/s"
    elif s.arrival == "ramp":
        arrival += f" over {s.ramp_seconds:g}s"
    return (
        f"{s.payments} payments, concurrency {s.concurrency}, {arrival}, "
        f"declines-once {_pct(s.declines)}, duplicates {_pct(s.duplicates)} "
        f"x{s.duplicate_count}, reservations {_pct(s.reservations)}, seed {s.seed}"
    )


def summary_lines(result: LoadResult) -> list[str]:
    """The end-of-run summary, one line per figure or check."""
    latency = result.latency
    mix = "  ".join(f"{code}: {count}" for code, count in status_mix(result.samples).items())
    lines = [
        f"run {result.run_id} against {result.target['baseUrl']} ({result.client})",
        f"  scenario     {describe(result)}",
        f"  throughput   {result.payments_per_s:.1f} payments/s   "
        f"{result.requests_per_s:.1f} requests/s   ({len(result.orders)} orders, "
        f"{len(result.samples)} requests in {result.elapsed_s:.2f} s)",
        f"  latency ms   p50 {_ms(latency.p50_ms)}   p90 {_ms(latency.p90_ms)}   "
        f"p99 {_ms(latency.p99_ms)}   max {_ms(latency.max_ms)}   mean {_ms(latency.mean_ms)}",
        f"  status mix   {mix or '-'}",
        f"  unexpected   {len(result.unexpected)} answers other than 2xx or a planned 402",
    ]
    lines += [f"               {line}" for line in result.unexpected[:5]]
    if (refunds := result.refund_phase) is not None:
        lines.append(
            f"  refunds      {refunds['ordersRefunded']} orders refunded, "
            f"{refunds['ordersFailed']} failed, {refunds['ordersSkipped']} skipped, in "
            f"{refunds['batches']} batch(es), {refunds['batchSeconds']} s "
            f"({refunds['refundsPerSecond']} refunds/s)"
        )
        fulfil = "  ".join(f"{k}: {v}" for k, v in sorted(refunds["fulfil"].items()))
        lines.append(f"  fulfil       {fulfil or '-'}")
    if result.checks:
        lines.append(f"  invariants   (verified in {result.verify_s:.1f} s)")
        width = max(len(check.name) for check in result.checks)
        for check in result.checks:
            mark = "ok  " if check.ok else "FAIL"
            lines.append(f"    {mark} {check.name:<{width}}  {check.detail}")
            lines += [f"           {violation}" for violation in check.violations]
        lines.append(f"  result       {'ok' if result.ok else 'INVARIANT VIOLATED'}")
    else:
        lines.append("  invariants   not checked")
    return lines


def print_summary(result: LoadResult) -> None:
    try:
        from rich.console import Console
        from rich.markup import escape
    except ImportError:
        print("\n".join(summary_lines(result)), flush=True)
        return
    console = Console(highlight=False, soft_wrap=True)
    for line in summary_lines(result):
        text = escape(line)
        if line.lstrip().startswith("FAIL") or "VIOLATED" in line:
            text = f"[bold red]{text}[/]"
        elif line.lstrip().startswith("ok ") or line.endswith("result       ok"):
            text = f"[green]{text}[/]"
        console.print(text)


def write_json(result: LoadResult, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result.as_dict(), indent=1, default=str))
