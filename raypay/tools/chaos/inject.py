"""Faults, done for real: each target's process found, then signalled by its PID.

Ray actors (shards, gateway, producer, the ingress replica) are found through Ray's
public state API (``ray.util.state.list_actors`` against the stack's dashboard), which
names each live actor's class and PID; redis-server and the broker are children of the
`raypay up` process (found in /proc, as ``raypay bench`` finds a stack's processes).
Ray restarts a killed actor, Serve a killed replica, `raypay up` a killed server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from raypay.tools.bench import procs
from raypay.tools.bench.wrk import role_of
from raypay.tools.chaos.schedule import Fault

ACTOR_CLASSES = {  # fault kind -> how the state API names the actor's class
    "kill-shard": "PaymentActor",
    "kill-gateway": "GatewaySimulatorActor",
    "kill-producer": "KafkaProducerActor",
    "kill-ingress": "ServeReplica:",
}
SERVER_ROLES = {"redis": "redis", "broker": "broker"}  # as bench.wrk.role_of names them


@dataclass(frozen=True, slots=True)
class Done:
    """A fault as it happened: at what time, on which process, or why it was skipped."""

    fault: Fault
    at_s: float
    target: str
    pid: int | None

    def describe(self) -> str:
        where = f"{self.target} pid {self.pid}" if self.pid else f"skipped: {self.target}"
        return f"t={self.at_s:6.1f}s  {self.fault.kind:<13} {where}"


class Injector:
    """Signals the processes of one stack: the `raypay up` process ``up_pid`` and its Ray
    cluster's dashboard at ``dashboard_url``."""

    def __init__(self, up_pid: int, dashboard_url: str, app: str = "raypay") -> None:
        self.up_pid, self.dashboard_url, self.app = up_pid, dashboard_url, app
        self.stopped: set[int] = set()  # SIGSTOPped and not yet continued

    def actors(self, class_prefix: str) -> list[tuple[str, int]]:
        """(name, PID) of the live actors whose class name starts with ``class_prefix``."""
        # The stack's dashboard checks the cluster's token (Ray 2.60); the state client
        # sends it (from `ray get-auth-token`'s places) when told the cluster uses one,
        # which Ray reads once, when it is first imported.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        from ray.util.state import list_actors

        found = list_actors(
            address=self.dashboard_url,
            filters=[("state", "=", "ALIVE")],
            limit=10_000,
            raise_on_missing_output=False,
        )
        named = []
        for actor in found:
            name, cls = _get(actor, "name") or "", _get(actor, "class_name") or ""
            if not cls.startswith(class_prefix) or not _get(actor, "pid"):
                continue
            if class_prefix == "ServeReplica:" and "PaymentIngress" not in cls:
                continue
            named.append((name or cls, int(_get(actor, "pid"))))
        return sorted(named)

    def server(self, role: str) -> int | None:
        """The PID of the live redis-server or broker `raypay up` runs, if one runs."""
        for pid in procs.descendants(self.up_pid):
            if pid != self.up_pid and role_of(pid) == SERVER_ROLES[role]:
                fields = procs._stat(pid)
                if fields and fields[0] not in ("Z", "X"):
                    return pid
        return None

    def _target(self, fault: Fault) -> tuple[str, int | None]:
        if fault.kind in ACTOR_CLASSES:
            found = self.actors(ACTOR_CLASSES[fault.kind])
            if not found:
                return f"no live {ACTOR_CLASSES[fault.kind]} actor", None
            name, pid = found[fault.pick % len(found)]
            return name, pid
        role = fault.kind.split("-", 1)[1]
        pid = self.server(role)
        return (role, pid) if pid else (f"no live {role}", None)

    async def do(self, fault: Fault, t0: float) -> Done:
        """Find the target (waiting up to 5 s for one that is restarting) and signal it."""
        deadline = time.monotonic() + 5.0
        while True:
            target, pid = await asyncio.to_thread(self._target, fault)
            if pid or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        done = Done(fault, time.perf_counter() - t0, target, pid)
        if pid is None:
            return done
        if fault.kind.startswith("kill-"):
            _signal(pid, signal.SIGKILL)
        else:
            _signal(pid, signal.SIGSTOP)
            self.stopped.add(pid)
            try:
                await asyncio.sleep(fault.pause_s)
            finally:
                self.resume(pid)
        return done

    def resume(self, pid: int) -> None:
        _signal(pid, signal.SIGCONT)
        self.stopped.discard(pid)

    def resume_all(self) -> None:
        """SIGCONT whatever is still stopped (a run cut short must leave nothing frozen)."""
        for pid in list(self.stopped):
            self.resume(pid)

    async def run(self, schedule: list[Fault], t0: float, say=print) -> list[Done]:
        """Each fault at its time (from ``t0``, a perf_counter), in order."""
        done: list[Done] = []
        try:
            for fault in schedule:
                wait = fault.at_s - (time.perf_counter() - t0)
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    happened = await self.do(fault, t0)
                except Exception as exc:  # the state API away (its dashboard is a process too)
                    happened = Done(fault, time.perf_counter() - t0, f"{type(exc).__name__}", None)
                done.append(happened)
                say(f"fault {happened.describe()}")
        finally:
            self.resume_all()
        return done


def _get(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else getattr(record, name, None)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
