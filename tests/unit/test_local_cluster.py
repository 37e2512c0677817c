"""``raypay up --nodes N``'s pure parts: the config spread over the nodes, each node's
environment, the stack's ports."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raypay.tools import cluster

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def serve_config() -> dict:
    return yaml.safe_load((ROOT / "serve_config.yaml").read_text())


def test_three_nodes_get_a_shard_a_gateway_and_an_ingress_replica_each():
    raw = serve_config()
    spread, notes = cluster.spread_config(raw, 3)
    app = spread["applications"][0]
    assert (app["args"]["shards"], app["args"]["gateway_pool"]) == (3, 3)
    assert app["deployments"][0]["num_replicas"] == 3
    assert len(notes) == 3 and all("(one per node)" in note for note in notes)
    assert raw == serve_config()  # the file's own data is left alone


def test_the_spread_only_raises_and_leaves_autoscaling_alone():
    raw = {"applications": [{
        "name": "raypay", "args": {"shards": 8},
        "deployments": [{"name": "PaymentIngress", "autoscaling_config": {"max_replicas": 4}}],
    }]}  # fmt: skip
    spread, notes = cluster.spread_config(raw, 3)
    assert spread == raw and notes == []


def test_each_node_has_haproxy_files_and_listeners_of_its_own(monkeypatch):
    monkeypatch.setenv("RAYPAY_FAST_INGRESS", "true")
    head, worker = cluster._node_env(head=True), cluster._node_env(head=False)
    for name in ("RAY_SERVE_HAPROXY_CONFIG_FILE_LOC", "RAY_SERVE_HAPROXY_METRICS_PORT",
                 "RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_SOCKET_PATH"):  # fmt: skip
        assert head[name] != worker[name], name
    assert head["SERVE_SOCKET_REUSE_PORT_ENABLED"] == worker["SERVE_SOCKET_REUSE_PORT_ENABLED"]
    # The GCS checks the raylets: the head alone reads the health-check timing.
    assert cluster.HEALTH_CHECK_ENV.items() <= head.items()
    assert not cluster.HEALTH_CHECK_ENV.keys() & worker.keys()


def test_an_operators_health_check_setting_wins(monkeypatch):
    monkeypatch.setenv("RAY_health_check_failure_threshold", "10")
    assert "RAY_health_check_failure_threshold" not in cluster._node_env(head=True)
