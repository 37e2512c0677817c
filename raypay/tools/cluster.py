"""A local multi-node Ray cluster for ``raypay up --nodes N``: a head and N-1 worker
nodes on this machine, each its own ``ray start --block`` process with its own logical
resources, joined the way machines join a real cluster (``ray start --head``, then
``ray start --address=…``).

Why ``ray start`` processes and not ``ray.cluster_utils.Cluster``: each node is then a
process tree of its own, so a test can SIGKILL one node as a lost machine would go;
each node gets an environment of its own (Serve's HAProxy keeps its config, sockets and
listeners per node, and two nodes on one machine must not share them); and it is the
same command the README gives for real machines. ``--block`` keeps ``ray start`` in
the foreground as the node's supervisor: SIGTERM stops the node's processes cleanly.

Ports: the GCS port is a free ephemeral one, never Ray's default 6379 (Redis's);
every other listener of a node (dashboard agent, metrics, client server) is picked
free too, so several nodes, and other Ray instances, share the machine. The cluster
keeps its session files under a temporary folder of its own (``--temp-dir``): Ray
writes the address of the last cluster started there, and a plain ``ray.init()``
elsewhere on the machine must not find and join this one.

Node loss is detected by the GCS health check of each raylet; on the local cluster
it runs every second and gives up after five failures (Ray's defaults: every 3 s, five
failures), set through Ray's ``RAY_health_check_*`` variables on the head unless the
environment sets them already.
"""

from __future__ import annotations

import concurrent.futures
import copy
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raypay.tools.launch import EDGE_ENV, SERVE_LOG_ENV, fast_ingress_env, ray_cli
from raypay.tools.stack import LOCALHOST, Server, StackError, free_port

NODE_LABEL = "raypay-node"  # a Ray node label: which `ray start` process a node is
OBJECT_STORE_BYTES = 256 * 1024 * 1024  # per node: payments move no large objects
STARTED = "Ray runtime started"  # what `ray start` logs once the node's processes run

# The GCS's health check of each raylet (Ray's variables; read by the head's GCS).
HEALTH_CHECK_ENV = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "2000",
    "RAY_health_check_failure_threshold": "5",
}

# `ray start --block` drains its node for up to 30 s on SIGTERM, waiting for the
# node's actors to move; raypay up stops every node at once after Serve, so there is
# nowhere to move to (a lost node is SIGKILLed, never drained).
STOP_ENV = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}


@dataclass
class LocalNode:
    """One node: its name (also its ``raypay-node`` label) and its ``ray start`` process."""

    name: str
    head: bool
    server: Server

    @property
    def pid(self) -> int:
        return self.server.pid


@dataclass
class LocalCluster:
    """The nodes, where the GCS and the dashboard are, and the session folder."""

    gcs_address: str
    dashboard_url: str
    temp_dir: Path
    metrics_port: int
    nodes: list[LocalNode] = field(default_factory=list)

    @property
    def logs_dir(self) -> Path:
        return self.temp_dir / "session_latest" / "logs"

    def describe(self) -> list[dict[str, object]]:
        """For the state file: each node's name, role, pid and log."""
        return [
            {"name": n.name, "head": n.head, "pid": n.pid, "log": str(n.server.log_path)}
            for n in self.nodes
        ]

    def lost(self) -> list[LocalNode]:
        """Worker nodes whose ``ray start`` has exited (the head is not a worker)."""
        return [n for n in self.nodes if not n.head and not n.server.alive()]

    def stop(self, timeout: float = 20.0) -> None:
        """Every node at once (SIGTERM: each ``ray start`` stops its node's processes),
        SIGKILL after ``timeout``. One after the other, a loaded node's graceful stop
        took about 30 s each."""
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes) or 1) as pool:
            list(pool.map(lambda node: node.server.stop(timeout), self.nodes))


