"""The benchmark's lines and its /proc readings, without starting anything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from raypay.tools.bench import procs
from raypay.tools.bench.cpu import CpuShare
from raypay.tools.bench.run import SideReport, figures
from raypay.tools.loadgen.client import OrderResult
from raypay.tools.loadgen.invariants import Check
from raypay.tools.loadgen.plan import Scenario, plan, traffic
from raypay.tools.loadgen.runner import LoadResult
from raypay.tools.loadgen.stats import Sample

pytestmark = pytest.mark.unit


def result(payments_per_s: float, p99_ms: float) -> LoadResult:
    scenario = Scenario(payments=10, concurrency=2)
    samples = [Sample(0, p99_ms / 1000, 201) for _ in range(10)]
    orders = [OrderResult(f"o{i}") for i in range(10)]
    return LoadResult(
        "lt1", scenario, traffic(plan(scenario)), {"baseUrl": "x"}, "aiohttp",
        10 / payments_per_s, 0, 0, samples, orders, [Check("every order paid", True, "")],
    )  # fmt: skip


def report(name: str, payments_per_s: float, p99_ms: float, cpu_s: float) -> SideReport:
    side = SideReport(name, startup_s=2.0, rest_pss_mb=100, rest_rss_mb=150, processes=3)
    side.load_pss_mb, side.result = 120, result(payments_per_s, p99_ms)
    side.cpu = CpuShare(1.0, 50.0, 5.0, 1.0, cpu_s)
    return side


def test_one_line_per_figure_with_ratios_raypay_over_peer() -> None:
    lines = dict(
        figures({"raypay": report("raypay", 100, 40, 0.2), "peer": report("peer", 400, 20, 0.02)})
    )
    assert lines["startup_seconds"] == "2.0"
    assert lines["stack_memory_mb_at_rest"] == "100"
    assert lines["raypay_throughput_rps"] == "100.0"
    assert lines["peer_p99_ms"] == "20.0"
    assert lines["raypay_cpu_ms_per_payment"] == "20.00"
    assert lines["ratio_throughput"] == "0.250"
    assert lines["ratio_p99"] == "2.000"
    assert lines["ratio_cpu_per_payment"] == "10.00"
    assert lines["invariants"] == "ok"


def test_a_side_that_failed_fails_the_invariants_line() -> None:
    failed = SideReport("peer", error="StackError: tansu exited")
    lines = dict(figures({"raypay": report("raypay", 100, 40, 0.2), "peer": failed}))
    assert lines["peer_error"] == '"StackError: tansu exited"'
    assert "ratio_throughput" not in lines and lines["invariants"] == "FAILED"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_process_tree_and_memory_of_this_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = procs.descendants(os.getpid())
        assert tree[0] == os.getpid() and child.pid in tree
        assert procs.pss_mb([os.getpid()]) > 1 and procs.rss_mb([os.getpid()]) > 1
        known = {procs.identity(child.pid)}
        assert procs.still_running(known) == [child.pid]
        assert procs.cpu_ticks([os.getpid()]) >= 0 and procs.machine_busy_ticks() > 0
    finally:
        child.kill()
        child.wait()
    assert procs.still_running(known) == []


def test_the_peer_keeps_raypays_key_layout() -> None:
    from raypay.adapters.keys import Keys
    from raypay.tools.bench import peer

    for order_id in ("ord_1", "order-9f3a", "x"):
        assert Keys(peer.P).order(order_id) == f"{peer.vs(order_id)}:order:{order_id}"
    assert [peer.OUTBOX] == Keys(peer.P).outboxes()
