"""Numbers of a load run: percentiles, the latency summary, the status-code mix, throughput.

Pure functions over plain samples, so they are unit-tested without a network.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PERCENTILES = (50.0, 90.0, 99.0)


@dataclass(frozen=True, slots=True)
class Sample:
    """One HTTP attempt: when it started (seconds since the run began), how long it took,
    what came back (0 = no HTTP answer: connection error or client timeout), and why it
    was sent (``first``, ``duplicate``, ``after_decline``; ``retry`` attempts count up)."""

    started_s: float
    latency_s: float
    status: int
    kind: str = "first"
    attempt: int = 0


def percentile(values: Sequence[float], q: float, *, presorted: bool = False) -> float:
    """The ``q``-th percentile (0..100), interpolated linearly between the closest ranks
    (numpy's default method). NaN for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    if not values:
        return math.nan
    ordered = values if presorted else sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float]:
        return {
            "count": self.count, "mean_ms": self.mean_ms, "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms,
        }  # fmt: skip


def summarize(latencies_s: Iterable[float]) -> LatencySummary:
    """p50/p90/p99/max and mean of latencies given in seconds, reported in ms."""
    ordered = sorted(value * 1000.0 for value in latencies_s)
    if not ordered:
        return LatencySummary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    p50, p90, p99 = (percentile(ordered, q, presorted=True) for q in PERCENTILES)
    return LatencySummary(len(ordered), sum(ordered) / len(ordered), p50, p90, p99, ordered[-1])


def status_mix(samples: Iterable[Sample]) -> dict[str, int]:
    """Count per status code, as strings sorted by code (``"0"`` = no HTTP answer)."""
    counts = Counter(sample.status for sample in samples)
    return {str(code): counts[code] for code in sorted(counts)}


def rate(count: int, seconds: float) -> float:
    """Events per second; 0 when no time passed."""
    return count / seconds if seconds > 0 else 0.0


def time_series(samples: Sequence[Sample], bucket_s: float = 1.0) -> list[dict[str, float]]:
    """Per time bucket (by start time): requests sent, p50 and p99 latency (ms)."""
    if not samples:
        return []
    buckets: dict[int, list[float]] = {}
    for sample in samples:
        buckets.setdefault(int(sample.started_s // bucket_s), []).append(sample.latency_s)
    rows = []
    for index in sorted(buckets):
        ordered = sorted(value * 1000.0 for value in buckets[index])
        rows.append(
            {
                "t_s": index * bucket_s,
                "requests": len(ordered),
                "p50_ms": percentile(ordered, 50, presorted=True),
                "p99_ms": percentile(ordered, 99, presorted=True),
            }
        )
    return rows
