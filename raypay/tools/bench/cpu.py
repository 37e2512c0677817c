"""Where the machine's CPU went while a side was loaded: its stack, the load client (this
process), or anything else on the machine (other jobs, which skew every figure).

CPU per payment of the stack is the benchmark's figure least disturbed by other load.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from raypay.tools.bench import procs

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuShare:
    seconds: float
    stack_pct: float  # of the whole machine (all cores = 100)
    client_pct: float
    other_pct: float
    stack_cpu_s: float


def _self_ticks() -> float:
    times = os.times()
    return (times.user + times.system) * TICKS


class CpuMeter:
    """Ticks at ``start()`` and at ``stop()``; the stack's processes are looked up each time
    (processes of the stack that exit in between are not counted)."""

    def __init__(self, stack_pids) -> None:  # a callable returning the stack's PIDs
        self.stack_pids = stack_pids
        self._start: tuple[float, int, int, float] | None = None
        self.share: CpuShare | None = None

    def _read(self) -> tuple[float, int, int, float]:
        pids = self.stack_pids()
        return time.monotonic(), procs.machine_busy_ticks(), procs.cpu_ticks(pids), _self_ticks()

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> CpuShare | None:
        if self._start is None:
            return None
        t0, busy0, stack0, self0 = self._start
        t1, busy1, stack1, self1 = self._read()
        capacity = (t1 - t0) * TICKS * (os.cpu_count() or 1)
        if capacity <= 0:
            return None
        stack, client = stack1 - stack0, self1 - self0
        other = max(0.0, (busy1 - busy0) - stack - client)
        self.share = CpuShare(
            seconds=t1 - t0,
            stack_pct=100 * stack / capacity,
            client_pct=100 * client / capacity,
            other_pct=100 * other / capacity,
            stack_cpu_s=stack / TICKS,
        )
        return self.share