def _node_env(head: bool) -> dict[str, str]:
    """What a node's processes (raylet, agents, every worker) inherit besides this
    process's environment: the Serve edge and log settings, on the head the health-check
    timing (a value this process already has wins: an operator's override), and Serve's
    fast ingress with files and listeners of the node's own (always the node's own:
    two nodes on one machine sharing HAProxy's config file rewrite each other's)."""
    from raypay.settings import Settings

    env = {**EDGE_ENV, **SERVE_LOG_ENV, **STOP_ENV, **(HEALTH_CHECK_ENV if head else {})}
    env = {name: value for name, value in env.items() if name not in os.environ}
    if Settings().fast_ingress:
        # Every node's HAProxy listens on the one HTTP port, as machines behind one
        # address would: SO_REUSEPORT lets the kernel share it among them (Serve turns
        # it off by default, and a second node's HAProxy then cannot bind).
        env.update({**fast_ingress_env(), "SERVE_SOCKET_REUSE_PORT_ENABLED": "1"})
        if not head:  # HAProxy's metrics and stats: the head's at the preferred ports
            env["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
            env["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())
    return env


def _ensure_token() -> None:
    """Token auth, as Ray 2.60 gives a new local cluster: on unless set otherwise, with
    a token made once (``ray get-auth-token --generate``; it keeps an existing one)."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    if os.environ["RAY_AUTH_MODE"].lower() != "token":
        return
    done = subprocess.run(
        [ray_cli(), "get-auth-token", "--generate"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise StackError(f"`ray get-auth-token --generate` failed: {done.stderr[-500:]}")


def _started(server: Server) -> bool:
    try:
        return STARTED in server.log_path.read_text(errors="replace")
    except OSError:
        return False


def _port_accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection((LOCALHOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _common_flags(name: str, num_cpus: int) -> list[str]:
    return [
        "--block", f"--node-ip-address={LOCALHOST}", f"--num-cpus={num_cpus}",
        f"--object-store-memory={OBJECT_STORE_BYTES}", f"--labels={NODE_LABEL}={name}",
        f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats",
    ]  # fmt: skip


def start_head(
    log_dir: Path, num_cpus: int, dashboard_port: int, timeout: float = 120.0
) -> LocalCluster:
    """``ray start --head`` with the dashboard; returns the cluster with its head."""
    _ensure_token()
    # Short: Ray puts Unix sockets under it (108 bytes at most for a socket path).
    temp_dir = Path(tempfile.mkdtemp(prefix="rpc"))
    gcs_port, metrics_port = free_port(), free_port()
    argv = [
        ray_cli(), "start", "--head", f"--port={gcs_port}", f"--temp-dir={temp_dir}",
        "--include-dashboard=true", f"--dashboard-host={LOCALHOST}",
        f"--dashboard-port={dashboard_port}", f"--ray-client-server-port={free_port()}",
        f"--metrics-export-port={metrics_port}", *_common_flags("node-0", num_cpus),
    ]  # fmt: skip
    server = Server.spawn(
        "ray head (node-0)", argv, f"{LOCALHOST}:{gcs_port}", log_dir / "ray-node-0.log",
        **_node_env(head=True),
    )  # fmt: skip
    server.wait_ready(lambda: _started(server) and _port_accepts(dashboard_port), timeout)
    cluster = LocalCluster(
        f"{LOCALHOST}:{gcs_port}", f"http://{LOCALHOST}:{dashboard_port}", temp_dir, metrics_port
    )
    cluster.nodes.append(LocalNode("node-0", True, server))
    return cluster


def add_worker(
    cluster: LocalCluster, log_dir: Path, num_cpus: int, timeout: float = 120.0
) -> LocalNode:
    """``ray start --address=<head>``: one more node on this machine."""
    name = f"node-{len(cluster.nodes)}"
    argv = [ray_cli(), "start", f"--address={cluster.gcs_address}",
            f"--metrics-export-port={free_port()}", *_common_flags(name, num_cpus)]  # fmt: skip
    server = Server.spawn(
        f"ray worker ({name})", argv, cluster.gcs_address, log_dir / f"ray-{name}.log",
        **_node_env(head=False),
    )  # fmt: skip
    server.wait_ready(lambda: _started(server), timeout)
    node = LocalNode(name, False, server)
    cluster.nodes.append(node)
    return node


def start_cluster(log_dir: Path, nodes: int, num_cpus: int, dashboard_port: int) -> LocalCluster:
    """A head and ``nodes - 1`` workers, each with ``num_cpus`` logical CPUs; on a
    failure, whatever already runs is stopped before the error goes up."""
    if nodes < 1:
        raise ValueError("nodes must be >= 1")
    for attempt in range(3):
        try:
            cluster = start_head(log_dir, num_cpus, dashboard_port)
            break
        except StackError as exc:  # a port taken between its check and the bind
            if attempt == 2 or "already" not in str(exc):  # in use, occupied
                raise
            dashboard_port = free_port()
    try:
        for _ in range(nodes - 1):
            add_worker(cluster, log_dir, num_cpus)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_for_nodes(count: int, timeout: float = 60.0) -> list[dict]:
    """From a connected driver: until ``count`` nodes are alive; those nodes."""
    import ray

    deadline = time.monotonic() + timeout
    while True:
        alive = [n for n in ray.nodes() if n.get("Alive")]
        if len(alive) >= count:
            return alive
        if time.monotonic() > deadline:
            raise StackError(f"{len(alive)} of {count} Ray nodes alive after {timeout:.0f}s")
        time.sleep(0.25)


SPREAD_ARGS = ("shards", "gateway_pool")  # applications[].args raised to one per node


def spread_config(raw: dict[str, Any], nodes: int) -> tuple[dict[str, Any], list[str]]:
    """serve_config.yaml for a cluster of ``nodes``: at least one shard and one gateway
    actor per node (the actors spread, actors/topology.py) and one replica per node of
    every deployment with a fixed ``num_replicas`` (Serve spreads replicas over nodes),
    so every node's fast ingress has a replica near it. Only raises, never lowers; a
    value the file leaves out, or autoscaling, is left as it is. Returns the new config
    and one line per change."""
    raw = copy.deepcopy(raw)
    notes = []
    for app in raw.get("applications") or []:
        args = app.get("args") or {}
        for name in SPREAD_ARGS:
            if isinstance(args.get(name), int) and args[name] < nodes:
                notes.append(f"{app.get('name')}: {name} {args[name]} -> {nodes} (one per node)")
                args[name] = nodes
        for deployment in app.get("deployments") or []:
            replicas = deployment.get("num_replicas")
            if isinstance(replicas, int) and replicas < nodes:
                notes.append(
                    f"{app.get('name')}: {deployment.get('name')} replicas {replicas} -> {nodes}"
                    " (one per node)"
                )
                deployment["num_replicas"] = nodes
    return raw, notes
