"""raypay on a Ray cluster of three nodes on this machine, started as a user starts it
(``raypay up --nodes 3``, its own process: Ray allows one driver per process, and this
session's may already run): payments reach shards on more than one node, and a lost
worker node (SIGKILL of its ``ray start``, raylet, workers and their children, during
a paced burst) costs no payment, no charge twice and no event.

Both tests use one stack, in order: the second one kills a node of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from raystack import json_lines_with

from raypay.tools.launch import ray_cli
from raypay.tools.loadgen.client import RetryPolicy
from raypay.tools.loadgen.evidence import Target, gather_evidence, read_payments
from raypay.tools.loadgen.invariants import check_all
from raypay.tools.loadgen.plan import Scenario
from raypay.tools.loadgen.report import summary_lines
from raypay.tools.loadgen.runner import run_load
from raypay.tools.up import find_stack, read_api_key

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NODES = 3
PREFIX = "raypay"  # the stack's key prefix: the default, actor names raypay-shard-N


@dataclass
class ClusterStack:
    state: dict[str, Any]
    target: Target
    proc: subprocess.Popen[bytes]
    output: Path

    def ray(self, *args: str) -> Any:
        """``ray <args> --address <dashboard> --format json``: the State API, as JSON."""
        done = subprocess.run(
            [ray_cli(), *args, "--address", self.state["dashboard_url"], "--format", "json"],
            capture_output=True, text=True, timeout=120, check=True, env=_clean_env(),
        )  # fmt: skip
        return json.loads(done.stdout)

    def actors(self) -> list[dict[str, Any]]:
        """The live actors: name, class, node_id."""
        listed = self.ray("list", "actors", "--limit", "10000", "--detail")
        return [a for a in listed if a["state"] == "ALIVE"]

    def nodes(self) -> dict[str, dict[str, Any]]:
        """node_id -> the node (state, labels), every node the cluster has known."""
        return {n["node_id"]: n for n in self.ray("list", "nodes")}

    def node_names(self) -> dict[str, str]:
        """node_id -> its raypay-node label (node-0 is the head)."""
        return {i: n["labels"].get("raypay-node", "?") for i, n in self.nodes().items()}


def _clean_env() -> dict[str, str]:
    """This environment without Ray's, Serve's or raypay's variables (this session's
    local Ray set some: they must not reach another cluster), with the repository first
    on the path, and token auth as the cluster has it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SERVE_", "RAYPAY_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["RAY_AUTH_MODE"] = "token"
    return env


