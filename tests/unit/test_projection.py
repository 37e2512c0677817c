"""The projection of docs/benchmark.md ("Beyond one machine"): its arithmetic, on the
measured medians."""

from __future__ import annotations

import pytest

from raypay.tools.bench.projection import MEASURED, first_limit, project, table

pytestmark = pytest.mark.unit


def test_the_nodes_ceiling_grows_with_the_nodes_and_excludes_redis():
    rows = project()
    per_node = 16 * 1000 / (1.654 - MEASURED["redis"])
    assert [round(r.nodes_ceiling) for r in rows] == [round(n * per_node) for n in (1, 2, 4, 8)]


def test_one_redis_stops_scaling_first_before_one_node_is_full():
    rows = project()
    assert {round(r.projected) for r in rows} == {round(1000 / MEASURED["redis"])}  # 7,299/s
    assert all(r.limited_by == "one redis" for r in rows)
    assert first_limit(rows).startswith("one redis at 7,299 payments/s (1 node")
    assert rows[0].projected / rows[0].nodes_ceiling == pytest.approx(0.69, abs=0.01)


def test_past_one_redis_the_single_producer_caps_it():
    rows = project(redis_cluster_ms=0.137, redis_wait_ms=0.2)
    assert rows[0].projected_cluster["WAIT"][1] == "nodes"  # one node: its CPU
    assert rows[1].projected_cluster["WAIT"] == (pytest.approx(1000 / 0.093), "producer")
    assert rows[0].cluster_caps == {"no WAIT": pytest.approx(3000 / 0.137), "WAIT": 15000}


def test_unmeasured_redis_cluster_costs_stay_empty_in_the_table():
    lines = table(project())
    assert len(lines) == 2 + 4
    for line in lines[2:]:  # no WAIT, WAIT, projected with the cluster
        assert [cell.strip() for cell in line.split("|")].count("—") == 3, line
