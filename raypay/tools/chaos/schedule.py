"""The fault schedule of a chaos run: which fault, when, from a seed.

Every ``every_s`` (drawn uniformly) one of :data:`KINDS`: SIGKILL a payment shard, the
gateway actor, the Kafka producer actor, the ingress replica, redis-server or the broker,
or SIGSTOP Redis or the broker for a moment (``pause_s``, then SIGCONT). At least one
broker kill per run. A server (Redis, broker) is killed at most once per
``server_gap_s``: the supervisor of `raypay up` counts a server that dies again soon after
its start as crash-looping (up.py ``STABLE_S``), which a real crash loop is and this is not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KINDS = (
    "kill-shard",
    "kill-gateway",
    "kill-producer",
    "kill-ingress",
    "kill-redis",
    "kill-broker",
    "pause-redis",
    "pause-broker",
)
SERVER_KILLS = {"kill-redis": "redis", "kill-broker": "broker"}


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float  # from the first request
    kind: str
    pick: int = 0  # which of several candidates (shards): index modulo their number
    pause_s: float = 0.0  # pause-*: how long the process stays stopped

    def describe(self) -> str:
        extra = f" for {self.pause_s:.1f} s" if self.pause_s else ""
        extra += f" (#{self.pick})" if self.kind == "kill-shard" else ""
        return f"t={self.at_s:6.1f}s  {self.kind}{extra}"


def make_schedule(
    seed: int,
    seconds: float,
    every_s: tuple[float, float] = (1.5, 2.5),
    start_s: float = 2.0,
    pause_s: tuple[float, float] = (0.5, 2.0),
    server_gap_s: float = 12.0,
    kinds: tuple[str, ...] = KINDS,
) -> list[Fault]:
    """The faults of a run lasting ``seconds``; the same seed gives the same schedule.
    ``kinds``: a subset, to look at some faults alone (a broker kill is still added)."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    last_kill: dict[str, float] = {}
    at = start_s
    while at < seconds:
        allowed = [
            kind
            for kind in kinds
            if kind not in SERVER_KILLS or at - last_kill.get(kind, -server_gap_s) >= server_gap_s
        ]
        kind = rng.choice(allowed or ["kill-shard"])
        pause = round(rng.uniform(*pause_s), 2) if kind.startswith("pause-") else 0.0
        faults.append(Fault(round(at, 2), kind, rng.randrange(1000), pause))
        if kind in SERVER_KILLS:
            last_kill[kind] = at
        at += rng.uniform(*every_s)
    if faults and not any(f.kind == "kill-broker" for f in faults):
        # The promise under test most of all: a broker that forgot everything.
        middle = min(range(len(faults)), key=lambda i: abs(faults[i].at_s - seconds / 2))
        faults[middle] = Fault(faults[middle].at_s, "kill-broker", faults[middle].pick)
    return faults


def summary(faults: list[Fault]) -> dict[str, int]:
    """How many of each kind, in :data:`KINDS` order."""
    return {kind: n for kind in KINDS if (n := sum(1 for f in faults if f.kind == kind))}
