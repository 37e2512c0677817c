"""On paper: raypay's throughput on N nodes of C cores, from the CPU each process
spends per payment as ``raypay bench`` measures it (``raypay bench --project``).

The model, each part from a measured figure (ms of CPU per payment):

* **The nodes** run everything but Redis: ingress replicas, shards, gateway actors, the
  producer, HAProxy and Ray's own processes. Their ceiling is
  ``nodes × cores × 1000 / (total − redis)`` payments/s, every core busy (the 2-core
  measurement reached 83 % of its own ceiling: 1,005.5/s of 2000 / 1.654).
* **One Redis** executes commands on one thread: ``1000 / redis`` payments/s, whatever
  the nodes can do (it runs on a machine of its own, so none of the nodes' cores).
* **A Redis Cluster of M masters**, the order's keys in one slot, spreads that over M:
  ``M × 1000 / r`` with ``r`` the Redis CPU per payment on a master in cluster mode,
  with or without ``WAIT`` for a replica (``--redis-cluster-ms``, ``--redis-wait-ms``: the
  Redis-Cluster measurement supplies them; without them the row says so).
* **One producer actor** relays the whole outbox: one process, ``1000 / producer``.
* The ingress replicas, shards and gateway actors are many processes each, so they
  scale with the nodes; each is one process, though, so the table says how many of each
  a rate needs (``rate × ms / 1000`` busy cores of that role).

Not in the model: a cross-node Ray call costs more than a local one (not measured
here), per-payment CPU falls a little as batches fill at higher rates, and the broker
(Tansu here, real Kafka in production) is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Medians of three plain-scenario runs on a quiet machine (docs/benchmark.md, main at
# 2d09ef7): total 1.654 ms per payment.
MEASURED = {"ingress": 0.620, "shards": 0.415, "redis": 0.137, "gateway": 0.106,
            "producer": 0.093}  # fmt: skip
MEASURED_TOTAL = 1.654
NODES = (1, 2, 4, 8)
CORES = 16


@dataclass(frozen=True, slots=True)
class Row:
    nodes: int
    cores: int
    nodes_ceiling: float  # payments/s with every core of the nodes busy
    redis_cap: float  # one Redis
    cluster_caps: dict[str, float | None]  # "no WAIT" / "WAIT": M masters (None: not measured)
    producer_cap: float
    projected: float  # with one Redis
    limited_by: str
    projected_cluster: dict[str, tuple[float, str] | None]  # with the Redis Cluster
    busy: dict[str, int]  # busy cores per role at `projected`


def _limit(**caps: float) -> tuple[float, str]:
    name = min(caps, key=lambda key: caps[key])
    return caps[name], name.replace("_", " ")


def project(
    cpu: dict[str, float] | None = None,
    total: float = MEASURED_TOTAL,
    nodes: tuple[int, ...] = NODES,
    cores: int = CORES,
    masters: int = 3,
    redis_cluster_ms: float | None = None,
    redis_wait_ms: float | None = None,
) -> list[Row]:
    """One row per node count; ``cpu`` is ms per payment per role (default: MEASURED);
    ``redis_cluster_ms`` / ``redis_wait_ms``: Redis CPU per payment on a master of a
    Redis Cluster, without and with WAIT (None: not measured, the columns stay empty)."""
    cpu = cpu or MEASURED
    node_ms = total - cpu["redis"]
    redis_cap = 1000 / cpu["redis"]
    producer_cap = 1000 / cpu["producer"]
    cluster_caps = {
        variant: masters * 1000 / ms if ms else None
        for variant, ms in (("no WAIT", redis_cluster_ms), ("WAIT", redis_wait_ms))
    }
    rows = []
    for count in nodes:
        ceiling = count * cores * 1000 / node_ms
        projected, limited = _limit(nodes=ceiling, one_redis=redis_cap, producer=producer_cap)
        with_cluster = {
            variant: None if cap is None
            else _limit(nodes=ceiling, redis_cluster=cap, producer=producer_cap)
            for variant, cap in cluster_caps.items()
        }  # fmt: skip
        busy = {
            role: math.ceil(projected * cpu[role] / 1000)
            for role in ("ingress", "shards", "gateway")
        }
        rows.append(Row(count, count * cores, ceiling, redis_cap, cluster_caps, producer_cap,
                        projected, limited, with_cluster, busy))  # fmt: skip
    return rows


def _n(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _capped(value: tuple[float, str] | None) -> str:
    return "—" if value is None else f"{value[0]:,.0f} ({value[1]})"


def table(rows: list[Row], masters: int = 3) -> list[str]:
    """The rows as a Markdown table (docs/benchmark.md prints this)."""
    cluster = f"{masters}-master Redis Cluster"
    lines = [
        f"| nodes × cores | nodes' CPU ceiling | one Redis | {cluster}, no WAIT "
        f"| {cluster}, WAIT | one producer | projected: one Redis "
        "| projected: Redis Cluster + WAIT | nodes' CPU in use, one Redis |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.nodes} × {r.cores // r.nodes} | {_n(r.nodes_ceiling)} | {_n(r.redis_cap)} "
            f"| {_n(r.cluster_caps['no WAIT'])} | {_n(r.cluster_caps['WAIT'])} "
            f"| {_n(r.producer_cap)} | {_n(r.projected)} ({r.limited_by}) "
            f"| {_capped(r.projected_cluster['WAIT'])} | {r.projected / r.nodes_ceiling:.0%} |"
        )
    return lines


def first_limit(rows: list[Row]) -> str:
    """Which part stops scaling first: the cap reached at the fewest nodes."""
    for row in rows:
        if row.limited_by != "nodes":
            return f"{row.limited_by} at {row.projected:,.0f} payments/s ({row.nodes} node(s))"
    return "nothing within these node counts: the nodes' CPU"
