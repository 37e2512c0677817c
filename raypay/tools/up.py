"""``raypay up``: start the whole stack, print where it is, stop it in reverse order.

Start order (each step only if not given from outside):

    redis-server (unless REDIS_URL)  →  Tansu + topics (unless KAFKA_BOOTSTRAP_SERVERS)
    →  Ray (local, ``--nodes N``: a local cluster of N nodes, or RAY_ADDRESS)
    →  Serve app from serve_config.yaml  →  GET /readyz

Every started piece registers its stop on one ``ExitStack`` the moment it exists, so
Ctrl-C, SIGTERM, a failed start-up or a dying server all unwind the same way:
Serve, Ray (and the local cluster's nodes), broker, Redis (graceful: the AOF is
fsynced), then the state file.
``<data_dir>/stack.json`` tells other tools (``raypay where``, seed, load test) where
everything is; :func:`find_stack` reads it.

On its first start (per Redis) it creates an admin API key: the hash goes to Redis,
the key is printed once and kept in ``<data_dir>/api-key`` (mode 0600), which
:func:`read_api_key` reads for tools; the state names that file, never the key.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from raypay.adapters import key_store
from raypay.domain import auth
from raypay.settings import Settings
from raypay.tools import cluster as local_cluster
from raypay.tools import launch
from raypay.tools.stack import (
    Server,
    StackError,
    create_topics,
    pick_port,
    start_broker,
    start_redis,
)

STATE_FILE = "stack.json"
API_KEY_FILE = "api-key"
REDIS_PORT, KAFKA_PORT, DASHBOARD_PORT = 6380, 9092, 8265


@dataclass
class UpOptions:
    data_dir: Path
    config: str | None = None
    num_cpus: int = 2  # of the local Ray; with nodes > 1, of each node
    nodes: int = 1  # > 1: a local multi-node cluster (raypay/tools/cluster.py)
    partitions: int = 3
    ready_timeout: float = 120.0
    redis_cluster: bool = False  # an embedded Redis Cluster (3 masters, a replica each)


@dataclass
class _Stores:
    redis_url: str
    kafka: str
    env: dict[str, str]
    servers: list[Supervised] = field(default_factory=list)


def _say(message: str) -> None:
    print(message, flush=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def find_stack(data_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The running stack's state (URLs, pid), or None if no live ``raypay up`` owns it."""
    path = Path(data_dir or Settings().data_dir).resolve() / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid") if isinstance(state, dict) else None
    return state if isinstance(pid, int) and _pid_alive(pid) else None


