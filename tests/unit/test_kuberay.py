"""The KubeRay RayService manifest agrees with the code it runs.

No Kubernetes here: ``deploy/kuberay/rayservice.yaml`` is parsed and cross-checked, as
docker-compose.yml is (tests/unit/test_compose.py), with the code's own truth:

* ``serve_config.yaml`` - the inline Serve config is the same app, only sized for the
  worker group (shards, gateway actors, ingress replicas) and listening on all interfaces;
* ``raypay.settings.Settings`` - which environment variables the app reads;
* ``raypay/tools/launch.py``, ``raypay/tools/cluster.py`` - the fast ingress and the
  health-check settings `raypay up` runs with;
* the ``Dockerfile`` - the image, its GCS port and the Serve edge it sets.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from raypay.tools import cluster, launch

from .test_compose import (
    REDIS_DEFAULT_PORT,
    dockerfile_command,
    dockerfile_env,
    flag,
    load_yaml,
    settings_env_names,
    settings_from,
)

pytestmark = pytest.mark.unit

SIZES = {"args": ("shards", "gateway_pool"), "deployment": ("num_replicas",)}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return load_yaml("deploy/kuberay/rayservice.yaml")


@pytest.fixture(scope="module")
def serve_config(manifest: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(manifest["spec"]["serveConfigV2"])


def containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest["spec"]["rayClusterConfig"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: str(item["value"]) for item in container.get("env") or []}


def workers(manifest: dict[str, Any]) -> int:
    return sum(g["replicas"] for g in manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"])


def without_sizes(config: dict[str, Any]) -> dict[str, Any]:
    """The config less what may differ: sizes and the HTTP host."""
    config = yaml.safe_load(yaml.safe_dump(config))  # a deep copy
    config.get("http_options", {}).pop("host", None)
    for app in config["applications"]:
        for name in SIZES["args"]:
            app.get("args", {}).pop(name, None)
        for deployment in app.get("deployments") or []:
            for name in SIZES["deployment"]:
                deployment.pop(name, None)
    return config


def test_it_is_a_rayservice_whose_serve_config_serve_accepts(manifest, serve_config):
    import ray
    from ray.serve.schema import ServeDeploySchema

    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayService")
    ServeDeploySchema.model_validate(serve_config)  # raises on a config Serve refuses
    version = manifest["spec"]["rayClusterConfig"]["rayVersion"]
    assert version == ray.__version__, f"rayVersion {version}, the project runs {ray.__version__}"


def test_the_inline_serve_config_is_serve_config_yaml_sized_for_the_cluster(serve_config):
    assert without_sizes(serve_config) == without_sizes(load_yaml("serve_config.yaml"))
    # In a pod, Serve must listen on the pod's address, not loopback.
    assert serve_config["http_options"]["host"] == "0.0.0.0"


def test_every_worker_gets_a_shard_a_gateway_and_an_ingress_replica(manifest, serve_config):
    spread, _ = cluster.spread_config(load_yaml("serve_config.yaml"), workers(manifest))
    for app, wanted in zip(serve_config["applications"], spread["applications"], strict=True):
        for name in SIZES["args"]:
            assert app["args"][name] >= wanted["args"][name], name
        for deployment, floor in zip(app["deployments"], wanted["deployments"], strict=True):
            assert deployment["num_replicas"] >= floor["num_replicas"], deployment["name"]


def test_the_environment_is_read_by_settings_and_points_at_real_kafka(manifest, monkeypatch):
    accepted = settings_env_names()
    for container in containers(manifest):
        env = env_of(container)
        unknown = {n for n in env if not n.startswith("RAY_") and n.upper() not in accepted}
        assert not unknown, f"{container['name']} sets {sorted(unknown)}; Settings ignores them"
        app_env = {k: v for k, v in env.items() if not k.startswith("RAY_")}
        settings = settings_from(app_env, monkeypatch)
        assert settings.kafka_idempotence is True  # real Kafka has the idempotent producer
        assert settings.redis_url.startswith("redis://") and "127.0.0.1" not in settings.redis_url


def test_every_node_runs_the_fast_ingress_and_the_edge(manifest):
    names = ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED")
    switches = {name: launch.FAST_INGRESS_ENV[name] for name in names}
    for container in containers(manifest):
        env = {**dockerfile_env(), **env_of(container)}
        assert switches.items() <= env.items(), container["name"]
        assert launch.EDGE_ENV.items() <= env.items(), container["name"]
        assert launch.SERVE_LOG_ENV.items() <= env.items(), container["name"]
        assert container["image"] == "raypay:latest"  # the Dockerfile's, as compose tags it


def test_the_head_detects_a_lost_worker_as_the_local_cluster_does(manifest):
    head = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert cluster.HEALTH_CHECK_ENV.items() <= env_of(head["containers"][0]).items()


def test_the_gcs_port_is_the_dockerfiles_and_not_redis(manifest):
    params = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]
    assert params["port"] == flag(dockerfile_command(), "port")
    assert int(params["port"]) != REDIS_DEFAULT_PORT
    ports = {p["name"]: p["containerPort"] for p in containers(manifest)[0]["ports"]}
    assert ports["gcs-server"] == int(params["port"])
    assert ports["serve"] == load_yaml("serve_config.yaml")["http_options"]["port"]
    assert ports["metrics"] == int(params["metrics-export-port"])
    # raypay's actors ask for CPU: none lands on the head, whose loss ends the cluster.
    assert params["num-cpus"] == "0"
