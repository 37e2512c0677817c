"""The docker-compose stack agrees with the code it runs.

No Docker here: the files are parsed (PyYAML) and cross-checked with each other and
with the code's own truth, never with a second hand-written list:

* ``raypay.settings.Settings`` - which environment variables the app reads, the
  Kafka topic names;
* ``serve_config.yaml`` - the Serve HTTP port;
* the ``Dockerfile`` - the command that starts Ray and Serve, its ports;
* ``ops/`` - Prometheus and Grafana configuration.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices

from raypay.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_SERVICES = {"redis", "kafka", "kafka-init", "raypay", "prometheus", "grafana"}
# Ports the images listen on when not told otherwise (the compose file does not say).
REDIS_DEFAULT_PORT = 6379
PROMETHEUS_DEFAULT_PORT = 9090
PROMETHEUS_DEFAULT_CONFIG = "/etc/prometheus/prometheus.yml"


# --- reading the files ---------------------------------------------------------------


def load_yaml(relative: str) -> Any:
    path = ROOT / relative
    assert path.is_file(), f"{relative} is missing"
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml("docker-compose.yml")


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose.get("services") or {}


@pytest.fixture(scope="module")
def raypay(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert "raypay" in services, "docker-compose.yml has no raypay service"
    return services["raypay"]


@pytest.fixture(scope="module")
def serve_port() -> int:
    return int(load_yaml("serve_config.yaml")["http_options"]["port"])


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment``, in either compose syntax (mapping or KEY=VALUE list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command_text(value: str | list[str] | None) -> str:
    """A compose or Dockerfile command as one shell string."""
    if value is None:
        return ""
    return value if isinstance(value, str) else " ".join(str(part) for part in value)


def container_ports(service: dict[str, Any]) -> set[int]:
    """The container-side ports a service publishes (short or long syntax)."""
    ports = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            target = str(entry).split("/")[0].rsplit(":", 1)[-1]
            ports.add(int(target))
    return ports


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    path = ROOT / "Dockerfile"
    assert path.is_file(), "Dockerfile is missing"
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def dockerfile_command() -> str:
    """ENTRYPOINT + CMD of the Dockerfile (JSON or shell form) as one string."""
    parts = []
    for keyword, args in dockerfile_instructions():
        if keyword in ("ENTRYPOINT", "CMD"):
            parts.append(command_text(json.loads(args)) if args.startswith("[") else args)
    return " ".join(parts)


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            for token in shlex.split(args):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def start_command(raypay: dict[str, Any]) -> str:
    """What the raypay container runs: compose's command if it sets one, else the image's."""
    if raypay.get("entrypoint") or raypay.get("command"):
        return command_text(raypay.get("entrypoint")) + " " + command_text(raypay.get("command"))
    return dockerfile_command()


def flag(command: str, name: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in a command line."""
    match = re.search(rf"(?<![\w-])--{re.escape(name)}(?:=|\s+)([^\s\"';&]+)", command)
    return match.group(1) if match else None


def int_flag(command: str, name: str) -> int:
    value = flag(command, name)
    assert value is not None, f"the raypay start command sets no --{name}: {command!r}"
    return int(value)


def settings_env_names() -> set[str]:
    """Every environment variable name Settings reads (upper case: it is case-insensitive)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, AliasChoices):
            names.update(c for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(prefix + field_name)
    return {name.upper() for name in names}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the container builds them: only ``env`` set, nothing from this shell."""
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """{container path: source} of a service's volumes (short or long syntax)."""
    result = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            result[entry["target"]] = str(entry.get("source", ""))
        else:
            source, target = str(entry).split(":")[:2]
            result[target] = source
    return result


def host_path(source: str) -> Path | None:
    """A bind mount's host path (relative to the compose file), None for a named volume."""
    if source.startswith((".", "/")):
        return (ROOT / source).resolve()
    return None