def read_api_key(data_dir: str | Path | None = None) -> str | None:
    """The admin key ``raypay up`` created, from ``<data_dir>/api-key``; None if there is none."""
    path = Path(data_dir or Settings().data_dir).resolve() / API_KEY_FILE
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only (0600 from the start, then swapped in)."""
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text + "\n")
    tmp.replace(path)


def ensure_api_key(redis: Any, prefix: str, data_dir: Path) -> tuple[Path, str | None]:
    """The stack's admin key: kept if still valid, else created (hash in Redis, key in the
    0600 file). Returns the file and the new key, or None when the kept one is still good."""
    path = data_dir / API_KEY_FILE
    kept = read_api_key(data_dir)
    if kept and key_store.key_exists(redis, prefix, kept):
        return path, None
    key, _ = key_store.create_key(redis, prefix, auth.Role.ADMIN, label="raypay up")
    _write_secret(path, key)
    return path, key


def _bootstrap_key(redis_url: str, data_dir: Path) -> Path:
    from raypay.adapters.redis_client import connect_sync

    client = connect_sync(redis_url, Settings().redis_cluster)
    try:
        path, key = ensure_api_key(client, Settings().key_prefix, data_dir)
    finally:
        client.close()
    if key is None:
        _say(f"api key in {path} (admin)")
    else:  # the one time the key is shown
        _say(f"api key {key}  (admin; shown once, kept in {path})")
    return path


def _external(*names: str) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def _start_stores(cleanup: contextlib.ExitStack, options: UpOptions) -> _Stores:
    settings = Settings()
    servers: list[Supervised] = []
    redis_url = _external("RAYPAY_REDIS_URL", "REDIS_URL")
    cluster = options.redis_cluster or settings.redis_cluster
    if redis_url is None and cluster:
        redis_url = _start_cluster(cleanup, servers, options.data_dir)
    elif redis_url is None:
        redis_port = pick_port(REDIS_PORT)
        redis = _supervise(cleanup, servers, lambda: start_redis(options.data_dir, redis_port))
        redis_url = redis.url
        _say(f"redis   {redis_url}  (embedded, pid {redis.pid}, AOF in {options.data_dir}/redis)")
    else:
        _say(f"redis   {redis_url}  (external)")
    env = {"RAYPAY_REDIS_URL": redis_url}
    if cluster:
        env["RAYPAY_REDIS_CLUSTER"] = "true"
    kafka = _external("RAYPAY_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
    if kafka is None:
        kafka_port = pick_port(KAFKA_PORT)
        topics = settings.topics()

        def start() -> Server:
            broker = start_broker(kafka_port, options.data_dir / "logs")
            # Memory storage: topics are made at every start, the first and a restart.
            create_topics(broker.url, topics, partitions=options.partitions)
            return broker

        broker = _supervise(cleanup, servers, start)
        kafka = broker.url
        env["RAYPAY_KAFKA_IDEMPOTENCE"] = "false"  # Tansu has no InitProducerId
        _say(f"kafka   {kafka}  (embedded Tansu, pid {broker.pid}, in memory; {', '.join(topics)})")
    else:
        _say(f"kafka   {kafka}  (external)")
    env["RAYPAY_KAFKA_BOOTSTRAP_SERVERS"] = kafka
    return _Stores(redis_url, kafka, env, servers)


def _start_cluster(cleanup: contextlib.ExitStack, servers: list[Supervised], data_dir: Path) -> str:
    """The embedded Redis Cluster (raypay/tools/redis_cluster.py) on the ports its data
    folder knows (else 6380-6385, else free ones); each node supervised like a server."""
    from raypay.tools.redis_cluster import BUS_OFFSET, free_cluster_ports, start_redis_cluster
    from raypay.tools.stack import port_is_free

    folder = data_dir / "redis-cluster"
    found = folder.iterdir() if folder.is_dir() else iter(())
    known = sorted(int(p.name) for p in found if p.name.isdigit())
    ports = known or list(range(REDIS_PORT, REDIS_PORT + 6))
    if not all(port_is_free(p) and port_is_free(p + BUS_OFFSET) for p in ports):
        if known:
            raise StackError(f"the Redis Cluster's ports {ports} (in {folder}) are taken")
        ports = free_cluster_ports(6)
    nodes = start_redis_cluster(data_dir, ports)
    cleanup.callback(nodes.stop)
    for port in ports:
        servers.append(Supervised(nodes.nodes[port], lambda port=port: nodes.start_node(port)))
    _say(f"redis   {nodes.url}  (embedded Redis Cluster: 3 masters + 3 replicas on "
         f"{ports[0]}-{ports[-1]}, AOF in {folder})")  # fmt: skip
    return nodes.url


@dataclass
class Supervised:
    """An embedded server and how to start it again (same port, same data)."""

    server: Server
    start: Callable[[], Server]
    restarts: int = 0  # in all
    quick_deaths: int = 0  # in a row, each within STABLE_S of its start: a crash loop
    started_at: float = field(default_factory=time.monotonic)


def _supervise(
    cleanup: contextlib.ExitStack, servers: list[Supervised], start: Callable[[], Server]
) -> Server:
    entry = Supervised(start(), start)
    cleanup.callback(lambda: entry.server.stop())  # whichever incarnation runs at the end
    servers.append(entry)
    return entry.server


def _start_ray(
    cleanup: contextlib.ExitStack, options: UpOptions
) -> tuple[launch.RayInfo, str | None, local_cluster.LocalCluster | None]:
    """Join RAY_ADDRESS, start a local Ray, or (``nodes`` > 1) a local cluster; returns
    where to watch it, the address joined (None: local) and the cluster started."""
    ray_address = os.environ.get("RAY_ADDRESS") or None
    if options.nodes > 1 and ray_address:
        raise StackError("--nodes starts a local cluster; unset RAY_ADDRESS to use it")
    cluster = None
    if options.nodes > 1:
        _say(f"ray     starting a local cluster of {options.nodes} nodes "
             f"({options.num_cpus} logical CPUs each)")  # fmt: skip
        cluster = local_cluster.start_cluster(
            options.data_dir / "logs", options.nodes, options.num_cpus, pick_port(DASHBOARD_PORT)
        )
        cleanup.callback(cluster.stop)  # after Serve and this driver are gone
        cleanup.callback(_say, f"stopping the {options.nodes} Ray nodes ...")
        for node in cluster.nodes:
            _say(f"  {node.name:<7} {'head' if node.head else 'worker'}, pid {node.pid}")
    else:
        _say(f"ray     {'joining ' + ray_address if ray_address else 'starting locally'}")
    cleanup.callback(launch.shutdown_ray)  # registered first: also undoes a half-done init
    address = cluster.gcs_address if cluster else ray_address
    ray_info = launch.start_ray(
        address, options.num_cpus, pick_port(DASHBOARD_PORT), Settings().fast_ingress,
        log_to_driver=bool(ray_address),  # the local cluster's logs stay in its files
    )  # fmt: skip
    _on_stop_signals(_interrupt)  # ray.init installs its own SIGTERM handler
    if cluster is not None:
        local_cluster.wait_for_nodes(options.nodes)
        ray_info = launch.RayInfo(
            cluster.dashboard_url, str(cluster.logs_dir),
            f"http://127.0.0.1:{cluster.metrics_port}/metrics",
        )  # fmt: skip
    return ray_info, ray_address, cluster


def _start_app(
    cleanup: contextlib.ExitStack, options: UpOptions, stores_env: dict[str, str]
) -> tuple[dict, local_cluster.LocalCluster | None]:
    config_path = launch.find_serve_config(options.config)
    ray_info, ray_address, cluster = _start_ray(cleanup, options)

    raw = launch.read_serve_config(config_path)
    if cluster is not None:
        raw, notes = local_cluster.spread_config(raw, options.nodes)
        for note in notes:
            _say(f"serve   {note}")
    http = raw.get("http_options") or {}
    host = str(http.get("host", "127.0.0.1"))
    local_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    http_port = pick_port(int(http.get("port", 8000)), local_host)
    # Joining: the replicas get the edge through their runtime_env (a proxy of the
    # cluster's own needs it in the cluster's environment: README, "Fuzzing"). The
    # local cluster's nodes have it, and the stores' addresses, in their environment.
    env = {**launch.EDGE_ENV, **stores_env} if ray_address else None
    config = launch.to_schema(raw, http_port, env)
    app_names = [app.name for app in config.applications]
    _say(f"serve   deploying {config_path} (apps: {', '.join(app_names)})")
    cleanup.callback(launch.shutdown_serve, app_names, bool(ray_address))
    cleanup.callback(_say, "stopping Serve ...")
    http_port = launch.deploy(config, ray_info.dashboard_url)
    api = f"http://{local_host}:{http_port}" + (config.applications[0].route_prefix or "/")
    api = api.rstrip("/")
    # On several nodes each new connection lands on one node's proxy: 10 answers a node
    # in a row, so a proxy still without the routes is missed with odds ~(1 - 1/n)^(10n).
    streak = 1 if options.nodes <= 1 else 10 * options.nodes
    launch.wait_ready(f"{api}/readyz", app_names, options.ready_timeout, report=_say, streak=streak)
    state = {
        "api_url": api,
        "docs_url": f"{api}/docs",
        "dashboard_url": ray_info.dashboard_url,
        "metrics_url": ray_info.metrics_url,
        "logs_dir": ray_info.logs_dir,
        "ray_address": (cluster.gcs_address if cluster else ray_address) or "local",
        "serve_config": str(config_path),
    }
    if cluster is not None:
        state["nodes"] = cluster.describe()
    return state, cluster


def _remove_own_state(path: Path) -> None:
    """Remove the state file if it is this process's (not a newer stack's)."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)  # readers never see half a file


