"""The two systems the benchmark measures, each started fresh and stopped by PID.

``RaypaySide`` is ``raypay up`` itself (a child process with a data folder of its own:
embedded redis-server, Tansu, a local Ray, the Serve app from serve_config.yaml).
``PeerSide`` is a redis-server and a Tansu of its own, plus ``uvicorn
raypay.tools.bench.peer:app --workers N`` (a FastAPI service written apart from
raypay). Each knows the processes of its stack (for memory)
and leaves none behind: a stop that times out ends the rest by PID.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from raypay.domain import auth
from raypay.settings import Settings
from raypay.tools.bench import procs
from raypay.tools.launch import find_serve_config
from raypay.tools.loadgen.cli import stack_api_key
from raypay.tools.loadgen.evidence import Target
from raypay.tools.stack import (
    Server,
    StackError,
    _die_with_parent,
    create_topics,
    free_port,
    start_broker,
    start_redis,
)
from raypay.tools.up import find_stack

# Variables that would point `raypay up` at outside services instead of the embedded ones.
EXTERNAL = ("REDIS_URL", "RAYPAY_REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS",
            "RAYPAY_KAFKA_BOOTSTRAP_SERVERS", "RAY_ADDRESS", "RAYPAY_KEY_PREFIX")  # fmt: skip


@dataclass(frozen=True)
class Gateway:
    """A slower simulated gateway: each charge takes ``latency_ms`` ± ``jitter_ms``
    (uniform), for the realistic scenario; ``max_ongoing`` requests per ingress replica."""

    latency_ms: float
    jitter_ms: float
    max_ongoing: int = 5000

    def serve_config(self, base: str | None, folder: Path) -> Path:
        """A copy of the Serve config with this simulator and room for every buyer."""
        path = Path(base) if base else find_serve_config()
        config = yaml.safe_load(path.read_text())
        for app in config["applications"]:
            app.setdefault("args", {})["simulator"] = {
                **app["args"].get("simulator", {}),
                "latency_ms": max(0.0, self.latency_ms - self.jitter_ms),
                "jitter_ms": 2 * self.jitter_ms,
            }
            for deployment in app.get("deployments", []):
                deployment["max_ongoing_requests"] = self.max_ongoing
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / "serve_config.yaml"
        copy.write_text(yaml.safe_dump(config))
        return copy

    def peer_env(self) -> dict[str, str]:
        return {
            "RAYPAY_PEER_LATENCY_MS": str(max(0.0, self.latency_ms - self.jitter_ms)),
            "RAYPAY_PEER_JITTER_MS": str(2 * self.jitter_ms),
        }


class Side:
    """Roots of a stack's process trees, the processes seen so far, and their memory."""

    name = "side"

    def __init__(self) -> None:
        self.roots: list[Server] = []
        self.seen: set[tuple[int, int]] = set()
        self.target: Target | None = None
        self.startup_s = 0.0

    def pids(self) -> list[int]:
        found = [pid for root in self.roots if root.alive() for pid in procs.descendants(root.pid)]
        self.seen.update(ident for pid in found if (ident := procs.identity(pid)))
        return found

    def memory(self) -> tuple[float, float, int]:
        """(PSS MiB, summed RSS MiB, processes) of the whole stack right now."""
        pids = self.pids()
        return procs.pss_mb(pids), procs.rss_mb(pids), len(pids)

    def breakdown(self) -> dict[str, float]:
        """PSS MiB per process ("pid name"), largest first."""
        sizes = {f"{pid} {procs.name(pid)}": procs.pss_mb([pid]) for pid in self.pids()}
        return dict(sorted(sizes.items(), key=lambda item: -item[1]))

    def stop(self) -> None:
        for root in reversed(self.roots):
            root.stop(timeout=60.0)
        if procs.signal_all(self.seen):  # a stop that timed out can leave grandchildren
            time.sleep(3.0)
            procs.signal_all(self.seen, 9)