# --- the checks ----------------------------------------------------------------------


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_raypay_environment_is_read_by_settings(raypay: dict[str, Any]) -> None:
    accepted = settings_env_names()
    unknown = {
        name
        for name in environment(raypay)
        if name.upper() not in accepted and not name.startswith("RAY_")
    }
    assert not unknown, (
        f"raypay's environment sets {sorted(unknown)}, which Settings does not read "
        f"(it reads {sorted(accepted)}, plus Ray's own RAY_* variables)"
    )


def test_raypay_environment_is_valid_settings(
    raypay: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in environment(raypay).items() if not k.startswith("RAY_")}
    settings = settings_from(env, monkeypatch)  # raises on a value of the wrong type
    # Real Kafka has the idempotent producer; only the embedded Tansu broker lacks it.
    assert settings.kafka_idempotence is True


def test_raypay_waits_for_redis_and_topics(raypay: dict[str, Any]) -> None:
    depends = raypay.get("depends_on") or {}
    if isinstance(depends, list):
        depends = {name: {} for name in depends}
    assert "redis" in depends and "kafka-init" in depends, f"raypay depends_on: {depends}"
    assert depends["kafka-init"].get("condition") == "service_completed_successfully"


def test_redis_url_points_at_the_redis_service(
    services: dict[str, dict[str, Any]], raypay: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = urlsplit(settings_from(environment(raypay), monkeypatch).redis_url)
    assert url.scheme in ("redis", "rediss"), f"REDIS_URL {url.geturl()!r}"
    assert url.hostname in services, f"REDIS_URL host {url.hostname!r} is no compose service"
    assert url.hostname == "redis", f"REDIS_URL host {url.hostname!r}, not the redis service"
    redis_command = command_text(services["redis"].get("command"))
    redis_port = int(flag(redis_command, "port") or REDIS_DEFAULT_PORT)
    assert (url.port or REDIS_DEFAULT_PORT) == redis_port, (
        f"REDIS_URL port {url.port}, but the redis service listens on {redis_port}"
    )


def test_kafka_bootstrap_is_an_advertised_listener(
    services: dict[str, dict[str, Any]], raypay: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = settings_from(environment(raypay), monkeypatch).kafka_bootstrap_servers
    kafka_env = environment(services["kafka"])
    advertised = {
        urlsplit(listener.strip()).netloc: urlsplit(listener.strip()).port
        for listener in kafka_env.get("KAFKA_ADVERTISED_LISTENERS", "").split(",")
    }
    bound_ports = {
        urlsplit(listener.strip()).port
        for listener in kafka_env.get("KAFKA_LISTENERS", "").split(",")
    }
    for server in bootstrap.split(","):
        host = server.strip().rsplit(":", 1)[0]
        assert host in services, f"KAFKA_BOOTSTRAP_SERVERS host {host!r} is no compose service"
        assert server.strip() in advertised, (
            f"KAFKA_BOOTSTRAP_SERVERS {server!r} is not one of kafka's advertised listeners "
            f"{sorted(advertised)}"
        )
        assert advertised[server.strip()] in bound_ports, (
            f"{server!r} is advertised but kafka listens on {sorted(bound_ports)}"
        )


def test_kafka_init_creates_the_settings_topics(
    services: dict[str, dict[str, Any]], raypay: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(environment(raypay), monkeypatch)
    init = services["kafka-init"]
    script = command_text(init.get("entrypoint")) + "\n" + command_text(init.get("command"))
    created = {
        flag(line, "topic")
        for line in script.splitlines()
        if "kafka-topics.sh" in line and "--create" in line
    }
    assert created == set(settings.topics()), (
        f"kafka-init creates {sorted(map(str, created))}; Settings publishes to {settings.topics()}"
    )
    assert flag(script, "bootstrap-server") == settings.kafka_bootstrap_servers
    depends = init.get("depends_on") or {}
    assert isinstance(depends, dict) and depends.get("kafka", {}).get("condition") == (
        "service_healthy"
    ), f"kafka-init must wait for a healthy kafka: {depends}"


def test_raypay_publishes_the_serve_and_dashboard_ports(
    raypay: dict[str, Any], serve_port: int
) -> None:
    published = container_ports(raypay)
    dashboard = int_flag(start_command(raypay), "dashboard-port")
    assert serve_port in published, (
        f"serve_config.yaml serves HTTP on {serve_port}; raypay publishes {sorted(published)}"
    )
    assert dashboard in published, f"Ray dashboard {dashboard} is not published"


def test_raypay_healthcheck_asks_readyz(raypay: dict[str, Any], serve_port: int) -> None:
    test = command_text((raypay.get("healthcheck") or {}).get("test"))
    assert "/readyz" in test, f"raypay healthcheck: {test!r}"
    assert f":{serve_port}/" in test, f"raypay healthcheck does not ask port {serve_port}"


def test_dockerfile_installs_the_project_and_ships_serve_config() -> None:
    instructions = dockerfile_instructions()
    base = next(args for keyword, args in instructions if keyword == "FROM")
    assert base.startswith("python:3.11-slim"), f"FROM {base}"
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert re.search(r"pip install (\S+ )*\.(\s|$)", runs), "no `pip install .` in the Dockerfile"
    copied = " ".join(args for keyword, args in instructions if keyword in ("COPY", "ADD"))
    assert "serve_config.yaml" in copied.split() or re.search(r"(^|\s)\.\s", copied), (
        "the Dockerfile does not copy serve_config.yaml into the image"
    )


def test_dockerfile_runs_serve_config_on_all_interfaces(serve_port: int) -> None:
    command = dockerfile_command()
    assert re.search(r"serve (run|deploy)\b[^&;]*\bserve_config\.yaml", command), (
        f"the image's command does not run serve_config.yaml: {command!r}"
    )
    # serve_config.yaml's http_options.host is 127.0.0.1: inside a container the
    # proxy must listen on all interfaces, on the file's port.
    assert flag(command, "http-host") == "0.0.0.0", f"Serve's HTTP host: {command!r}"
    assert int_flag(command, "http-port") == serve_port
    assert flag(command, "dashboard-host") == "0.0.0.0", f"Ray dashboard host: {command!r}"


def test_dockerfile_exposes_the_published_ports(raypay: dict[str, Any], serve_port: int) -> None:
    exposed = {
        int(port.split("/")[0])
        for keyword, args in dockerfile_instructions()
        if keyword == "EXPOSE"
        for port in args.split()
    }
    metrics = int_flag(start_command(raypay), "metrics-export-port")
    needed = container_ports(raypay) | {serve_port, metrics}
    assert needed <= exposed, f"EXPOSE {sorted(exposed)} lacks {sorted(needed - exposed)}"


def test_prometheus_scrapes_the_ray_metrics_port(
    services: dict[str, dict[str, Any]], raypay: dict[str, Any]
) -> None:
    metrics = int_flag(start_command(raypay), "metrics-export-port")
    prometheus = services["prometheus"]
    config_file = flag(command_text(prometheus.get("command")), "config.file")
    config_file = config_file or PROMETHEUS_DEFAULT_CONFIG
    source = mounts(prometheus).get(config_file)
    assert source is not None, f"prometheus mounts nothing at its --config.file {config_file}"
    assert host_path(source) == (ROOT / "ops/prometheus.yml").resolve(), (
        f"prometheus reads {source}, not ops/prometheus.yml"
    )
    config = load_yaml("ops/prometheus.yml")
    targets = {
        target
        for job in config.get("scrape_configs") or []
        for static in job.get("static_configs") or []
        for target in static.get("targets") or []
    }
    assert f"raypay:{metrics}" in targets, (
        f"ops/prometheus.yml scrapes {sorted(targets)}, not raypay:{metrics} "
        "(the Ray head's --metrics-export-port)"
    )


def test_grafana_provisions_prometheus_and_rays_dashboards(
    services: dict[str, dict[str, Any]], raypay: dict[str, Any]
) -> None:
    grafana = services["grafana"]
    provisioning = mounts(grafana).get("/etc/grafana/provisioning", "")
    assert host_path(provisioning) == (ROOT / "ops/grafana").resolve(), (
        f"grafana's provisioning folder is {provisioning!r}, not ops/grafana"
    )

    datasources = load_yaml("ops/grafana/datasources/prometheus.yml")["datasources"]
    urls = {urlsplit(d["url"]) for d in datasources if d.get("type") == "prometheus"}
    assert any(
        u.hostname == "prometheus" and (u.port or 80) == PROMETHEUS_DEFAULT_PORT for u in urls
    ), f"no Grafana datasource at the prometheus service: {[u.geturl() for u in urls]}"

    # Ray writes its dashboards into a folder that Grafana must read through a shared volume.
    env = {**dockerfile_env(), **environment(raypay)}
    folder = env.get("RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR")
    assert folder, "RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR is not set for raypay"
    providers = load_yaml("ops/grafana/dashboards/ray.yml")["providers"]
    paths = {p["options"]["path"] for p in providers}
    assert folder in paths, f"Grafana reads dashboards from {sorted(paths)}, Ray writes {folder}"
    assert folder in mounts(grafana) and folder in mounts(raypay)
    assert mounts(grafana)[folder] == mounts(raypay)[folder], "not the same volume"


# --- raypay's own Grafana dashboard ----------------------------------------------------

PROVISIONING = "/etc/grafana/provisioning"
# A metric selector in PromQL: the name right before its label matchers.
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def raypay_dashboards() -> list[tuple[Path, dict[str, Any]]]:
    """The dashboards the raypay provider loads, read where Grafana finds them."""
    providers = load_yaml("ops/grafana/dashboards/raypay.yml")["providers"]
    found = []
    for provider in providers:
        path = provider["options"]["path"]
        assert path.startswith(PROVISIONING + "/"), f"{path} is outside the provisioning mount"
        folder = ROOT / "ops/grafana" / path.removeprefix(PROVISIONING + "/")
        found += [(file, json.loads(file.read_text())) for file in sorted(folder.glob("*.json"))]
    assert found, "the raypay dashboard provider finds no dashboard JSON"
    return found


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        queries.append(query["query"] if isinstance(query, dict) else str(query or ""))
    return queries


def queried_metrics(query: str) -> set[str]:
    names = set(SELECTOR.findall(query))
    names |= set(re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", query))
    return names


def test_grafana_provisions_raypays_dashboard_from_the_mounted_folder(
    services: dict[str, dict[str, Any]],
) -> None:
    assert host_path(mounts(services["grafana"])[PROVISIONING]) == (ROOT / "ops/grafana").resolve()
    for file, dashboard in raypay_dashboards():
        assert dashboard.get("uid") and dashboard.get("title"), file
        assert dashboard["panels"], f"{file.name} has no panels"


def test_the_dashboard_queries_only_metrics_the_code_defines_and_all_of_them() -> None:
    # The code's own list (Ray exports each with a ray_ prefix; counters end in _total).
    from actors.metrics import METRICS

    defined = {name for spec in METRICS for name in spec.series()}
    datasource_uids = {
        d.get("uid") for d in load_yaml("ops/grafana/datasources/prometheus.yml")["datasources"]
    }
    used: set[str] = set()
    for file, dashboard in raypay_dashboards():
        for query in dashboard_queries(dashboard):
            names = queried_metrics(query)
            assert names, f"{file.name}: no metric in query {query!r}"
            unknown = names - defined
            assert not unknown, f"{file.name} queries {sorted(unknown)}, which raypay never exports"
            used |= names
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] in datasource_uids, panel["title"]
    unshown = [spec.name for spec in METRICS if not spec.series() & used]
    assert not unshown, f"metrics on no dashboard panel: {unshown}"