def print_where(state: dict[str, Any]) -> None:
    rows = {
        "API": state["api_url"], "OpenAPI": state["docs_url"],
        "dashboard": state.get("dashboard_url") or "-", "metrics": state.get("metrics_url") or "-",
        "logs": state.get("logs_dir") or "-",
        "Redis": state["redis_url"],
        "Kafka": state["kafka_bootstrap_servers"], "Ray": state["ray_address"],
        "pid": state["pid"], "API key": state.get("api_key_file") or "-",
    }  # fmt: skip
    if nodes := state.get("nodes"):
        rows["nodes"] = ", ".join(f"{n['name']} (pid {n['pid']})" for n in nodes)
    for name, value in rows.items():
        _say(f"  {name:<10} {value}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _on_stop_signals(handler: Any) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, handler)


MAX_RESTARTS = 5  # quick deaths in a row that stop the stack
STABLE_S = 10.0  # a server that ran this long before it died was not crash-looping


def _restart(entry: Supervised, attempts: int = 10) -> Server:
    """Start a dead server again on its port, which its closing connections may hold
    for a few seconds."""
    for attempt in range(attempts):
        try:
            return entry.start()
        except StackError:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _block(servers: list[Supervised], cluster: local_cluster.LocalCluster | None = None) -> None:
    """Until a stop signal. An embedded server that dies is started again, like a
    supervisor would (the service answers 503 meanwhile and recovers by itself), as
    often as it dies; one that keeps dying right after its start (a crash loop:
    MAX_RESTARTS times in a row, each within STABLE_S) is an error, not a silent hang.
    A lost worker node of the local cluster is reported and left lost: its actors
    restart on the other nodes, as on a real cluster. A lost head is the end of the
    cluster."""
    reported: set[str] = set()
    while True:
        time.sleep(1.0)
        if cluster is not None:
            if not cluster.nodes[0].server.alive():
                head = cluster.nodes[0].server
                raise StackError(f"the Ray head (pid {head.pid}) died; log {head.log_path}")
            for node in cluster.lost():
                if node.name not in reported:
                    reported.add(node.name)
                    _say(f"{node.name} (pid {node.pid}) is gone; its actors restart on the "
                         f"other nodes")  # fmt: skip
        for entry in servers:
            if entry.server.alive():
                continue
            died = f"{entry.server.name} (pid {entry.server.pid}) died"
            quick = time.monotonic() - entry.started_at < STABLE_S
            entry.quick_deaths = entry.quick_deaths + 1 if quick else 0
            if entry.quick_deaths > MAX_RESTARTS:
                raise StackError(f"{died} {entry.quick_deaths} times in a row within "
                                 f"{STABLE_S:.0f} s of its start; log {entry.server.log_path}"
                                 f":\n{entry.server.log_tail()}")  # fmt: skip
            _say(f"{died}; starting it again")
            entry.restarts += 1
            entry.server = _restart(entry)
            entry.started_at = time.monotonic()
            _say(f"{entry.server.name} is back (pid {entry.server.pid})")


def run(options: UpOptions) -> int:
    """Start everything, block until Ctrl-C / SIGTERM, stop everything; the exit code."""
    started = time.monotonic()
    if running := find_stack(options.data_dir):
        _say(f"raypay already runs (pid {running['pid']}) at {running['api_url']}")
        return 1
    options.data_dir.mkdir(parents=True, exist_ok=True)
    state_path = options.data_dir / STATE_FILE
    code = 0
    _on_stop_signals(_interrupt)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(_remove_own_state, state_path)
        try:
            stores = _start_stores(cleanup, options)
            os.environ.update(stores.env)  # before Ray starts: local workers inherit it
            key_file = _bootstrap_key(stores.redis_url, options.data_dir)
            app, cluster = _start_app(cleanup, options, stores.env)
            state = {
                "pid": os.getpid(), **app, "redis_url": stores.redis_url,
                "redis_cluster": stores.env.get("RAYPAY_REDIS_CLUSTER") == "true",
                "kafka_bootstrap_servers": stores.kafka, "data_dir": str(options.data_dir),
                "api_key_file": str(key_file),
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }  # fmt: skip
            _write_state(state_path, state)
            _say(f"\nraypay is ready in {time.monotonic() - started:.1f}s")
            print_where(state)
            _say("Ctrl-C to stop.")
            _block(stores.servers, cluster)
        except KeyboardInterrupt:
            _say("\nstopping raypay ...")
        except StackError as exc:
            _say(f"error: {exc}")
            code = 1
        except Exception as exc:  # e.g. Ray or Serve failed: still stop what already runs
            traceback.print_exc()
            _say(f"error: {type(exc).__name__}: {exc}")
            code = 1
        finally:
            _on_stop_signals(signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
    _say("stopped." if code == 0 else "stopped after the error above.")
    return code
