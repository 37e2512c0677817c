"""Processes of a stack and their memory, from /proc (Linux).

PSS (proportional set size, ``/proc/<pid>/smaps_rollup``) shares each shared page among
the processes that map it, so the PSS of a process tree adds up to the memory it really
takes; summed RSS counts Ray's shared pages once per worker and overstates it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

PROC = Path("/proc")


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state, ppid, ...), or None if it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces or parentheses: split after the last ')'.
    return stat.rsplit(")", 1)[1].split()


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def identity(pid: int) -> tuple[int, int] | None:
    """(pid, start time in clock ticks): tells a process from a later one with its PID."""
    fields = _stat(pid)
    return (pid, int(fields[19])) if fields else None


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, parents first."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (parent := _parent(int(entry.name))) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        if pid == root and not (PROC / str(pid)).exists():
            continue
        tree.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return tree


def _kib(pid: int, field: str, file: str) -> int:
    try:
        text = (PROC / str(pid) / file).read_text()
    except OSError:  # gone, or not ours to read
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pss_mb(pids: list[int]) -> float:
    """Summed PSS of ``pids`` in MiB."""
    return sum(_kib(pid, "Pss", "smaps_rollup") for pid in pids) / 1024


def rss_mb(pids: list[int]) -> float:
    """Summed RSS of ``pids`` in MiB (overcounts shared pages)."""
    return sum(_kib(pid, "VmRSS", "status") for pid in pids) / 1024


def cpu_ticks(pids: list[int]) -> int:
    """CPU time (user + system, clock ticks) the live processes of ``pids`` have used."""
    total = 0
    for pid in pids:
        if fields := _stat(pid):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def machine_busy_ticks() -> int:
    """Clock ticks all CPUs of the machine spent busy since boot (not idle, not iowait)."""
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    return sum(values[:8]) - values[3] - values[4]  # user..steal minus idle, iowait


def name(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def still_running(known: set[tuple[int, int]]) -> list[int]:
    """PIDs of ``known`` identities that still run (the same process, not a PID reused)."""
    return [pid for pid, start in sorted(known) if identity(pid) == (pid, start)]


def signal_all(known: set[tuple[int, int]], sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` to each process of ``known`` that still runs, by PID; how many."""
    sent = 0
    for pid in still_running(known):
        try:
            os.kill(pid, sig)
            sent += 1
        except (ProcessLookupError, PermissionError):
            pass
    return sent
