"""The plain scenario, driven by wrk: every request pays a new seeded order with
``pm_card_visa`` (no duplicates, no declines, no reservations).

wrk (Debian's ``wrk`` package) is a C load generator that costs the machine almost
nothing, so the figures are the stack's own. Its Lua script walks a file of request
bodies, one seeded order per line, and prints one JSON line at the end: requests,
duration, latency percentiles, socket errors and answers that were not 2xx.

CPU per payment is read from /proc per process of the stack, grouped by role (the
ingress replica, the shards, the gateway, the producer, Redis, the broker, HAProxy,
and Ray's own processes), so the table says where the milliseconds go.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from raypay.tools.bench import procs

LUA = r"""
local bodies, n = {}, 0
local key = os.getenv("RAYPAY_WRK_KEY")
local file = os.getenv("RAYPAY_WRK_BODIES")

init = function(args)
  for line in io.lines(file) do bodies[#bodies + 1] = line end
end

request = function()
  n = n + 1
  local body = bodies[n]
  if body == nil then body = bodies[1] end  -- out of orders: replays (200), reported
  return wrk.format("POST", "/v1/payments", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end

done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, "non2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    non_2xx: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk (Debian's package)")
    return found


def write_bodies(orders: list[dict[str, str]], path: Path) -> Path:
    """One JSON request body per seeded order."""
    lines = (
        json.dumps(
            {
                "orderId": order["orderId"],
                "customerId": order["customerId"],
                "amount": order["amount"],
                "currency": order["currency"],
                "paymentMethod": "pm_card_visa",
            },
            separators=(",", ":"),
        )
        for order in orders
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(
    base_url: str, api_key: str, bodies: Path, seconds: float, connections: int, workdir: Path
) -> WrkResult:
    """wrk with one thread (one core's worth at most; it needs far less) against the app."""
    script = workdir / "plain.lua"
    script.write_text(LUA)
    argv = [require_wrk(), "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "10s",
            "-s", str(script), base_url]  # fmt: skip
    env = {"RAYPAY_WRK_KEY": api_key, "RAYPAY_WRK_BODIES": str(bodies), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith('{"requests"')), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-500:]}")
    data = json.loads(line)
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        non_2xx=data["non2xx"],
    )


ROLES = (  # (role, what the process's command line contains), first match wins
    ("ingress", "ServeReplica"),
    ("shards", "PaymentActor"),
    ("gateway", "GatewaySimulatorActor"),
    ("producer", "KafkaProducerActor"),
    ("redis", "redis-server"),
    ("broker", "tansu"),
    ("haproxy", "haproxy"),
    ("serve controller", "ServeController"),
    ("haproxy manager", "HAProxyManager"),
    ("dashboard", "ray-dashboard"),
    ("peer workers", "uvicorn"),
    ("peer workers", "multiprocessing.spawn"),
    ("dashboard agent", "dashboard_agent"),
    ("dashboard agent", "agent.py"),
    ("dashboard", "dashboard.py"),
    ("gcs", "gcs_server"),
    ("raylet", "raylet"),
    ("log monitor", "log_monitor"),
)


def role_of(pid: int) -> str:
    try:
        cmdline = (procs.PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    for role, marker in ROLES:
        if marker in cmdline:
            return role
    return "other"


Snapshot = dict[tuple[int, int], tuple[str, int]]  # (pid, start) -> (role, CPU ticks)


def snapshot(pids: list[int]) -> Snapshot:
    """Each live process's role and CPU ticks so far."""
    taken: Snapshot = {}
    for pid in pids:
        if (ident := procs.identity(pid)) is not None:
            taken[ident] = (role_of(pid), procs.cpu_ticks([pid]))
    return taken


def ticks_between(before: Snapshot, after: Snapshot) -> Counter[str]:
    """CPU ticks each role spent between two snapshots (a process started in between
    counts from zero; one that ended in between is lost, and rare)."""
    spent: Counter[str] = Counter()
    for ident, (role, ticks) in after.items():
        spent[role] += ticks - before.get(ident, (role, 0))[1]
    return spent