def _config(tmp: Path) -> Path:
    """serve_config.yaml with a sweep after 3 s and charges of 20-60 ms (so some are in
    flight when the node goes); `up --nodes 3` raises shards, gateways and replicas."""
    raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    args = raw["applications"][0]["args"]
    args.update(sweep_after_s=3)
    args["simulator"].update(latency_ms=20, jitter_ms=40)
    path = tmp / "serve_config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    data_dir = tmp_path_factory.mktemp("cluster-stack")
    output = data_dir / "up.out"
    argv = [sys.executable, "-m", "raypay.tools.cli", "--data-dir", str(data_dir), "up",
            "--nodes", str(NODES), "--config", str(_config(data_dir))]  # fmt: skip
    with open(output, "ab") as out:
        proc = subprocess.Popen(
            argv, cwd=data_dir, env=_clean_env(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while (state := find_stack(data_dir)) is None:
            tail = output.read_text(errors="replace")[-3000:]
            assert proc.poll() is None, f"raypay up exited ({proc.returncode}):\n{tail}"
            assert time.monotonic() < deadline, f"raypay up not ready in 240 s:\n{tail}"
            time.sleep(1)
        target = Target(
            base_url=state["api_url"], redis_url=state["redis_url"],
            kafka=state["kafka_bootstrap_servers"], key_prefix=PREFIX,
            api_key=read_api_key(data_dir),
        )  # fmt: skip
        yield ClusterStack(state, target, proc, output)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _node_of(actors: list[dict[str, Any]], name: str) -> str:
    return next(a["node_id"] for a in actors if a.get("name") == name)


@pytest.mark.timeout(300)
async def test_payments_reach_shards_on_more_than_one_node(stack: ClusterStack) -> None:
    result = await run_load(stack.target, Scenario(payments=90, concurrency=15, seed=11))
    assert result.ok, "\n".join(summary_lines(result))

    actors = stack.actors()
    names = stack.node_names()
    assert len({n for n in names.values()}) == NODES
    by_class: dict[str, set[str]] = {}
    for actor in actors:
        by_class.setdefault(actor["class_name"], set()).add(actor["node_id"])
    assert len(by_class["PaymentActor"]) == NODES, by_class  # 3 shards, one per node
    assert len(by_class["GatewaySimulatorActor"]) >= 2, by_class
    replicas = next(nodes for cls, nodes in by_class.items() if "PaymentIngress" in cls)
    assert len(replicas) >= 2, by_class  # the ingress on more than one node
    # The shards that paid this run's orders (the ingress logs each payment's shard).
    lines = json_lines_with(Path(stack.state["logs_dir"]), result.run_id)
    paid_by = Counter(line["shard"] for line in lines if line.get("outcome") == "succeeded")
    served_on = {_node_of(actors, f"{PREFIX}-shard-{shard}") for shard in paid_by}
    ingress_nodes = {line["node_id"] for line in lines if line.get("outcome") == "succeeded"}
    print(f"payments per shard {dict(paid_by)}; shard nodes {len(served_on)}, "
          f"ingress nodes {len(ingress_nodes)}")  # fmt: skip
    assert sum(paid_by.values()) == 90
    assert len(served_on) >= 2


def _kill_node(pid: int) -> list[int]:
    """SIGKILL a node's `ray start` and every process under it (raylet, agents, workers,
    HAProxy), all at once, as a machine that loses power; the pids killed."""
    root = psutil.Process(pid)
    victims = [root, *root.children(recursive=True)]
    for process in victims:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    return [p.pid for p in victims]


async def _no_payment_pending(target: Target, order_ids: list[str], within: float) -> int:
    """Until none of these orders has a pending payment (the sweep settles what the
    retries did not); the number still pending at the end."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(target.redis_url, decode_responses=True)
    deadline = time.monotonic() + within
    try:
        while True:
            payments, _ = await read_payments(client, target.key_prefix, order_ids)
            pending = sum(p.status == "pending" for ps in payments.values() for p in ps)
            if not pending or time.monotonic() > deadline:
                return pending
            await asyncio.sleep(1)
    finally:
        await client.aclose()


@pytest.mark.timeout(420)
async def test_a_lost_node_costs_no_payment_no_second_charge_and_no_event(
    stack: ClusterStack,
) -> None:
    actors, names = stack.actors(), stack.node_names()
    head = next(i for i, name in names.items() if name == "node-0")
    # The worker node with the most shards and gateway actors on it.
    placed = Counter(
        a["node_id"] for a in actors
        if a["class_name"] in ("PaymentActor", "GatewaySimulatorActor") and a["node_id"] != head
    )  # fmt: skip
    victim = placed.most_common(1)[0][0]
    victim_pid = next(n["pid"] for n in stack.state["nodes"] if n["name"] == names[victim])
    lost = sorted(
        a["name"] for a in actors
        if a["node_id"] == victim and (a.get("name") or "").startswith(f"{PREFIX}-")
    )  # fmt: skip

    fired = asyncio.Event()
    killed: list[int] = []
    clock: dict[str, float] = {}

    def firing() -> None:
        clock["fired"] = time.perf_counter()
        fired.set()

    async def kill_soon() -> None:
        await fired.wait()
        await asyncio.sleep(4.0)  # into the burst: charges and batches in flight
        killed.extend(_kill_node(victim_pid))
        clock["killed"] = time.perf_counter() - clock["fired"]

    killer = asyncio.get_running_loop().create_task(kill_soon())
    scenario = Scenario(
        payments=1000, concurrency=200, arrival="rate", rate=60, duplicates=0.05,
        declines=0.05, seed=13,
    )  # fmt: skip
    result = await run_load(
        stack.target, scenario, verify=False, drain_timeout_s=120, on_firing=firing,
        policy=RetryPolicy(attempts=60, base_s=0.2, cap_s=2.0),
    )  # fmt: skip
    await killer
    order_ids = [o.order_id for o in result.orders]
    still_pending = await _no_payment_pending(stack.target, order_ids, within=90)
    evidence = await gather_evidence(
        stack.target, order_ids, {o.order_id: o.answered for o in result.orders}, 120
    )
    result.checks = check_all(evidence)
    statuses = Counter(sample.status for sample in result.samples)
    failed = [s.started_s + s.latency_s for s in result.samples if s.status not in (200, 201, 402)]
    print(f"killed {names[victim]} at {clock.get('killed', 0):.1f} s ({len(killed)} processes; "
          f"its actors {lost}); answers {dict(statuses)}, the last retriable one "
          f"{max(failed, default=0) - clock.get('killed', 0):.1f} s after the kill; "
          f"pending after the sweep {still_pending}")  # fmt: skip
    print("\n".join(summary_lines(result)))

    assert killed, "the node was not killed"
    assert result.ok, "\n".join(summary_lines(result))
    assert len(result.orders) == 1000 and result.unexpected == []
    assert still_pending == 0
    payments = [p for ps in evidence.payments.values() for p in ps]
    assert sum(p.status == "succeeded" for p in payments) == 1000  # one per order
    # The node is gone for the cluster, and what ran on it runs on the others again.
    assert stack.nodes()[victim]["state"] == "DEAD"
    now = stack.actors()
    for name in lost:
        assert _node_of(now, name) != victim, name
    assert statuses.keys() - {200, 201, 402} <= {0, 500, 502, 503, 504}  # only retriable
    # raypay up saw the node go, said so, and kept the stack running.
    assert f"{names[victim]} (pid {victim_pid}) is gone" in stack.output.read_text()
    assert stack.proc.poll() is None
