"""Progress while a run fires: a rich live bar when rich is installed and the output is a
terminal, else a plain line every few seconds (logs, CI, the benchmark's stderr)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from raypay.tools.loadgen.runner import Progress, Silent, Snapshot


def _mix(statuses: dict[int, int]) -> str:
    return " ".join(f"{code}:{count}" for code, count in sorted(statuses.items()))


class Throttle:
    """Lets a message through when its kind (text before ':') changed or every ``every_s``."""

    def __init__(self, every_s: float) -> None:
        self.every_s, self.kind, self.at = every_s, "", 0.0

    def __call__(self, message: str) -> bool:
        kind, now = message.split(":", 1)[0], time.monotonic()
        if kind == self.kind and now - self.at < self.every_s:
            return False
        self.kind, self.at = kind, now
        return True


class PlainProgress:
    """A line per ``every_s`` seconds, and phase messages (throttled alike)."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 2.0, label: str = "") -> None:
        self.stream, self.every_s, self.label = stream or sys.stderr, every_s, label
        self._last = 0.0
        self._throttle = Throttle(every_s)

    def _say(self, text: str) -> None:
        prefix = f"[{self.label}] " if self.label else ""
        print(prefix + text, file=self.stream, flush=True)

    def start(self, total_orders: int) -> None:
        self._say(f"firing {total_orders} orders")
        self._last = time.monotonic()

    def update(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s and snapshot.orders_done < snapshot.orders:
            return
        self._last = now
        rps = snapshot.requests / snapshot.elapsed_s if snapshot.elapsed_s else 0.0
        self._say(
            f"{snapshot.elapsed_s:6.1f}s  orders {snapshot.orders_done}/{snapshot.orders}  "
            f"requests {snapshot.requests} ({rps:.0f}/s)  p99(recent) "
            f"{snapshot.recent_p99_ms:.0f} ms  [{_mix(snapshot.statuses)}]"
        )

    def phase(self, message: str) -> None:
        if self._throttle(message):
            self._say(message)

    def stop(self) -> None: ...


class RichProgress:
    """A rich progress bar with throughput, recent p99 and the status mix."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(stderr=True, highlight=False)
        self.bar = Progress(
            TextColumn("paying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=False,
            refresh_per_second=4,
        )
        self.task = None
        self._throttle = Throttle(2.0)

    def start(self, total_orders: int) -> None:
        self.task = self.bar.add_task("pay", total=total_orders, info="")
        self.bar.start()

    def update(self, snapshot: Snapshot) -> None:
        if self.task is None:
            return
        rps = snapshot.requests / snapshot.elapsed_s if snapshot.elapsed_s else 0.0
        info = f"{rps:,.0f} req/s  p99 {snapshot.recent_p99_ms:,.0f} ms  {_mix(snapshot.statuses)}"
        self.bar.update(self.task, completed=snapshot.orders_done, info=info)

    def phase(self, message: str) -> None:
        if self._throttle(message):
            self.console.print(f"[dim]{message}[/]")

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()


def make_progress(kind: str = "auto", label: str = "") -> Progress:
    """``auto``: rich on a terminal if installed, else plain; also ``rich``, ``plain``, ``none``."""
    if kind == "none":
        return Silent()
    if kind in ("auto", "rich"):
        try:
            import rich  # noqa: F401
        except ImportError:
            if kind == "rich":
                raise
        else:
            if kind == "rich" or sys.stderr.isatty():
                return RichProgress()
    return PlainProgress(label=label)