class RaypaySide(Side):
    name = "raypay"

    def __init__(
        self,
        data_dir: Path,
        config: str | None,
        num_cpus: int,
        gateway: Gateway | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.data_dir, self.config, self.num_cpus = data_dir, config, num_cpus
        self.env = env  # `raypay up`'s environment; None: this process's
        self.state: dict | None = None  # the stack's state file, once it runs
        if gateway is not None:
            self.config = str(gateway.serve_config(config, data_dir))

    def start(self, timeout_s: float = 180.0) -> None:
        argv = [sys.executable, "-m", "raypay.tools.cli", "--data-dir", str(self.data_dir), "up"]
        argv += ["--num-cpus", str(self.num_cpus)]
        argv += ["--config", self.config] if self.config else []
        env = {k: v for k, v in (self.env or os.environ).items() if k not in EXTERNAL}
        # HAProxy's own listeners (metrics, stats) on free ports: another stack on this
        # machine may hold the preferred 9101 and 8404, and HAProxy would not start.
        for name in ("RAY_SERVE_HAPROXY_METRICS_PORT", "RAY_SERVE_HAPROXY_STATS_PORT"):
            env.setdefault(name, str(free_port()))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "up.log"
        started = time.monotonic()
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent(), env=env,
            )  # fmt: skip
        up = Server("raypay up", proc, "", log_path)
        self.roots.append(up)
        deadline = started + timeout_s
        while (state := find_stack(self.data_dir)) is None:
            if not up.alive() or time.monotonic() > deadline:
                why = "exited" if not up.alive() else f"not ready after {timeout_s:.0f}s"
                raise StackError(f"raypay up {why}; log {log_path}:\n{up.log_tail(30)}")
            time.sleep(0.1)
        self.startup_s = time.monotonic() - started
        self.state = state
        settings = Settings()
        prefix = Settings.model_fields["key_prefix"].default  # RAYPAY_KEY_PREFIX is not passed
        self.target = Target(
            base_url=state["api_url"], redis_url=state["redis_url"],
            kafka=state["kafka_bootstrap_servers"], key_prefix=prefix,
            topics=(settings.topic_succeeded, settings.topic_failed),
            api_key=os.environ.get("RAYPAY_API_KEY") or stack_api_key(state),
        )  # fmt: skip


class PeerSide(Side):
    name = "peer"
    prefix = "peer"

    def __init__(self, data_dir: Path, workers: int, gateway: Gateway | None = None) -> None:
        super().__init__()
        self.data_dir, self.workers, self.gateway = data_dir, workers, gateway

    def start(self, timeout_s: float = 60.0) -> None:
        settings = Settings()
        started = time.monotonic()
        redis = start_redis(self.data_dir, free_port())
        self.roots.append(redis)
        broker = start_broker(free_port(), self.data_dir / "logs")
        self.roots.append(broker)
        topics = settings.topics()
        create_topics(broker.url, topics, partitions=3)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "uvicorn", "raypay.tools.bench.peer:app",
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.workers),
                "--no-access-log", "--log-level", "warning"]  # fmt: skip
        key = auth.new_key()  # the peer checks keys as raypay does; this one is configured
        env = {
            "RAYPAY_REDIS_URL": redis.url, "RAYPAY_KAFKA_BOOTSTRAP_SERVERS": broker.url,
            "RAYPAY_KAFKA_IDEMPOTENCE": "false", "RAYPAY_KEY_PREFIX": self.prefix,
            "RAYPAY_PEER_RELAY_LOCK": str(self.data_dir / "relay.lock"),
            "RAYPAY_API_KEYS": f"{auth.hash_key(key)}:{auth.Role.CHECKOUT}",
            "RAYPAY_PEER_LOG": str(self.data_dir / "logs" / "payments.log"),
            **(self.gateway.peer_env() if self.gateway else {}),
        }  # fmt: skip
        peer = Server.spawn("peer", argv, url, self.data_dir / "logs" / "peer.log", **env)
        self.roots.append(peer)
        peer.wait_ready(lambda: _answers(f"{url}/readyz"), timeout_s)
        self.startup_s = time.monotonic() - started
        self.target = Target(
            base_url=url, redis_url=redis.url, kafka=broker.url, key_prefix=self.prefix,
            topics=tuple(topics), api_key=key,
        )  # fmt: skip


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
